package persistence_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
)

func TestConversationsContract(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		ctx := t.Context()
		convs := persistence.NewConversationStore(db)
		alice, bob := seedUser(t, db), seedUser(t, db)
		base := time.Date(2025, 1, 2, 3, 4, 5, 123456789, time.UTC)
		var aliceIDs []string
		for i := range 5 {
			// Equal timestamps for two of them exercise the ID tie-breaker.
			at := base.Add(time.Duration(min(i, 3)) * time.Second)
			c, err := convs.Create(ctx, persistence.Conversation{OwnerID: alice.ID, AgentID: "agent", Title: "a", CreatedAt: at})
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			aliceIDs = append(aliceIDs, c.ID)
		}
		seedConversation(t, db, bob.ID)

		got, err := convs.Get(ctx, aliceIDs[0])
		if err != nil || !got.CreatedAt.Equal(base.Truncate(time.Microsecond)) || got.OwnerID != alice.ID {
			t.Fatalf("Get = %+v, %v; want created at %v (microseconds)", got, err, base)
		}
		if _, err := convs.Get(ctx, "missing"); !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("Get missing = %v, want ErrNotFound", err)
		}
		if _, err := convs.Create(ctx, persistence.Conversation{OwnerID: "no-such-user"}); !errors.Is(err, persistence.ErrConflict) {
			t.Fatalf("Create for a missing owner = %v, want ErrConflict", err)
		}

		// Touching the oldest moves it to the front.
		if err := convs.Touch(ctx, aliceIDs[0], base.Add(time.Hour)); err != nil {
			t.Fatalf("Touch: %v", err)
		}
		want := []string{aliceIDs[0], aliceIDs[4], aliceIDs[3], aliceIDs[2], aliceIDs[1]}
		if want[1] < want[2] { // equal updated_at: higher ID first
			want[1], want[2] = want[2], want[1]
		}
		page := collectPages(t, 2, func(req persistence.PageRequest) (persistence.Page[persistence.Conversation], error) {
			return convs.ListByOwner(ctx, alice.ID, req)
		})
		var ids []string
		for _, c := range page {
			ids = append(ids, c.ID)
		}
		if !slices.Equal(ids, want) {
			t.Fatalf("ListByOwner order = %v, want %v", ids, want)
		}
		all := collectPages(t, 200, func(req persistence.PageRequest) (persistence.Page[persistence.Conversation], error) {
			return convs.ListAll(ctx, req)
		})
		if len(all) != 6 {
			t.Fatalf("ListAll returned %d conversations, want 6", len(all))
		}
		if err := convs.UpdateTitle(ctx, aliceIDs[1], "renamed"); err != nil {
			t.Fatalf("UpdateTitle: %v", err)
		}
		if got, _ := convs.Get(ctx, aliceIDs[1]); got.Title != "renamed" {
			t.Fatalf("title = %q after UpdateTitle", got.Title)
		}
		if err := convs.Touch(ctx, "missing", base); !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("Touch missing = %v, want ErrNotFound", err)
		}
	})
}

// Delete erases the conversation with its messages, their feedback and its snapshots,
// and its ID can never be created again.
func TestConversationDelete(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		ctx := t.Context()
		convs, msgs := persistence.NewConversationStore(db), persistence.NewMessageStore(db)
		snaps := persistence.NewSnapshotStore(db)
		owner := seedUser(t, db)
		conv, kept := seedConversation(t, db, owner.ID), seedConversation(t, db, owner.ID)
		var answers []persistence.Message
		for _, c := range []persistence.Conversation{conv, kept} {
			m, err := msgs.Insert(ctx, persistence.Message{ConversationID: c.ID, Seq: 1, Role: "assistant", Content: "hi"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := persistence.NewFeedbackStore(db).Create(ctx, persistence.Feedback{MessageID: m.ID, UserID: owner.ID, Rating: 1}); err != nil {
				t.Fatal(err)
			}
			if err := snaps.Save(ctx, persistence.Snapshot{Kind: "session", Identity: c.ID, Version: 1, State: []byte("s")}, 0); err != nil {
				t.Fatal(err)
			}
			answers = append(answers, m)
		}
		if err := convs.Delete(ctx, conv.ID); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, err := convs.Get(ctx, conv.ID); !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("Get after Delete = %v, want ErrNotFound", err)
		}
		if _, err := msgs.Get(ctx, answers[0].ID); !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("message after Delete = %v, want ErrNotFound", err)
		}
		if _, err := snaps.Load(ctx, "session", conv.ID); !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("snapshot after Delete = %v, want ErrNotFound", err)
		}
		// The feedback went with its message: rating the same message ID again finds no message.
		if _, err := persistence.NewFeedbackStore(db).Create(ctx, persistence.Feedback{MessageID: answers[0].ID, UserID: owner.ID, Rating: 1}); !errors.Is(err, persistence.ErrConflict) {
			t.Fatalf("feedback on a deleted message = %v, want ErrConflict", err)
		}
		if _, err := convs.Create(ctx, persistence.Conversation{ID: conv.ID, OwnerID: owner.ID}); !errors.Is(err, persistence.ErrGone) {
			t.Fatalf("Create under a deleted ID = %v, want ErrGone", err)
		}
		if err := convs.Delete(ctx, conv.ID); !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("second Delete = %v, want ErrNotFound", err)
		}
		// The other conversation is untouched.
		if _, err := msgs.Get(ctx, answers[1].ID); err != nil {
			t.Fatalf("the other conversation's message: %v", err)
		}
		if _, err := snaps.Load(ctx, "session", kept.ID); err != nil {
			t.Fatalf("the other conversation's snapshot: %v", err)
		}
	})
}
