package persistence

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/doug-martin/goqu/v9"
)

// States of a webhook notification.
const (
	NotificationPending   = "pending"
	NotificationDelivered = "delivered"
	NotificationFailed    = "failed"
)

// WebhookNotification is the notification of one finished run: NotificationPending
// until an attempt succeeds (NotificationDelivered) or the attempts run out
// (NotificationFailed). NextAt is when a node must try (or, while a node holds a
// claim, the claim's end); zero once settled.
type WebhookNotification struct {
	RunID     string
	URL       string
	Status    string
	Attempts  int
	NextAt    time.Time
	Version   int64
	UpdatedAt time.Time
}

// WebhookDelivery is one attempt to deliver a run's notification. Attempt counts
// from 1 per run, across every notification the run had (a retried run notifies
// again).
type WebhookDelivery struct {
	RunID      string
	Attempt    int
	StatusCode int
	Error      string
	Delivered  bool
	At         time.Time
}

// Webhooks stores webhook notifications and their delivery attempts.
type Webhooks interface {
	// ClaimDueNotifications takes up to limit pending notifications whose NextAt has
	// passed at now, moves their NextAt to now+lease (a version compare-and-swap, so
	// one claimer gets each) and returns them.
	ClaimDueNotifications(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]WebhookNotification, error)
	// RecordDelivery stores attempt d and, in the same transaction, replaces the
	// notification with n if its stored version is still expected (ErrConflict
	// otherwise, and nothing is stored).
	RecordDelivery(ctx context.Context, n WebhookNotification, expected int64, d WebhookDelivery) error
	// Deliveries returns the run's attempts in order.
	Deliveries(ctx context.Context, runID string) ([]WebhookDelivery, error)
	// Notification returns the run's notification, or ErrNotFound.
	Notification(ctx context.Context, runID string) (WebhookNotification, error)
}

// NotifyOp (re)opens the notification of run runID to url, due at: an Op for the
// transaction that finishes the run, so a finished run always has its notification.
// A run that finishes again after a retry notifies again.
func NotifyOp(runID, url string, at time.Time) Op {
	return OpFunc(func(ctx context.Context, tx *goqu.TxDatabase) error {
		if _, err := tx.Delete("webhook_notifications").Prepared(true).Where(goqu.C("run_id").Eq(runID)).Executor().ExecContext(ctx); err != nil {
			return wrap(err, "reset notification of run %s", runID)
		}
		at = utc(at)
		_, err := tx.Insert("webhook_notifications").Prepared(true).Rows(goqu.Record{"run_id": runID, "url": url,
			"status": NotificationPending, "attempts": 0, "next_at": at, "version": 1, "updated_at": at}).Executor().ExecContext(ctx)
		return wrap(err, "open notification of run %s", runID)
	})
}

// WebhookStore implements Webhooks on a DB.
type WebhookStore struct{ db *DB }

var _ Webhooks = (*WebhookStore)(nil)

// NewWebhookStore returns the webhook repository of db.
func NewWebhookStore(db *DB) *WebhookStore { return &WebhookStore{db: db} }

var notificationCols = []any{"run_id", "url", "status", "attempts", "next_at", "version", "updated_at"}

func scanNotification(sc scanner) (WebhookNotification, error) {
	var n WebhookNotification
	var next sql.NullTime
	if err := sc.Scan(&n.RunID, &n.URL, &n.Status, &n.Attempts, &next, &n.Version, &n.UpdatedAt); err != nil {
		return WebhookNotification{}, err
	}
	n.NextAt = next.Time
	return n, nil
}

// ClaimDueNotifications implements Webhooks; it reads the next_at index up to now only.
func (s *WebhookStore) ClaimDueNotifications(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]WebhookNotification, error) {
	return claimDue(ctx, s.db, dueClaim[WebhookNotification]{
		table: "webhook_notifications", key: "run_id", due: "next_at", what: "webhook notification",
		cols: notificationCols, scan: scanNotification,
		id:      func(n WebhookNotification) string { return n.RunID },
		version: func(n WebhookNotification) int64 { return n.Version },
		claimed: func(n *WebhookNotification, until, now time.Time) {
			n.NextAt, n.Version, n.UpdatedAt = until, n.Version+1, now
		},
	}, now, lease, limit)
}

// RecordDelivery implements Webhooks.
func (s *WebhookStore) RecordDelivery(ctx context.Context, n WebhookNotification, expected int64, d WebhookDelivery) error {
	return s.db.inTx(ctx, func(tx *goqu.TxDatabase) error {
		upd := tx.Update("webhook_notifications").Prepared(true).Set(goqu.Record{"status": n.Status, "attempts": n.Attempts,
			"next_at": nullTime(n.NextAt), "version": n.Version, "updated_at": utc(time.Now())}).
			Where(goqu.C("run_id").Eq(n.RunID), goqu.C("version").Eq(expected))
		k, err := rowsAffected(upd.Executor().ExecContext(ctx))
		if err != nil {
			return wrap(err, "save notification of run %s", n.RunID)
		}
		if k == 0 {
			return fmt.Errorf("save notification of run %s: stored version is not %d: %w", n.RunID, expected, ErrConflict)
		}
		_, err = tx.Insert("webhook_deliveries").Prepared(true).Rows(goqu.Record{"run_id": d.RunID, "attempt": d.Attempt,
			"status_code": d.StatusCode, "error": d.Error, "delivered": d.Delivered, "at": utc(d.At)}).Executor().ExecContext(ctx)
		return wrap(err, "record delivery %d of run %s", d.Attempt, d.RunID)
	})
}

// Deliveries implements Webhooks.
func (s *WebhookStore) Deliveries(ctx context.Context, runID string) ([]WebhookDelivery, error) {
	q := s.db.Goqu.From("webhook_deliveries").Prepared(true).Select("run_id", "attempt", "status_code", "error", "delivered", "at").
		Where(goqu.C("run_id").Eq(runID)).Order(goqu.C("attempt").Asc())
	ds, err := scanAll(ctx, q, func(sc scanner) (WebhookDelivery, error) {
		var d WebhookDelivery
		return d, sc.Scan(&d.RunID, &d.Attempt, &d.StatusCode, &d.Error, &d.Delivered, &d.At)
	})
	if err != nil {
		return nil, wrap(err, "list deliveries of run %s", runID)
	}
	return ds, nil
}

// Notification implements Webhooks.
func (s *WebhookStore) Notification(ctx context.Context, runID string) (WebhookNotification, error) {
	q := s.db.Goqu.From("webhook_notifications").Prepared(true).Select(notificationCols...).Where(goqu.C("run_id").Eq(runID))
	n, err := first(ctx, q, scanNotification)
	if err != nil {
		return WebhookNotification{}, fmt.Errorf("get notification of run %s: %w", runID, err)
	}
	return n, nil
}
