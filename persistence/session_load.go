package persistence

import (
	"context"
	"database/sql"
)

// sessionLoadSQL reads a snapshot by primary key and, in the same statement, looks up
// the message that would follow it in the log by the unique (conversation_id, seq)
// key: two index lookups and no subquery, so it costs barely more than the snapshot
// read alone, and an activation whose snapshot is current needs no other read. Both
// dialects accept it as is.
const sessionLoadSQL = `SELECT s.version, s.state, s.updated_at, m.seq
FROM snapshots s LEFT JOIN messages m ON m.conversation_id = ? AND m.seq = s.version + 1
WHERE s.kind = ? AND s.identity = ?`

// LoadSession returns the snapshot of (kind, conversationID), like Load, and whether
// the conversation's log goes on past it, in one round trip. It relies on the
// versioning of conversation snapshots: Version is the seq of the last message the
// snapshot covers, so the log goes on past it when a message with seq Version+1
// exists. A snapshot that was versioned otherwise makes the answer meaningless; the
// caller checks the version against the state it decodes. No snapshot is ErrNotFound.
func (s *SnapshotStore) LoadSession(ctx context.Context, kind, conversationID string) (snap Snapshot, behind bool, err error) {
	var next sql.NullInt64
	snap = Snapshot{Kind: kind, Identity: conversationID}
	err = s.db.run.QueryRowContext(ctx, sessionLoadSQL, conversationID, kind, conversationID).
		Scan(&snap.Version, &snap.State, &snap.UpdatedAt, &next)
	if err != nil {
		return Snapshot{}, false, wrap(err, "load snapshot %s/%s", kind, conversationID)
	}
	return snap, next.Valid, nil
}
