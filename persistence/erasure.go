package persistence

import (
	"context"
	"fmt"
	"time"

	"github.com/doug-martin/goqu/v9"
	"github.com/doug-martin/goqu/v9/exp"
)

// Erasure counts the rows Erase removed, by kind.
type Erasure struct {
	Conversations int64
	Messages      int64
	// Snapshots are the conversations' session snapshots.
	Snapshots int64
	// Feedback is the feedback the user gave; feedback others gave on the user's
	// messages goes with the messages.
	Feedback     int64
	Agents       int64
	WorkflowRuns int64
	// Sessions are sign-in sessions, with their refresh tokens.
	Sessions int64
}

// Erase deletes the user id and everything that is theirs: conversations with their
// messages and session snapshots, the feedback they gave, their agents, their workflow
// runs with their journals, events and webhook deliveries, their workflow schedules, the profile workflows keep about them, their usage ledger and budget override, and their sign-in sessions with their refresh tokens; each
// erased conversation leaves a tombstone, as a deleted one does. It
// appends the entry audit returns for the counts in the same transaction, so the
// erasure and its record commit together or not at all; the entry should name the user
// by ID only. Audit entries the user made earlier stay: the log is append-only.
//
// The deletes are explicit, children first, rather than left to the foreign keys'
// cascades, so that the counts are known and workflow runs (whose owner is only set to
// NULL by the key) go too. A session grain still active for one of the conversations
// cannot bring it back: its message appends and snapshot saves fail on the foreign key
// to the deleted conversation, and a new conversation fails on the one to the user.
func (s *UserStore) Erase(ctx context.Context, id string, audit func(Erasure) AuditEntry) (Erasure, error) {
	var out Erasure
	err := s.db.inTx(ctx, func(tx *goqu.TxDatabase) error {
		// The row lock keeps a concurrent insert that names the user (a new
		// conversation, a login) from committing between the deletes below.
		var found string
		lock := tx.From("users").Prepared(true).Select("id").Where(goqu.C("id").Eq(id)).ForUpdate(exp.Wait)
		if err := scanOne(ctx, lock, &found); err != nil {
			return classify(err)
		}
		conversations := tx.From("conversations").Prepared(true).Select("id").Where(goqu.C("owner_id").Eq(id))
		// Tombstones first, so that no later turn (a retried first turn, another
		// user naming the ID) creates a conversation under an erased ID.
		tombstones := tx.Insert("conversation_tombstones").Prepared(true).Cols("id", "deleted_at").
			FromQuery(tx.From("conversations").Select("id", goqu.V(utc(time.Now()))).Where(goqu.C("owner_id").Eq(id)))
		if _, err := tombstones.Executor().ExecContext(ctx); err != nil {
			return wrap(err, "tombstone conversations")
		}
		runs := tx.From("workflow_runs").Prepared(true).Select("id").Where(goqu.C("owner_id").Eq(id))
		for _, step := range []struct {
			table string
			where goqu.Expression
			count *int64
		}{
			{"feedback", goqu.C("user_id").Eq(id), &out.Feedback},
			{"snapshots", goqu.C("conversation_id").In(conversations), &out.Snapshots},
			{"messages", goqu.C("conversation_id").In(conversations), &out.Messages},
			{"conversations", goqu.C("owner_id").Eq(id), &out.Conversations},
			{"workflow_steps", goqu.C("run_id").In(runs), nil},
			{"workflow_events", goqu.C("run_id").In(runs), nil},
			{"webhook_deliveries", goqu.C("run_id").In(runs), nil},
			{"webhook_notifications", goqu.C("run_id").In(runs), nil},
			{"workflow_runs", goqu.C("owner_id").Eq(id), &out.WorkflowRuns},
			{"workflow_schedules", goqu.C("owner_id").Eq(id), nil},
			{"agents", goqu.C("owner_id").Eq(id), &out.Agents},
			{"user_profiles", goqu.C("user_id").Eq(id), nil},
			{"usage_rollup", goqu.C("user_id").Eq(id), nil},
			{"user_budgets", goqu.C("user_id").Eq(id), nil},
			{"auth_sessions", goqu.C("user_id").Eq(id), &out.Sessions},
			{"users", goqu.C("id").Eq(id), nil},
		} {
			n, err := rowsAffected(tx.Delete(step.table).Prepared(true).Where(step.where).Executor().ExecContext(ctx))
			if err != nil {
				return wrap(err, "delete from %s", step.table)
			}
			if step.count != nil {
				*step.count = n
			}
		}
		_, err := appendAudit(ctx, tx, audit(out))
		return err
	})
	if err != nil {
		return Erasure{}, fmt.Errorf("erase user %s: %w", id, err)
	}
	return out, nil
}
