package persistence

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/doug-martin/goqu/v9"
)

// Snapshot is an actor's derived state, saved so activation is fast. Version orders the
// writes of one (Kind, Identity): each save names the version it expects to replace.
type Snapshot struct {
	Kind     string
	Identity string
	// ConversationID, when set, names the conversation the snapshot belongs to (a
	// session grain's): deleting the conversation deletes the snapshot, and saving it
	// fails with ErrConflict once the conversation is gone, so an activation that
	// outlives an erasure cannot bring the conversation's content back. Save stores it
	// only when it creates the snapshot; Load leaves it empty.
	ConversationID string
	Version        int64
	State          []byte
	UpdatedAt      time.Time
}

// Snapshots loads and saves actor snapshots with optimistic concurrency.
//
// Save is the fencing between two activations of one identity: only the writer that
// read the current version can replace it, and the loser gets ErrConflict.
type Snapshots interface {
	// Load returns the snapshot of (kind, identity), or ErrNotFound.
	Load(ctx context.Context, kind, identity string) (Snapshot, error)
	// Save stores s (with version s.Version) if the stored version is still expected,
	// 0 meaning that no snapshot exists yet; otherwise it returns ErrConflict.
	Save(ctx context.Context, s Snapshot, expected int64) error
	// Delete removes the snapshot of (kind, identity); a missing one is not an error.
	Delete(ctx context.Context, kind, identity string) error
	// LoadSession loads the snapshot of a conversation's actor and whether the log goes
	// on past it, in one round trip; see SnapshotStore.LoadSession.
	LoadSession(ctx context.Context, kind, conversationID string) (snap Snapshot, behind bool, err error)
}

// SnapshotStore implements Snapshots on a DB. For writes from many actors, prefer the
// group-commit Writer's SaveSnapshot, which has the same semantics.
type SnapshotStore struct{ db *DB }

var _ Snapshots = (*SnapshotStore)(nil)

// NewSnapshotStore returns the snapshot repository of db.
func NewSnapshotStore(db *DB) *SnapshotStore { return &SnapshotStore{db: db} }

// Load implements Snapshots.
func (s *SnapshotStore) Load(ctx context.Context, kind, identity string) (Snapshot, error) {
	q := s.db.Goqu.From("snapshots").Prepared(true).
		Select("kind", "identity", "version", "state", "updated_at").
		Where(goqu.C("kind").Eq(kind), goqu.C("identity").Eq(identity))
	var snap Snapshot
	err := scanOne(ctx, q, &snap.Kind, &snap.Identity, &snap.Version, &snap.State, &snap.UpdatedAt)
	if err != nil {
		return Snapshot{}, wrap(err, "load snapshot %s/%s", kind, identity)
	}
	return snap, nil
}

// Save implements Snapshots.
func (s *SnapshotStore) Save(ctx context.Context, snap Snapshot, expected int64) error {
	return saveSnapshotTx(ctx, s.db.Goqu, snap, expected)
}

// Delete implements Snapshots.
func (s *SnapshotStore) Delete(ctx context.Context, kind, identity string) error {
	q := s.db.Goqu.Delete("snapshots").Prepared(true).
		Where(goqu.C("kind").Eq(kind), goqu.C("identity").Eq(identity))
	if _, err := q.Executor().ExecContext(ctx); err != nil {
		return wrap(err, "delete snapshot %s/%s", kind, identity)
	}
	return nil
}

// saveSnapshotTx is the compare-and-swap shared by SnapshotStore and the Writer: an
// INSERT when nothing is expected (a duplicate key means another writer was first), else
// an UPDATE guarded by the expected version.
func saveSnapshotTx(ctx context.Context, q runner, s Snapshot, expected int64) error {
	if s.Version <= expected {
		return fmt.Errorf("persistence: save snapshot %s/%s: version %d must be greater than the expected %d",
			s.Kind, s.Identity, s.Version, expected)
	}
	now := utc(s.UpdatedAt)
	if s.UpdatedAt.IsZero() {
		now = utc(time.Now())
	}
	state := s.State
	if state == nil {
		state = []byte{}
	}
	if expected == 0 {
		ins := q.Insert("snapshots").Prepared(true).Rows(goqu.Record{
			"kind": s.Kind, "identity": s.Identity, "conversation_id": nullString(s.ConversationID),
			"version": s.Version, "state": state, "updated_at": now,
		})
		if _, err := ins.Executor().ExecContext(ctx); err != nil {
			err = classify(err)
			if isDuplicate(err) {
				return fmt.Errorf("save snapshot %s/%s: another writer created it first: %w", s.Kind, s.Identity, ErrConflict)
			}
			if errors.Is(err, ErrConflict) {
				return fmt.Errorf("save snapshot %s/%s: conversation %s is gone: %w", s.Kind, s.Identity, s.ConversationID, err)
			}
			return fmt.Errorf("save snapshot %s/%s: %w", s.Kind, s.Identity, err)
		}
		return nil
	}
	upd := q.Update("snapshots").Prepared(true).
		Set(goqu.Record{"version": s.Version, "state": state, "updated_at": now}).
		Where(goqu.C("kind").Eq(s.Kind), goqu.C("identity").Eq(s.Identity), goqu.C("version").Eq(expected))
	n, err := rowsAffected(upd.Executor().ExecContext(ctx))
	if err != nil {
		return wrap(err, "save snapshot %s/%s", s.Kind, s.Identity)
	}
	if n == 0 {
		return fmt.Errorf("save snapshot %s/%s: stored version is not %d: %w", s.Kind, s.Identity, expected, ErrConflict)
	}
	return nil
}
