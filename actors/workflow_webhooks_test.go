package actors

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/internal/netguard"
	"github.com/kowai/kowai/internal/testenv"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
	"github.com/kowai/kowai/workflows"
)

var testWebhookSecret = []byte("webhook-test-secret-0123456789abcdef")

// hookReceiver is a webhook endpoint on 127.0.0.1 that answers the statuses in
// script (then 200) and keeps every request.
type hookReceiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	script []int
	got    []hookRequest
}

type hookRequest struct {
	body                []byte
	signature, delivery string
}

func newHookReceiver(t *testing.T, script ...int) *hookReceiver {
	t.Helper()
	h := &hookReceiver{script: script}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.got = append(h.got, hookRequest{body: body, signature: r.Header.Get(SignatureHeader), delivery: r.Header.Get(DeliveryHeader)})
		status := http.StatusOK
		if len(h.script) > 0 {
			status, h.script = h.script[0], h.script[1:]
		}
		h.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) requests() []hookRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookRequest(nil), h.got...)
}

// verify checks a signature the way a receiver would.
func verify(t *testing.T, secret []byte, r hookRequest) {
	t.Helper()
	parts := strings.Split(r.signature, ",")
	if len(parts) != 2 || !strings.HasPrefix(parts[0], "t=") || !strings.HasPrefix(parts[1], "v1=") {
		t.Fatalf("signature header %q", r.signature)
	}
	ts, err := strconv.ParseInt(strings.TrimPrefix(parts[0], "t="), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	want := Sign(secret, r.body, time.Unix(ts, 0))
	if !hmac.Equal([]byte(want), []byte(r.signature)) {
		t.Fatalf("signature %q does not verify (want %q)", r.signature, want)
	}
}

func loopbackGuard() *netguard.Guard {
	_, lo, _ := net.ParseCIDR("127.0.0.1/32")
	return netguard.New([]*net.IPNet{lo})
}

func (h *wfHarness) triggerHook(t *testing.T, url string) string {
	t.Helper()
	id := uuid.NewString()
	if _, err := actorpb.As[*actorpb.RunAck](h.grains.Call(t.Context(), KindWorkflowRun, id, &actorpb.StartRun{
		CorrelationId: "t", RunId: id, Workflow: "tick", OwnerId: h.users[0], ParametersJson: `{"n":5}`, WebhookUrl: url})); err != nil {
		t.Fatalf("trigger: %v", err)
	}
	return id
}

func TestWebhookDeliveredSignedAfterRetries(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		h := newWFHarness(t, db, registerTick)
		hooks := persistence.NewWebhookStore(db)
		recv := newHookReceiver(t, http.StatusInternalServerError, http.StatusBadGateway)
		id := h.triggerHook(t, recv.srv.URL+"/hook")
		h.waitStatus(t, id, persistence.StatusCompleted, 5*time.Second)
		// The notification is durable before any notifier runs.
		if n, err := hooks.Notification(t.Context(), id); err != nil || n.Status != persistence.NotificationPending {
			t.Fatalf("notification after the run finished = %+v, %v", n, err)
		}
		nt, err := NewNotifier(NotifierDeps{Webhooks: hooks, Runs: h.runs, Client: loopbackGuard().Client(2 * time.Second),
			Secret: testWebhookSecret, Backoff: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 10*time.Second, func() error {
			if _, err := nt.DeliverDue(t.Context()); err != nil {
				return err
			}
			n, err := hooks.Notification(t.Context(), id)
			if err != nil {
				return err
			}
			if n.Status != persistence.NotificationDelivered {
				return fmt.Errorf("notification %s after %d attempts", n.Status, n.Attempts)
			}
			return nil
		})
		reqs := recv.requests()
		if len(reqs) != 3 {
			t.Fatalf("%d requests, want 3 (500, 502, 200)", len(reqs))
		}
		for _, r := range reqs {
			verify(t, testWebhookSecret, r)
			if r.delivery == "" || r.delivery != reqs[0].delivery {
				t.Fatalf("delivery IDs %q and %q differ", r.delivery, reqs[0].delivery)
			}
		}
		var p WebhookPayload
		if err := json.Unmarshal(reqs[2].body, &p); err != nil {
			t.Fatal(err)
		}
		if p.RunID != id || p.Name != "tick" || p.Status != persistence.StatusCompleted || string(p.Result) != "5" || p.FinishedAt.IsZero() {
			t.Fatalf("payload %s", reqs[2].body)
		}
		ds, err := hooks.Deliveries(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != 3 || ds[0].StatusCode != 500 || ds[0].Delivered || ds[1].StatusCode != 502 || !ds[2].Delivered || ds[2].Attempt != 3 {
			t.Fatalf("deliveries %+v", ds)
		}
		for outcome, want := range map[string]float64{"failed": 2, "delivered": 1, "gave_up": 0} {
			if got := testutil.ToFloat64(nt.outcome.WithLabelValues(outcome)); got != want {
				t.Errorf("webhook deliveries{outcome=%q} = %v, want %v", outcome, got, want)
			}
		}
		// A wrong secret does not verify.
		if Sign([]byte("another secret"), reqs[2].body, time.Now()) == reqs[2].signature {
			t.Fatal("signature does not depend on the secret")
		}
	})
}

func TestWebhookGivesUpAfterTheLastAttempt(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		h := newWFHarness(t, db, registerTick)
		hooks := persistence.NewWebhookStore(db)
		recv := newHookReceiver(t, 500, 500, 500, 500)
		id := h.triggerHook(t, recv.srv.URL)
		h.waitStatus(t, id, persistence.StatusCompleted, 5*time.Second)
		nt, err := NewNotifier(NotifierDeps{Webhooks: hooks, Runs: h.runs, Client: loopbackGuard().Client(2 * time.Second),
			Secret: testWebhookSecret, Backoff: time.Millisecond, Attempts: 3})
		if err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 10*time.Second, func() error {
			if _, err := nt.DeliverDue(t.Context()); err != nil {
				return err
			}
			n, err := hooks.Notification(t.Context(), id)
			if err != nil || n.Status != persistence.NotificationFailed {
				return fmt.Errorf("notification %+v, %v", n, err)
			}
			return nil
		})
		if n := len(recv.requests()); n != 3 {
			t.Fatalf("%d requests, want 3", n)
		}
		if n, _ := nt.DeliverDue(t.Context()); n != 0 {
			t.Fatalf("a given-up notification was claimed again")
		}
	})
}

// TestWebhookRefusesLoopbackAtConnectTime: without the operator's allowance the
// guarded client reaches no loopback receiver, whatever URL the run stored; the
// refusal is recorded as a failed attempt.
func TestWebhookRefusesLoopbackAtConnectTime(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		h := newWFHarness(t, db, registerTick)
		hooks := persistence.NewWebhookStore(db)
		recv := newHookReceiver(t)
		id := h.triggerHook(t, recv.srv.URL)
		h.waitStatus(t, id, persistence.StatusCompleted, 5*time.Second)
		nt, err := NewNotifier(NotifierDeps{Webhooks: hooks, Runs: h.runs, Client: netguard.New(nil).Client(2 * time.Second),
			Secret: testWebhookSecret, Backoff: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nt.DeliverDue(t.Context()); err != nil {
			t.Fatal(err)
		}
		ds, err := hooks.Deliveries(t.Context(), id)
		if err != nil || len(ds) != 1 || ds[0].Delivered || !strings.Contains(ds[0].Error, "address refused") {
			t.Fatalf("deliveries %+v, %v", ds, err)
		}
		if n := len(recv.requests()); n != 0 {
			t.Fatalf("the loopback receiver got %d requests", n)
		}
	})
}

// TestWebhookClaimOfADeadNodeIsRetried: a node that claimed a notification and died
// before recording its attempt leaves it to another node once the claim lapses.
func TestWebhookClaimOfADeadNodeIsRetried(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		h := newWFHarness(t, db, registerTick)
		hooks := persistence.NewWebhookStore(db)
		recv := newHookReceiver(t)
		id := h.triggerHook(t, recv.srv.URL)
		h.waitStatus(t, id, persistence.StatusCompleted, 5*time.Second)
		if got, err := hooks.ClaimDueNotifications(t.Context(), time.Now(), time.Minute, 10); err != nil || len(got) != 1 {
			t.Fatalf("dead node's claim = %d, %v", len(got), err)
		}
		later := time.Now().Add(2 * time.Minute)
		nt, err := NewNotifier(NotifierDeps{Webhooks: hooks, Runs: h.runs, Client: loopbackGuard().Client(2 * time.Second),
			Secret: testWebhookSecret, Now: func() time.Time { return later }})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := nt.DeliverDue(t.Context()); err != nil || n != 1 {
			t.Fatalf("DeliverDue after the claim lapsed = %d, %v", n, err)
		}
		if n, err := hooks.Notification(t.Context(), id); err != nil || n.Status != persistence.NotificationDelivered || len(recv.requests()) != 1 {
			t.Fatalf("notification %+v, %v; %d requests", n, err, len(recv.requests()))
		}
	})
}

func TestWorkflowMetrics(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		var calls atomic.Int32
		h := newWFHarness(t, db, func(reg *workflows.Registry) {
			must(t, workflows.Register(reg, "flaky", func(c *workflows.Context, _ noParams) (int, error) {
				return workflows.Task(c, "once-failing", func(context.Context) (int, error) {
					if calls.Add(1) == 1 {
						return 0, errors.New("transient")
					}
					return 1, nil
				}, workflows.WithRetry(workflows.Retry{Attempts: 3, Initial: time.Millisecond}))
			}))
		})
		reg := prometheus.NewRegistry()
		wf, err := NewWorkflows(WorkflowDeps{Runs: h.runs, Writer: h.writer, Registry: h.reg, Caller: h.grains, NodeID: "node-metrics", Metrics: reg})
		if err != nil {
			t.Fatal(err)
		}
		h.grains.props[KindWorkflowRun] = wf.RunProps
		id := h.trigger(t, "flaky", `{}`)
		h.waitStatus(t, id, persistence.StatusCompleted, 5*time.Second)
		// A paused run is counted cluster-wide by the open-runs gauge (read
		// at the first scrape, then cached).
		if _, err := h.runs.CreateRun(t.Context(), persistence.WorkflowRun{Name: "flaky", Status: persistence.StatusPaused}); err != nil {
			t.Fatal(err)
		}
		if n := testutil.CollectAndCount(reg, "kowai_workflow_task_duration_seconds"); n != 2 {
			t.Fatalf("task duration series = %d, want 2 (task retrying, task completed)", n)
		}
		want := `
# HELP kowai_workflow_task_attempts Attempts a task took until it completed or failed for good, by task kind and status.
# TYPE kowai_workflow_task_attempts histogram
kowai_workflow_task_attempts_bucket{kind="task",status="completed",le="1"} 0
kowai_workflow_task_attempts_bucket{kind="task",status="completed",le="2"} 1
kowai_workflow_task_attempts_bucket{kind="task",status="completed",le="3"} 1
kowai_workflow_task_attempts_bucket{kind="task",status="completed",le="4"} 1
kowai_workflow_task_attempts_bucket{kind="task",status="completed",le="5"} 1
kowai_workflow_task_attempts_bucket{kind="task",status="completed",le="7"} 1
kowai_workflow_task_attempts_bucket{kind="task",status="completed",le="10"} 1
kowai_workflow_task_attempts_bucket{kind="task",status="completed",le="+Inf"} 1
kowai_workflow_task_attempts_sum{kind="task",status="completed"} 2
kowai_workflow_task_attempts_count{kind="task",status="completed"} 1
`
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "kowai_workflow_task_attempts"); err != nil {
			t.Fatal(err)
		}
		if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP kowai_workflow_runs Open workflow runs of the whole cluster by status (pending, running, retrying: active; paused: waiting for input or sleeping); the same on every node.
# TYPE kowai_workflow_runs gauge
kowai_workflow_runs{status="paused"} 1
kowai_workflow_runs{status="pending"} 0
kowai_workflow_runs{status="retrying"} 0
kowai_workflow_runs{status="running"} 0
`), "kowai_workflow_runs"); err != nil {
			t.Fatal(err)
		}
	})
}
