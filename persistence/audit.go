package persistence

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/doug-martin/goqu/v9"
)

// AuditEntry records who did what to which target.
type AuditEntry struct {
	ID string
	// ActorID is the acting user; empty for the system.
	ActorID    string
	Action     string
	TargetType string
	TargetID   string
	// Detail is a JSON object, or nil.
	Detail    json.RawMessage
	IP        string
	CreatedAt time.Time
}

// AuditLog is an append-only record of security-relevant actions.
type AuditLog interface {
	// Append stores e (ID and time filled in when empty).
	Append(ctx context.Context, e AuditEntry) (AuditEntry, error)
	// List pages the log, newest first.
	List(ctx context.Context, req PageRequest) (Page[AuditEntry], error)
}

// AuditStore implements AuditLog on a DB.
type AuditStore struct{ db *DB }

var _ AuditLog = (*AuditStore)(nil)

// NewAuditStore returns the audit log of db.
func NewAuditStore(db *DB) *AuditStore { return &AuditStore{db: db} }

// Append implements AuditLog.
func (s *AuditStore) Append(ctx context.Context, e AuditEntry) (AuditEntry, error) {
	return appendAudit(ctx, s.db.Goqu, e)
}

// appendAudit stores e with r, so that a change and its record can share a transaction.
func appendAudit(ctx context.Context, r runner, e AuditEntry) (AuditEntry, error) {
	if e.ID == "" {
		e.ID = newID()
	}
	if e.CreatedAt.IsZero() {
		e.CreatedAt = time.Now()
	}
	e.CreatedAt = utc(e.CreatedAt)
	q := r.Insert("audit_log").Prepared(true).Rows(goqu.Record{
		"id": e.ID, "actor_id": e.ActorID, "action": e.Action, "target_type": e.TargetType,
		"target_id": e.TargetID, "detail": nullJSON(e.Detail), "ip": e.IP, "created_at": e.CreatedAt,
	})
	if _, err := q.Executor().ExecContext(ctx); err != nil {
		return AuditEntry{}, wrap(err, "append audit entry %s", e.Action)
	}
	return e, nil
}

// List implements AuditLog.
func (s *AuditStore) List(ctx context.Context, req PageRequest) (Page[AuditEntry], error) {
	q := s.db.Goqu.From("audit_log").Prepared(true).
		Select("id", "actor_id", "action", "target_type", "target_id", "detail", "ip", "created_at")
	q, err := keyset(q, req, "created_at", true, timeParser)
	if err != nil {
		return Page[AuditEntry]{}, fmt.Errorf("list audit log: %w", err)
	}
	es, err := scanAll(ctx, q, func(sc scanner) (AuditEntry, error) {
		var (
			e      AuditEntry
			detail []byte
		)
		err := sc.Scan(&e.ID, &e.ActorID, &e.Action, &e.TargetType, &e.TargetID, &detail, &e.IP, &e.CreatedAt)
		if len(detail) > 0 {
			e.Detail = detail
		}
		return e, err
	})
	if err != nil {
		return Page[AuditEntry]{}, wrap(err, "list audit log")
	}
	return pageOf(es, req, func(e AuditEntry) (string, string) { return timeKey(e.CreatedAt), e.ID }), nil
}
