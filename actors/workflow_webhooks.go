package actors

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kowai/kowai/persistence"
)

// Defaults applied by NewNotifier to zero fields of NotifierDeps.
const (
	// DefaultWebhookAttempts bounds the delivery attempts of one notification.
	DefaultWebhookAttempts = 6
	// DefaultWebhookBackoff is the wait after the first failed attempt; each later
	// wait is three times the previous (5s, 15s, 45s, 2m15s, 6m45s: about ten
	// minutes over six attempts).
	DefaultWebhookBackoff = 5 * time.Second
	// DefaultWebhookTimeout bounds one attempt.
	DefaultWebhookTimeout = 10 * time.Second
	// DefaultWebhookInterval is how often a node looks for due notifications.
	DefaultWebhookInterval = time.Second
)

// Webhook request headers.
const (
	// SignatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">".
	SignatureHeader = "X-Kowai-Signature"
	// DeliveryHeader identifies a notification; it is the same on every attempt,
	// so a receiver can drop duplicates (delivery is at least once).
	DeliveryHeader = "X-Kowai-Delivery"
)

// WebhookPayload is the body kowai POSTs when a run with a webhook_url finishes.
type WebhookPayload struct {
	RunID      string          `json:"run_id"`
	Name       string          `json:"name"`
	Status     string          `json:"status"`
	Result     json.RawMessage `json:"result,omitempty"`
	Error      string          `json:"error,omitempty"`
	FinishedAt time.Time       `json:"finished_at"`
}

// Sign returns the SignatureHeader value of body sent at t under secret.
func Sign(secret, body []byte, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// HTTPDoer sends one request; *http.Client implements it (a netguard client in
// production, so the SSRF guard applies at connect time).
type HTTPDoer interface {
	Do(*http.Request) (*http.Response, error)
}

// NotifierDeps are the webhook notifier's dependencies; Webhooks, Runs, Client and
// Secret are required.
type NotifierDeps struct {
	Webhooks persistence.Webhooks
	Runs     persistence.WorkflowRuns
	Client   HTTPDoer
	Secret   []byte
	// Attempts, Backoff, Timeout, Interval: see the Default* values. Batch bounds
	// the notifications claimed per round (default DefaultClaimBatch).
	Attempts int
	Backoff  time.Duration
	Timeout  time.Duration
	Interval time.Duration
	Batch    int
	// Now is the clock (default time.Now).
	Now     func() time.Time
	Logger  *slog.Logger
	Metrics prometheus.Registerer
}

// Notifier delivers the webhook notifications of finished runs, at least once:
// the notification row is written with the run's final state, every node claims due
// ones (a version CAS, so one node sends each attempt), and every attempt is
// recorded with the next attempt's time in one transaction. A node that dies while
// sending leaves the claim to lapse; another node sends again.
type Notifier struct {
	deps    NotifierDeps
	log     *slog.Logger
	outcome *prometheus.CounterVec
}

// NewNotifier validates deps and returns the notifier. Errors wrap ErrInvalidDeps.
func NewNotifier(deps NotifierDeps) (*Notifier, error) {
	for name, missing := range map[string]bool{"Webhooks": deps.Webhooks == nil, "Runs": deps.Runs == nil,
		"Client": deps.Client == nil, "Secret": len(deps.Secret) == 0} {
		if missing {
			return nil, fmt.Errorf("%w: %s is required", ErrInvalidDeps, name)
		}
	}
	deps.Attempts = cmp.Or(deps.Attempts, DefaultWebhookAttempts)
	deps.Backoff = cmp.Or(deps.Backoff, DefaultWebhookBackoff)
	deps.Timeout = cmp.Or(deps.Timeout, DefaultWebhookTimeout)
	deps.Interval = cmp.Or(deps.Interval, DefaultWebhookInterval)
	deps.Batch = cmp.Or(deps.Batch, DefaultClaimBatch)
	if deps.Now == nil {
		deps.Now = time.Now
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Notifier{deps: deps, log: log.With("component", "workflow-webhooks"),
		outcome: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kowai_workflow_webhook_deliveries_total",
			Help: "Webhook delivery attempts by outcome: delivered (2xx), failed (retried later), gave_up (the last attempt failed)."},
			[]string{"outcome"})}
	if deps.Metrics != nil {
		if err := deps.Metrics.Register(n.outcome); err != nil {
			return nil, fmt.Errorf("%w: register webhook metrics: %w", ErrInvalidDeps, err)
		}
	}
	return n, nil
}

// Run delivers due notifications every Interval until ctx ends.
func (n *Notifier) Run(ctx context.Context) error {
	return claimLoop{interval: n.deps.Interval, full: n.deps.Batch, maxRounds: 1,
		log: n.log, failMsg: "webhook round failed", round: n.DeliverDue}.run(ctx)
}

// DeliverDue claims one batch of due notifications and makes one attempt at each;
// it returns how many it claimed.
func (n *Notifier) DeliverDue(ctx context.Context) (int, error) {
	// The claim outlives the attempt, so no other node sends while this one does.
	lease := 2*n.deps.Timeout + 5*time.Second
	due, err := n.deps.Webhooks.ClaimDueNotifications(ctx, n.deps.Now(), lease, n.deps.Batch)
	sem := make(chan struct{}, 8)
	done := make(chan struct{})
	for _, no := range due {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; done <- struct{}{} }()
			n.attempt(ctx, no)
		}()
	}
	for range due {
		<-done
	}
	return len(due), err
}

func (n *Notifier) attempt(ctx context.Context, no persistence.WebhookNotification) {
	run, err := n.deps.Runs.GetRun(ctx, no.RunID)
	if err != nil {
		n.log.Warn("webhook run not read; retried after the claim", "run_id", no.RunID, "error", err)
		return
	}
	prior, err := n.deps.Webhooks.Deliveries(ctx, no.RunID)
	if err != nil {
		n.log.Warn("webhook deliveries not read; retried after the claim", "run_id", no.RunID, "error", err)
		return
	}
	body, err := json.Marshal(WebhookPayload{RunID: run.ID, Name: run.Name, Status: run.Status, Result: run.Result,
		Error: run.Error, FinishedAt: run.FinishedAt})
	if err != nil {
		n.log.Error("webhook payload not encoded", "run_id", no.RunID, "error", err)
		return
	}
	now := n.deps.Now()
	d := persistence.WebhookDelivery{RunID: no.RunID, Attempt: len(prior) + 1, At: now}
	if len(prior) > 0 {
		d.Attempt = prior[len(prior)-1].Attempt + 1
	}
	d.StatusCode, err = n.send(ctx, no, run, body, now)
	next := no
	next.Version, next.Attempts = no.Version+1, no.Attempts+1
	outcome := "delivered"
	switch {
	case err == nil:
		d.Delivered, next.Status, next.NextAt = true, persistence.NotificationDelivered, time.Time{}
	case next.Attempts >= n.deps.Attempts:
		d.Error, next.Status, next.NextAt, outcome = err.Error(), persistence.NotificationFailed, time.Time{}, "gave_up"
	default:
		wait := n.deps.Backoff
		for range next.Attempts - 1 {
			wait *= 3
		}
		d.Error, next.NextAt, outcome = err.Error(), now.Add(wait), "failed"
	}
	if err := n.deps.Webhooks.RecordDelivery(ctx, next, no.Version, d); err != nil {
		// Another node took the notification over (this attempt outlived the
		// claim): its record stands, and the receiver dedupes by DeliveryHeader.
		n.log.Warn("webhook attempt not recorded", "run_id", no.RunID, "attempt", d.Attempt, "error", err)
		return
	}
	n.outcome.WithLabelValues(outcome).Inc()
	if outcome != "delivered" {
		n.log.Info("webhook attempt failed", "run_id", no.RunID, "attempt", d.Attempt, "status_code", d.StatusCode, "error", d.Error)
	}
}

// send POSTs body; a non-2xx answer is an error.
func (n *Notifier) send(ctx context.Context, no persistence.WebhookNotification, run persistence.WorkflowRun, body []byte, now time.Time) (int, error) {
	rctx, cancel := context.WithTimeout(ctx, n.deps.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, no.URL, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("bad webhook URL: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "kowai-webhook/1")
	req.Header.Set(SignatureHeader, Sign(n.deps.Secret, body, now))
	req.Header.Set(DeliveryHeader, uuid.NewSHA1(scheduleRunNamespace, []byte("webhook:"+run.ID+"@"+run.FinishedAt.UTC().Format(time.RFC3339Nano))).String())
	res, err := n.deps.Client.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10)) // lets the connection be reused
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return res.StatusCode, errors.New("answered " + res.Status)
	}
	return res.StatusCode, nil
}

// webhookSecretLabel is the HKDF info that derives the webhook key from the JWT
// secret; changing it changes every node's signatures.
const webhookSecretLabel = "kowai webhook signing v1"

// DeriveWebhookSecret derives the webhook signing key from the JWT secret
// (HKDF-SHA256, no salt, info "kowai webhook signing v1", 32 bytes), for nodes
// without KOWAI_WEBHOOK_SECRET: every node of a cluster shares the JWT secret, so it
// derives the same key, and a receiver that learns the key learns nothing of the JWT
// secret.
func DeriveWebhookSecret(jwtSecret []byte) ([]byte, error) {
	key, err := hkdf.Key(sha256.New, jwtSecret, nil, webhookSecretLabel, 32)
	if err != nil {
		return nil, fmt.Errorf("derive webhook secret: %w", err)
	}
	return key, nil
}
