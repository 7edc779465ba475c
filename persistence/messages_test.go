package persistence_test

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
)

func TestMessagesContract(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		ctx := t.Context()
		msgs := persistence.NewMessageStore(db)
		conv := seedConversation(t, db, seedUser(t, db).ID)
		if seq, err := msgs.LastSeq(ctx, conv.ID); err != nil || seq != 0 {
			t.Fatalf("LastSeq of an empty conversation = %d, %v; want 0", seq, err)
		}
		var ids []string
		for seq := int64(1); seq <= 9; seq++ {
			m := persistence.Message{ConversationID: conv.ID, Seq: seq, Role: "user", Content: "hello"}
			if seq == 3 {
				m.IdempotencyKey, m.Metadata = "key-3", json.RawMessage(`{"model":"offline"}`)
			}
			stored, err := msgs.Insert(ctx, m)
			if err != nil {
				t.Fatalf("Insert %d: %v", seq, err)
			}
			ids = append(ids, stored.ID)
		}
		for _, dup := range []persistence.Message{
			{ConversationID: conv.ID, Seq: 4, Role: "user", Content: "fenced"},
			{ConversationID: conv.ID, Seq: 10, Role: "user", Content: "retry", IdempotencyKey: "key-3"},
		} {
			if _, err := msgs.Insert(ctx, dup); !errors.Is(err, persistence.ErrDuplicate) {
				t.Fatalf("Insert %+v = %v, want ErrDuplicate", dup, err)
			}
		}
		if _, err := msgs.Insert(ctx, persistence.Message{ConversationID: "missing", Seq: 1, Role: "user"}); !errors.Is(err, persistence.ErrConflict) {
			t.Fatalf("Insert into a missing conversation = %v, want ErrConflict", err)
		}

		byKey, err := msgs.GetByIdempotencyKey(ctx, conv.ID, "key-3")
		if err != nil || byKey.Seq != 3 || byKey.ID != ids[2] || string(byKey.Metadata) == "" {
			t.Fatalf("GetByIdempotencyKey = %+v, %v", byKey, err)
		}
		var meta map[string]string
		if err := json.Unmarshal(byKey.Metadata, &meta); err != nil || meta["model"] != "offline" {
			t.Fatalf("metadata = %s (%v)", byKey.Metadata, err)
		}
		if _, err := msgs.GetByIdempotencyKey(ctx, conv.ID, "other"); !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("GetByIdempotencyKey missing = %v, want ErrNotFound", err)
		}
		if got, err := msgs.Get(ctx, ids[0]); err != nil || got.Seq != 1 || got.Metadata != nil || got.IdempotencyKey != "" {
			t.Fatalf("Get = %+v, %v", got, err)
		}
		if seq, err := msgs.LastSeq(ctx, conv.ID); err != nil || seq != 9 {
			t.Fatalf("LastSeq = %d, %v; want 9", seq, err)
		}

		tail, err := msgs.Tail(ctx, conv.ID, 3)
		if err != nil || len(tail) != 3 || tail[0].Seq != 7 || tail[2].Seq != 9 {
			t.Fatalf("Tail(3) = %v, %v; want seqs 7..9", seqs(tail), err)
		}
		tests := []struct {
			dir  persistence.Direction
			want []int64
		}{
			{persistence.Forward, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9}},
			{persistence.Backward, []int64{9, 8, 7, 6, 5, 4, 3, 2, 1}},
		}
		for _, tt := range tests {
			all := collectPages(t, 4, func(req persistence.PageRequest) (persistence.Page[persistence.Message], error) {
				return msgs.ListByConversation(ctx, conv.ID, tt.dir, req)
			})
			if got := seqs(all); !slices.Equal(got, tt.want) {
				t.Fatalf("ListByConversation(%v) = %v, want %v", tt.dir, got, tt.want)
			}
		}
	})
}

func TestFeedbackContract(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		ctx := t.Context()
		user := seedUser(t, db)
		conv := seedConversation(t, db, user.ID)
		m, err := persistence.NewMessageStore(db).Insert(ctx, persistence.Message{ConversationID: conv.ID, Seq: 1, Role: "assistant", Content: "hi"})
		if err != nil {
			t.Fatal(err)
		}
		fb := persistence.NewFeedbackStore(db)
		if _, err := fb.Create(ctx, persistence.Feedback{MessageID: m.ID, UserID: user.ID, Rating: 1, Comment: "good"}); err != nil {
			t.Fatalf("Create: %v", err)
		}
		tests := []struct {
			name string
			f    persistence.Feedback
			want error
		}{
			{"second rating", persistence.Feedback{MessageID: m.ID, UserID: user.ID, Rating: -1}, persistence.ErrDuplicate},
			{"missing message", persistence.Feedback{MessageID: "missing", UserID: user.ID, Rating: 1}, persistence.ErrConflict},
		}
		for _, tt := range tests {
			if _, err := fb.Create(ctx, tt.f); !errors.Is(err, tt.want) {
				t.Errorf("%s: Create = %v, want %v", tt.name, err, tt.want)
			}
		}
		if _, err := fb.Create(ctx, persistence.Feedback{MessageID: m.ID, UserID: user.ID, Rating: 5}); err == nil {
			t.Error("Create with rating 5 succeeded")
		}
	})
}

// Put changes a rating in place: the same row (ID, creation time), new rating and
// comment; a first Put creates.
func TestFeedbackPut(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		ctx := t.Context()
		user, other := seedUser(t, db), seedUser(t, db)
		conv := seedConversation(t, db, user.ID)
		m, err := persistence.NewMessageStore(db).Insert(ctx, persistence.Message{ConversationID: conv.ID, Seq: 1, Role: "assistant", Content: "hi"})
		if err != nil {
			t.Fatal(err)
		}
		fb := persistence.NewFeedbackStore(db)
		first, created, err := fb.Put(ctx, persistence.Feedback{MessageID: m.ID, UserID: user.ID, Rating: 1, Comment: "good"})
		if err != nil || !created {
			t.Fatalf("first Put = %+v, created %v, %v", first, created, err)
		}
		again, created, err := fb.Put(ctx, persistence.Feedback{MessageID: m.ID, UserID: user.ID, Rating: -1, Comment: "on reflection, wrong"})
		if err != nil || created || again.ID != first.ID || again.Rating != -1 || again.Comment != "on reflection, wrong" ||
			!again.CreatedAt.Equal(first.CreatedAt.Truncate(time.Microsecond)) {
			t.Fatalf("second Put = %+v, created %v, %v; first %+v", again, created, err, first)
		}
		// Another user's rating of the same message is a row of its own.
		if theirs, created, err := fb.Put(ctx, persistence.Feedback{MessageID: m.ID, UserID: other.ID, Rating: 1}); err != nil || !created || theirs.ID == first.ID {
			t.Fatalf("other user's Put = %+v, created %v, %v", theirs, created, err)
		}
		if _, _, err := fb.Put(ctx, persistence.Feedback{MessageID: "missing", UserID: user.ID, Rating: 1}); !errors.Is(err, persistence.ErrConflict) {
			t.Fatalf("Put on a missing message = %v, want ErrConflict", err)
		}
	})
}

func TestSnapshotsContract(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		ctx := t.Context()
		snaps := persistence.NewSnapshotStore(db)
		if _, err := snaps.Load(ctx, "session", "c1"); !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("Load missing = %v, want ErrNotFound", err)
		}
		save := func(version, expected int64, state string) error {
			return snaps.Save(ctx, persistence.Snapshot{Kind: "session", Identity: "c1", Version: version, State: []byte(state)}, expected)
		}
		if err := save(1, 0, "one"); err != nil {
			t.Fatalf("first Save: %v", err)
		}
		// A second activation that also believes nothing is stored loses.
		if err := save(1, 0, "rival"); !errors.Is(err, persistence.ErrConflict) {
			t.Fatalf("rival first Save = %v, want ErrConflict", err)
		}
		if err := save(2, 1, "two"); err != nil {
			t.Fatalf("Save 1->2: %v", err)
		}
		// A stale activation still at version 1 loses.
		if err := save(2, 1, "stale"); !errors.Is(err, persistence.ErrConflict) {
			t.Fatalf("stale Save = %v, want ErrConflict", err)
		}
		if err := save(2, 2, "same"); err == nil || errors.Is(err, persistence.ErrConflict) {
			t.Fatalf("Save without a version bump = %v, want a usage error", err)
		}
		got, err := snaps.Load(ctx, "session", "c1")
		if err != nil || got.Version != 2 || string(got.State) != "two" || got.UpdatedAt.IsZero() {
			t.Fatalf("Load = %+v, %v; want version 2 state two", got, err)
		}
		if err := snaps.Delete(ctx, "session", "c1"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, err := snaps.Load(ctx, "session", "c1"); !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("Load after Delete = %v, want ErrNotFound", err)
		}
	})
}

func seqs(ms []persistence.Message) []int64 {
	out := make([]int64, len(ms))
	for i, m := range ms {
		out[i] = m.Seq
	}
	return out
}
