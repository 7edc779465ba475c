package persistence_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doug-martin/goqu/v9"

	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
)

// The Ops of one write commit all together or not at all, also when their Inserts and
// Touches are merged with other writes of the batch and another write of the batch
// fails.
func TestWriterOps(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		h := newHarness(t, db, persistence.WriterOptions{})
		a, b := newConversation(t, db), newConversation(t, db)
		at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
		submit := func(op persistence.Op) <-chan error {
			return h.submit(func() error { return h.w.Submit(context.Background(), op) })
		}
		// Queued before Run, the three writes form one batch.
		ok := submit(persistence.Ops{
			persistence.MessagesInsert(persistence.Message{ConversationID: a, Seq: 1, Role: "assistant", Content: "reply"}),
			persistence.ConversationTouch(a, at),
			persistence.SnapshotSave(persistence.Snapshot{Kind: "session", Identity: a, Version: 1, State: []byte("{}")}, 0),
		})
		lost := submit(persistence.Ops{
			persistence.MessagesInsert(persistence.Message{ConversationID: b, Seq: 1, Role: "assistant", Content: "stale"}),
			persistence.SnapshotSave(persistence.Snapshot{Kind: "session", Identity: b, Version: 6, State: []byte("{}")}, 5),
		})
		plain := h.appendAsync(persistence.Message{ConversationID: a, Seq: 2, Role: "user", Content: "next"})
		// The Touches of the batch merge: the later one of a row wins, a missing row is
		// no error.
		later := submit(persistence.Ops{persistence.ConversationTouch(a, at.Add(time.Hour)), persistence.ConversationTouch(newUUID(), at)})
		h.run(t.Context())

		if err := recv(t, ok); err != nil {
			t.Fatalf("ops = %v", err)
		}
		if err := recv(t, lost); !errors.Is(err, persistence.ErrConflict) {
			t.Fatalf("ops with a lost compare-and-swap = %v, want ErrConflict", err)
		}
		if err := recv(t, plain); err != nil {
			t.Fatalf("append beside the ops = %v", err)
		}
		if err := recv(t, later); err != nil {
			t.Fatalf("touches = %v", err)
		}
		if n, rows := h.batches(); n != 1 || rows != 8 {
			t.Fatalf("batches = %d with %v rows, want 1 with 8", n, rows)
		}

		msgs := persistence.NewMessageStore(db)
		for conv, want := range map[string][]int64{a: {1, 2}, b: nil} {
			tail, err := msgs.Tail(t.Context(), conv, 10)
			if err != nil {
				t.Fatal(err)
			}
			var seqs []int64
			for _, m := range tail {
				seqs = append(seqs, m.Seq)
			}
			if !slices.Equal(seqs, want) {
				t.Fatalf("messages of %s = %v, want %v", conv, seqs, want)
			}
		}
		if c, err := persistence.NewConversationStore(db).Get(t.Context(), a); err != nil || !c.UpdatedAt.Equal(at.Add(time.Hour)) {
			t.Fatalf("touched conversation = %+v, %v", c, err)
		}
		if s, err := persistence.NewSnapshotStore(db).Load(t.Context(), "session", a); err != nil || s.Version != 1 {
			t.Fatalf("snapshot = %+v, %v", s, err)
		}
	})
}

// Merged into one UPDATE, the later of two Touches of a row wins.
func TestWriterTouchMerge(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		h := newHarness(t, db, persistence.WriterOptions{})
		a, b := newConversation(t, db), newConversation(t, db)
		at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
		var pending []<-chan error
		for i, id := range []string{a, b, a} {
			touch := persistence.ConversationTouch(id, at.Add(time.Duration(i)*time.Hour))
			pending = append(pending, h.submit(func() error { return h.w.Submit(context.Background(), touch) }))
		}
		h.run(t.Context())
		for _, errc := range pending {
			if err := recv(t, errc); err != nil {
				t.Fatal(err)
			}
		}
		if n, _ := h.batches(); n != 1 {
			t.Fatalf("batches = %d, want 1", n)
		}
		convs := persistence.NewConversationStore(db)
		for id, want := range map[string]time.Time{a: at.Add(2 * time.Hour), b: at.Add(time.Hour)} {
			if c, err := convs.Get(t.Context(), id); err != nil || !c.UpdatedAt.Equal(want) {
				t.Fatalf("updated_at of %s = %v, %v; want %v", id, c.UpdatedAt, err, want)
			}
		}
	})
}

// A new conversation's row, submitted in one Ops with its first message, commits in a
// batch with other conversations' messages without costing the batch its merging (the
// Writer applies the row first, so no foreign key fails and no write is run again), and
// a create that fails fails its own write only, leaving none of its rows.
func TestWriterConversationCreate(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		h := newHarness(t, db, persistence.WriterOptions{})
		convs := persistence.NewConversationStore(db)
		a := newConversation(t, db)
		owned, err := convs.Get(t.Context(), a)
		if err != nil {
			t.Fatal(err)
		}
		owner := owned.OwnerID
		gone := newConversation(t, db)
		if err := convs.Delete(t.Context(), gone); err != nil {
			t.Fatal(err)
		}
		first := func(id, owner string) persistence.Op {
			return persistence.Ops{persistence.ConversationCreate(persistence.Conversation{ID: id, OwnerID: owner, Title: "first"}),
				persistence.MessagesInsert(message(id, 1))}
		}
		var applied atomic.Int32
		counted := persistence.OpFunc(func(context.Context, *goqu.TxDatabase) error {
			applied.Add(1)
			return nil
		})
		fresh := newUUID()
		// Queued before Run, the three writes form one batch, with the messages' merged
		// Insert seen ahead of the create; counted runs first, so a second run of the
		// batch (with every write on its own) shows.
		answers := []<-chan error{
			h.submit(func() error { return h.w.Submit(context.Background(), counted) }),
			h.appendAsync(message(a, 1)),
			h.submit(func() error { return h.w.Submit(context.Background(), first(fresh, owner)) }),
		}
		h.run(t.Context())
		for i, errc := range answers {
			if err := recv(t, errc); err != nil {
				t.Fatalf("write %d = %v", i, err)
			}
		}
		if n, _ := h.batches(); n != 1 || applied.Load() != 1 {
			t.Fatalf("%d batches, an op applied %d times; want 1 batch applied once", n, applied.Load())
		}
		if c, err := convs.Get(t.Context(), fresh); err != nil || c.OwnerID != owner || c.Title != "first" {
			t.Fatalf("created conversation = %+v, %v", c, err)
		}
		if got := storedIDs(t, db, fresh); len(got) != 1 {
			t.Fatalf("messages of the new conversation: %v", got)
		}

		// Alone in a batch (on MariaDB, one multi-statement request).
		for _, c := range []struct {
			name, id, owner string
			want            error
		}{
			{"new ID", newUUID(), owner, nil},
			{"taken ID", fresh, owner, persistence.ErrDuplicate},
			{"deleted ID", gone, owner, persistence.ErrGone},
			{"missing owner", newUUID(), newUUID(), persistence.ErrNoOwner},
		} {
			err := h.w.Submit(t.Context(), first(c.id, c.owner))
			if c.want == nil {
				if err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				if got := storedIDs(t, db, c.id); len(got) != 1 {
					t.Fatalf("%s: messages stored: %v", c.name, got)
				}
				continue
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("%s: %v, want %v", c.name, err, c.want)
			}
			if c.id != fresh {
				if got := storedIDs(t, db, c.id); len(got) != 0 {
					t.Fatalf("%s: messages stored: %v", c.name, got)
				}
			}
		}
		if got := storedIDs(t, db, fresh); len(got) != 1 {
			t.Fatalf("messages of the new conversation after a second create: %v", got)
		}
	})
}
