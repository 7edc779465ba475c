package actors

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
)

// result waits for a future's answer as a TurnResult or an error.
func turnOf(f *actor.Future) (*actorpb.TurnResult, error) {
	res, err := f.Result()
	if err != nil {
		return nil, err
	}
	return actorpb.As[*actorpb.TurnResult](res.(proto.Message), nil)
}

// While the first turn of a conversation runs, another user sending to its ID with the
// same idempotency key (the derived-ID race) is refused as if the conversation did not
// exist, whether or not the request says it must exist; it never joins the owner's turn.
func TestFirstTurnStrangerIsRefused(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		model := newBlockingModel()
		h := newHarness(t, db, harnessOptions{model: model})
		pid, err := h.grains.pid(KindSession, conv1)
		if err != nil {
			t.Fatal(err)
		}
		request := func(u int, mustExist bool) *actor.Future {
			return h.sys.Root.RequestFuture(pid, &actorpb.SendMessage{CorrelationId: fmt.Sprint("u", u), IdempotencyKey: "k",
				ConversationId: conv1, UserId: h.users[u], Content: "secret", MustExist: mustExist}, 10*time.Second)
		}
		owner := request(0, false)
		<-model.started
		for _, mustExist := range []bool{false, true} {
			// Answered while the owner's turn still runs: refused, not joined.
			if res, err := turnOf(request(1, mustExist)); !errors.Is(err, actorpb.ErrNotFound) {
				t.Fatalf("stranger (must_exist %v) during the first turn: %v, %v; want not found", mustExist, res, err)
			}
		}
		model.release <- struct{}{}
		if res, err := turnOf(owner); err != nil || res.Response != "done: secret" {
			t.Fatalf("owner: %v, %v", res, err)
		}
		// After the turn, the stranger gets the same answer as for a missing conversation.
		for _, mustExist := range []bool{false, true} {
			if res, err := turnOf(request(1, mustExist)); !errors.Is(err, actorpb.ErrNotFound) {
				t.Fatalf("stranger (must_exist %v) after the first turn: %v, %v; want not found", mustExist, res, err)
			}
		}
		h.checkLog(conv1, roleUser, roleAssistant)
	})
}

// The race replayed without a gate: owner and stranger send at the same moment, many
// times; the stranger never gets a reply, and every conversation is the owner's.
func TestFirstTurnRaceNeverLeaks(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		h := newHarness(t, db, harnessOptions{})
		convs := persistence.NewConversationStore(db)
		for i := range 25 {
			conv := fmt.Sprintf("0190a000-0000-5000-8000-%012d", i)
			key := fmt.Sprint("race-", i)
			// The harness spawns a grain on first use, which is not safe from two
			// goroutines at once (the cluster's activation is); the race is the messages'.
			if _, err := h.grains.pid(KindSession, conv); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			var ownerErr, strangerErr error
			var strangerRes *actorpb.TurnResult
			wg.Go(func() { _, ownerErr = h.send(t.Context(), conv, 0, "secret", key) })
			wg.Go(func() {
				strangerRes, strangerErr = actorpb.As[*actorpb.TurnResult](h.grains.Call(t.Context(), KindSession, conv, &actorpb.SendMessage{
					IdempotencyKey: key, ConversationId: conv, UserId: h.users[1], Content: "secret", MustExist: true}))
			})
			wg.Wait()
			if ownerErr != nil {
				t.Fatalf("round %d: owner: %v", i, ownerErr)
			}
			if !errors.Is(strangerErr, actorpb.ErrNotFound) {
				t.Fatalf("round %d: stranger got %v, %v; want not found", i, strangerRes, strangerErr)
			}
			if c, err := convs.Get(t.Context(), conv); err != nil || c.OwnerID != h.users[0] {
				t.Fatalf("round %d: conversation %+v, %v", i, c, err)
			}
		}
	})
}

// A request that must find its conversation does not create one.
func TestMustExist(t *testing.T) {
	h := newHarness(t, persisttest.SQLite(t), harnessOptions{})
	_, err := actorpb.As[*actorpb.TurnResult](h.grains.Call(t.Context(), KindSession, conv1, &actorpb.SendMessage{
		ConversationId: conv1, UserId: h.users[0], Content: "hi", MustExist: true}))
	if !errors.Is(err, actorpb.ErrNotFound) {
		t.Fatalf("err = %v, want not found", err)
	}
	if _, err := persistence.NewConversationStore(h.db).Get(t.Context(), conv1); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("conversation created: %v", err)
	}
}

// An idempotency key reused with another request is refused, wherever the first
// request's result is found: in memory, in the log, or still running.
func TestIdempotencyKeyMismatch(t *testing.T) {
	h := newHarness(t, persisttest.SQLite(t), harnessOptions{})
	h.mustSend(conv1, 0, "once", "k1")
	mismatch := func(where string) {
		t.Helper()
		if res, err := h.send(t.Context(), conv1, 0, "something else", "k1"); !errors.Is(err, actorpb.ErrIdempotencyMismatch) {
			t.Fatalf("%s: %v, %v; want an idempotency mismatch", where, res, err)
		}
		if res := h.mustSend(conv1, 0, "once", "k1"); !res.Replayed {
			t.Fatalf("%s: the same request is not replayed: %v", where, res)
		}
	}
	mismatch("from memory")
	h.passivate(conv1)
	mismatch("after reactivation")
	h.rt.deps.HistoryWindow = 2
	h.passivate(conv1)
	h.mustSend(conv1, 0, "other", "k2")
	mismatch("from the log")
	h.checkLog(conv1, roleUser, roleAssistant, roleUser, roleAssistant)
}

func TestIdempotencyKeyMismatchInFlight(t *testing.T) {
	model := newBlockingModel()
	h := newHarness(t, persisttest.SQLite(t), harnessOptions{model: model})
	pid, err := h.grains.pid(KindSession, conv1)
	if err != nil {
		t.Fatal(err)
	}
	request := func(content string) *actor.Future {
		return h.sys.Root.RequestFuture(pid, &actorpb.SendMessage{IdempotencyKey: "k", ConversationId: conv1,
			UserId: h.users[0], Content: content}, 10*time.Second)
	}
	first := request("a")
	<-model.started
	if res, err := turnOf(request("b")); !errors.Is(err, actorpb.ErrIdempotencyMismatch) {
		t.Fatalf("other request with the running key: %v, %v", res, err)
	}
	retry := request("a")
	model.release <- struct{}{}
	a, errA := turnOf(first)
	b, errB := turnOf(retry)
	if errA != nil || errB != nil || a.MessageId != b.MessageId {
		t.Fatalf("first %v, %v; retry %v, %v", a, errA, b, errB)
	}
}

// Delete erases the conversation for its owner only; afterwards no turn, retry or read
// brings it back.
func TestDeleteConversation(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		h := newHarness(t, db, harnessOptions{deps: func(d *Deps) { d.SnapshotLag = 2 }})
		first := h.mustSend(conv1, 0, "hello", "k1")
		h.mustSend(conv1, 0, "again", "k2")
		if _, err := persistence.NewFeedbackStore(db).Create(t.Context(), persistence.Feedback{MessageID: first.MessageId, UserID: h.users[0], Rating: 1}); err != nil {
			t.Fatal(err)
		}
		del := func(u int) error {
			_, err := actorpb.As[*actorpb.Ack](h.grains.Call(t.Context(), KindSession, conv1, &actorpb.DeleteConversation{
				ConversationId: conv1, UserId: h.users[u]}))
			return err
		}
		if err := del(1); !errors.Is(err, actorpb.ErrNotFound) {
			t.Fatalf("stranger delete: %v", err)
		}
		if err := del(0); err != nil {
			t.Fatalf("owner delete: %v", err)
		}
		if _, err := persistence.NewConversationStore(db).Get(t.Context(), conv1); !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("conversation after delete: %v", err)
		}
		if n := len(h.logOf(conv1)); n != 0 {
			t.Fatalf("%d messages after delete", n)
		}
		if _, err := persistence.NewSnapshotStore(db).Load(t.Context(), KindSession, conv1); !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("snapshot after delete: %v", err)
		}
		check := func(when string) {
			t.Helper()
			// A retry of the first turn, a new turn, and a cancel: all not found.
			if res, err := h.send(t.Context(), conv1, 0, "hello", "k1"); !errors.Is(err, actorpb.ErrNotFound) {
				t.Fatalf("%s: retry of the first turn = %v, %v", when, res, err)
			}
			if res, err := h.send(t.Context(), conv1, 0, "new", "k3"); !errors.Is(err, actorpb.ErrNotFound) {
				t.Fatalf("%s: new turn = %v, %v", when, res, err)
			}
			_, err := actorpb.As[*actorpb.CancelResult](h.grains.Call(t.Context(), KindSession, conv1, &actorpb.CancelTurn{ConversationId: conv1, UserId: h.users[0]}))
			if !errors.Is(err, actorpb.ErrNotFound) {
				t.Fatalf("%s: cancel = %v", when, err)
			}
			if err := del(0); !errors.Is(err, actorpb.ErrNotFound) {
				t.Fatalf("%s: second delete = %v", when, err)
			}
		}
		check("same activation")
		h.passivate(conv1)
		check("new activation")
		if n := len(h.logOf(conv1)); n != 0 {
			t.Fatalf("%d messages after the later turns", n)
		}
	})
}

// A delete during a turn cancels it, refuses the queued ones, and lands after the turn's
// last write.
func TestDeleteDuringTurn(t *testing.T) {
	model := newBlockingModel()
	h := newHarness(t, persisttest.SQLite(t), harnessOptions{model: model})
	pid, err := h.grains.pid(KindSession, conv1)
	if err != nil {
		t.Fatal(err)
	}
	request := func(content string) *actor.Future {
		return h.sys.Root.RequestFuture(pid, &actorpb.SendMessage{IdempotencyKey: content, ConversationId: conv1,
			UserId: h.users[0], Content: content}, 10*time.Second)
	}
	running := request("running")
	<-model.started
	queued := request("queued")
	deleted := h.sys.Root.RequestFuture(pid, &actorpb.DeleteConversation{ConversationId: conv1, UserId: h.users[0]}, 10*time.Second)
	if _, err := turnOf(running); !errors.Is(err, actorpb.ErrCanceled) {
		t.Fatalf("running turn: %v", err)
	}
	if _, err := turnOf(queued); !errors.Is(err, actorpb.ErrNotFound) {
		t.Fatalf("queued turn: %v", err)
	}
	res, err := deleted.Result()
	if _, ok := res.(*actorpb.Ack); err != nil || !ok {
		t.Fatalf("delete: %v, %v", res, err)
	}
	if n := len(h.logOf(conv1)); n != 0 {
		t.Fatalf("%d messages after delete", n)
	}
	if _, err := persistence.NewConversationStore(h.db).Get(context.Background(), conv1); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("conversation after delete: %v", err)
	}
}

// Rename changes the title for the owner only, and the title outlives later turns and
// reactivation.
func TestRenameConversation(t *testing.T) {
	h := newHarness(t, persisttest.SQLite(t), harnessOptions{deps: func(d *Deps) { d.SnapshotLag = 2 }})
	rename := func(u int, conv, title string) (*actorpb.ConversationInfo, error) {
		return actorpb.As[*actorpb.ConversationInfo](h.grains.Call(t.Context(), KindSession, conv, &actorpb.RenameConversation{
			ConversationId: conv, UserId: h.users[u], Title: title}))
	}
	if _, err := rename(0, conv1, "early"); !errors.Is(err, actorpb.ErrNotFound) {
		t.Fatalf("rename before the conversation exists: %v", err)
	}
	h.mustSend(conv1, 0, "hello", "")
	if _, err := rename(1, conv1, "mine now"); !errors.Is(err, actorpb.ErrNotFound) {
		t.Fatalf("stranger rename: %v", err)
	}
	if info, err := rename(0, conv1, "Renamed"); err != nil || info.Title != "Renamed" {
		t.Fatalf("rename = %v, %v", info, err)
	}
	h.mustSend(conv1, 0, "after", "") // saves a snapshot (lag 2)
	h.passivate(conv1)
	if st := h.activated(); st.Title != "Renamed" {
		t.Fatalf("after a turn and reactivation: %+v", st)
	}
	if c, err := persistence.NewConversationStore(h.db).Get(t.Context(), conv1); err != nil || c.Title != "Renamed" {
		t.Fatalf("row = %+v, %v", c, err)
	}
}

func TestTitleOf(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"hello there", "hello there"},
		{"line one\nline two\ttabbed", "line one line two tabbed"},
		{"evil\u202Etxt.exe", "evil txt.exe"},
		{"zero\u200Bwidth\uFEFF", "zero width"},
		{"\u2066isolated\u2069 text", "isolated text"},
	} {
		if got := titleOf(tc.in); got != tc.want {
			t.Errorf("titleOf(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
