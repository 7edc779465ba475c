package persistence_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
)

// owned is what one seeded user has in every table Erase covers.
type owned struct {
	user         persistence.User
	conversation persistence.Conversation
	message      persistence.Message
	agent        persistence.Agent
	run          persistence.WorkflowRun
	session      persistence.AuthSession
}

func seedOwned(t *testing.T, db *persistence.DB, token string) owned {
	t.Helper()
	ctx := t.Context()
	o := owned{user: seedUser(t, db)}
	o.conversation = seedConversation(t, db, o.user.ID)
	var err error
	if o.message, err = persistence.NewMessageStore(db).Insert(ctx, persistence.Message{ConversationID: o.conversation.ID, Seq: 1, Role: "user", Content: "secret of " + o.user.Email}); err != nil {
		t.Fatal(err)
	}
	if err := persistence.NewSnapshotStore(db).Save(ctx, persistence.Snapshot{Kind: "session", Identity: o.conversation.ID,
		ConversationID: o.conversation.ID, Version: 1, State: []byte("recent messages")}, 0); err != nil {
		t.Fatal(err)
	}
	if o.agent, err = persistence.NewAgentStore(db).Create(ctx, persistence.Agent{OwnerID: o.user.ID, Name: "mine", Type: "chat", Signature: "message -> response"}); err != nil {
		t.Fatal(err)
	}
	runs := persistence.NewWorkflowStore(db)
	if o.run, err = runs.CreateRun(ctx, persistence.WorkflowRun{Name: "w", OwnerID: o.user.ID, Status: persistence.StatusRunning, Parameters: json.RawMessage(`{"q":"private"}`)}); err != nil {
		t.Fatal(err)
	}
	if err := runs.AppendStep(ctx, persistence.WorkflowStep{RunID: o.run.ID, Seq: 1, Name: "t1", Kind: "task", Status: persistence.StatusCompleted, Output: json.RawMessage(`"private"`)}); err != nil {
		t.Fatal(err)
	}
	if err := persistence.NewProfileStore(db).SaveProfile(ctx, o.user.ID, json.RawMessage(`{"topics":["private"]}`)); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if o.session, _, err = persistence.NewSessionStore(db).CreateSession(ctx, persistence.AuthSession{UserID: o.user.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour)},
		persistence.RefreshToken{TokenHash: token, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return o
}

// Erase removes everything of one user in one transaction, leaves other users' data
// alone, records itself in the audit log, and leaves nothing a still active session
// grain could write back.
func TestEraseUser(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		ctx := t.Context()
		users, feedback := persistence.NewUserStore(db), persistence.NewFeedbackStore(db)
		gone, kept := seedOwned(t, db, "hash-gone"), seedOwned(t, db, "hash-kept")
		// Feedback both ways: the erased user's on the other's message goes, the
		// other's on the erased user's message goes with the message.
		for _, f := range []persistence.Feedback{
			{MessageID: kept.message.ID, UserID: gone.user.ID, Rating: 1},
			{MessageID: gone.message.ID, UserID: kept.user.ID, Rating: -1},
			{MessageID: kept.message.ID, UserID: kept.user.ID, Rating: 1},
		} {
			if _, err := feedback.Create(ctx, f); err != nil {
				t.Fatal(err)
			}
		}

		var audited persistence.Erasure
		got, err := users.Erase(ctx, gone.user.ID, func(e persistence.Erasure) persistence.AuditEntry {
			audited = e
			return persistence.AuditEntry{ActorID: gone.user.ID, Action: "user.erase", TargetType: "user", TargetID: gone.user.ID}
		})
		if err != nil {
			t.Fatal(err)
		}
		want := persistence.Erasure{Conversations: 1, Messages: 1, Snapshots: 1, Feedback: 1, Agents: 1, WorkflowRuns: 1, Sessions: 1}
		if got != want || audited != want {
			t.Fatalf("Erase = %+v (audited %+v), want %+v", got, audited, want)
		}
		for table, where := range map[string]string{
			"users": "id", "conversations": "owner_id", "agents": "owner_id", "workflow_runs": "owner_id",
			"auth_sessions": "user_id", "feedback": "user_id",
		} {
			if n := countRows(t, db, table, where, gone.user.ID); n != 0 {
				t.Errorf("%s still has %d rows of the erased user", table, n)
			}
		}
		for table, where := range map[string]string{
			"messages": "conversation_id", "snapshots": "identity",
		} {
			if n := countRows(t, db, table, where, gone.conversation.ID); n != 0 {
				t.Errorf("%s still has %d rows of the erased conversation", table, n)
			}
		}
		if n := countRows(t, db, "workflow_steps", "run_id", gone.run.ID); n != 0 {
			t.Errorf("workflow_steps still has %d rows of the erased run", n)
		}
		if n := countRows(t, db, "user_profiles", "user_id", gone.user.ID); n != 0 {
			t.Errorf("user_profiles still has the erased user's profile")
		}
		if n := countRows(t, db, "refresh_tokens", "session_id", gone.session.ID); n != 0 {
			t.Errorf("refresh_tokens still has %d rows of the erased session", n)
		}
		// The other user keeps everything, including their own feedback.
		for table, where := range map[string]string{
			"users": "id", "conversations": "owner_id", "agents": "owner_id", "workflow_runs": "owner_id",
			"auth_sessions": "user_id", "feedback": "user_id",
		} {
			if n := countRows(t, db, table, where, kept.user.ID); n != 1 {
				t.Errorf("%s has %d rows of the other user, want 1", table, n)
			}
		}
		if n := countRows(t, db, "snapshots", "identity", kept.conversation.ID); n != 1 {
			t.Errorf("the other user's snapshot: %d rows, want 1", n)
		}
		if n := countRows(t, db, "audit_log", "target_id", gone.user.ID); n != 1 {
			t.Fatalf("audit entries for the erased user: %d, want 1", n)
		}

		// A session grain that outlives the erasure cannot write the conversation back.
		snaps := persistence.NewSnapshotStore(db)
		for name, err := range map[string]error{
			"first snapshot": snaps.Save(ctx, persistence.Snapshot{Kind: "session", Identity: gone.conversation.ID, ConversationID: gone.conversation.ID, Version: 2, State: []byte("x")}, 0),
			"next snapshot":  snaps.Save(ctx, persistence.Snapshot{Kind: "session", Identity: gone.conversation.ID, ConversationID: gone.conversation.ID, Version: 2, State: []byte("x")}, 1),
			"message":        errOf(persistence.NewMessageStore(db).Insert(ctx, persistence.Message{ConversationID: gone.conversation.ID, Seq: 2, Role: "assistant", Content: "late reply"})),
			"conversation":   errOf(persistence.NewConversationStore(db).Create(ctx, persistence.Conversation{OwnerID: gone.user.ID})),
		} {
			if !errors.Is(err, persistence.ErrConflict) {
				t.Errorf("%s after the erasure: %v, want ErrConflict", name, err)
			}
		}
		if n := countRows(t, db, "snapshots", "identity", gone.conversation.ID); n != 0 {
			t.Fatalf("a snapshot of the erased conversation came back")
		}
		// Nobody, not even another user, creates a conversation under an erased ID.
		if _, err := persistence.NewConversationStore(db).Create(ctx, persistence.Conversation{ID: gone.conversation.ID, OwnerID: kept.user.ID}); !errors.Is(err, persistence.ErrGone) {
			t.Fatalf("conversation under an erased ID: %v, want ErrGone", err)
		}

		// Erasing again finds nobody and records nothing.
		if _, err := users.Erase(ctx, gone.user.ID, func(persistence.Erasure) persistence.AuditEntry {
			return persistence.AuditEntry{Action: "user.erase", TargetID: gone.user.ID}
		}); !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("second Erase = %v, want ErrNotFound", err)
		}
		if n := countRows(t, db, "audit_log", "target_id", gone.user.ID); n != 1 {
			t.Fatalf("audit entries after a failed erasure: %d, want 1", n)
		}
	})
}

func errOf[T any](_ T, err error) error { return err }

// countRows counts the rows of table whose column equals value.
func countRows(t *testing.T, db *persistence.DB, table, column, value string) int {
	t.Helper()
	var n int
	if err := db.SQL.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM "+table+" WHERE "+column+" = ?", value).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// Migration 4 ties the session snapshots already stored to their conversations and
// drops those whose conversation is gone (leftovers of users deleted before it).
func TestSnapshotConversationMigration(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		ctx := t.Context()
		m := newMigrator(t, db, persistence.MigratorOptions{})
		st, err := m.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		since := 0 // migration 4 and those after it
		for _, s := range st {
			if s.Version >= 4 {
				since++
			}
		}
		if n, err := m.Down(ctx, since); err != nil || n != since {
			t.Fatalf("Down(%d) = %d, %v", since, n, err)
		}
		conv := persistence.Conversation{ID: newUUID()}
		if _, err := db.SQL.ExecContext(ctx, "INSERT INTO conversations (id, owner_id, agent_id, title, created_at, updated_at) VALUES (?, ?, '', '', ?, ?)",
			conv.ID, seedUser(t, db).ID, time.Now().UTC(), time.Now().UTC()); err != nil {
			t.Fatal(err)
		}
		// Rows as the schema before the migration holds them.
		for _, row := range [][2]string{{"session", conv.ID}, {"other", "x"}, {"session", "gone"}} {
			if _, err := db.SQL.ExecContext(ctx, "INSERT INTO snapshots (kind, identity, version, state, updated_at) VALUES (?, ?, 1, 's', ?)",
				row[0], row[1], time.Now().UTC()); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := m.Up(ctx); err != nil || n != since {
			t.Fatalf("Up = %d, %v; want %d", n, err, since)
		}
		if n := countRows(t, db, "snapshots", "conversation_id", conv.ID); n != 1 {
			t.Fatalf("session snapshot tied to its conversation: %d rows, want 1", n)
		}
		if n := countRows(t, db, "snapshots", "identity", "gone"); n != 0 {
			t.Fatal("the orphaned session snapshot survived the migration")
		}
		if n := countRows(t, db, "snapshots", "identity", "x"); n != 1 {
			t.Fatal("a snapshot of another kind was dropped")
		}
	})
}
