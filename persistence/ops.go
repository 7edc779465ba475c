package persistence

import (
	"context"
	"time"

	"github.com/doug-martin/goqu/v9"
)

// Ops is one write made of several Ops, applied in order in one transaction: all of
// them or none. Submitted to a Writer, the Inserts among them are merged with the other
// Inserts of the batch like Inserts submitted alone, so bundling an append with a
// snapshot save costs one commit and no statement of its own for the rows.
//
// Merging may apply an Insert before the Ops listed ahead of it (at the place of the
// batch's first Insert into the same table and columns). Ops that depend on each
// other's order, such as rows and the row their foreign key names, still commit
// correctly, since a failed batch is run again with every write applied in order on
// its own, but they lose that batch's merging. ConversationCreate is the exception the
// Writer makes: it is applied before every merged Insert, so a new conversation's rows
// can travel with it.
type Ops []Op

// Apply applies every Op in order and stops at the first error.
func (ops Ops) Apply(ctx context.Context, tx *goqu.TxDatabase) error {
	for _, op := range ops {
		if err := op.Apply(ctx, tx); err != nil {
			return err
		}
	}
	return nil
}

// flatten appends the Ops that op is made of to out, op itself when it is not an Ops.
func flatten(out []Op, op Op) []Op {
	ops, ok := op.(Ops)
	if !ok {
		return append(out, op)
	}
	for _, o := range ops {
		out = flatten(out, o)
	}
	return out
}

// MessagesInsert is the Insert that appends msgs, as Writer.AppendMessages does: IDs
// and times are filled in, and a taken (conversation_id, seq) or (conversation_id,
// idempotency_key) fails it with ErrDuplicate.
func MessagesInsert(msgs ...Message) Insert {
	// The rows do not depend on the dialect.
	return messagesInsert("", msgs)
}

// SnapshotSave is the compare-and-swap save of s, as Writer.SaveSnapshot does: it
// fails with ErrConflict unless the stored version is still expectedVersion.
func SnapshotSave(s Snapshot, expectedVersion int64) Op {
	return snapshotCAS{snap: s, expected: expectedVersion}
}

// ConversationTouch is the Touch that sets the updated_at of conversation id to at.
func ConversationTouch(id string, at time.Time) Touch {
	return Touch{Table: "conversations", Column: "updated_at", ID: id, At: at}
}

// Touch is an Op that sets a time column of the row with primary key id ("id") to At.
// A row that does not exist is not an error: there is nothing to keep up to date. The
// Writer merges the Touches of a batch that name the same table and column into one
// UPDATE, so that touching the rows a batch appends to costs one statement, like the
// appends themselves; when a batch touches a row twice, the later write wins.
type Touch struct {
	Table, Column string
	ID            string
	At            time.Time
}

// Apply sets the column of the row.
func (t Touch) Apply(ctx context.Context, tx *goqu.TxDatabase) error {
	return touchRows(ctx, tx, t.Table, t.Column, []Touch{t})
}

// touchRows applies touches of one table and column, whose IDs are distinct, with one
// UPDATE per chunk that the parameter limit allows.
func touchRows(ctx context.Context, tx *goqu.TxDatabase, table, column string, touches []Touch) error {
	stmts, err := touchStatements(tx, tx.Dialect(), table, column, touches)
	if err != nil {
		return err
	}
	for _, st := range stmts {
		if _, err := tx.ExecContext(ctx, st.query, st.args...); err != nil {
			return wrap(err, "touch %d rows of %s", len(touches), table)
		}
	}
	return nil
}
