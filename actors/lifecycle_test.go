package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/actors/agenttype"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/signatures/lm/lmtest"
)

// failingSnapshots makes the writer's snapshot saves fail while fail is set, the way a
// database hiccup would (not a conflict).
type failingSnapshots struct {
	LogWriter
	fail atomic.Bool
}

func (f *failingSnapshots) SaveSnapshot(ctx context.Context, s persistence.Snapshot, expected int64) error {
	if f.fail.Load() {
		return fmt.Errorf("injected: %w", persistence.ErrUnavailable)
	}
	return f.LogWriter.SaveSnapshot(ctx, s, expected)
}

// An idle session passivates on its receive timeout with a final snapshot when its
// state is ahead of the saved one, and the next request activates it from the snapshot
// plus the log's tail.
func TestPassivationAndActivation(t *testing.T) {
	db := persisttest.SQLite(t)
	var fw *failingSnapshots
	h := newHarness(t, db, harnessOptions{deps: func(d *Deps) {
		fw = &failingSnapshots{LogWriter: d.Writer}
		d.Writer = fw
		d.IdleTimeout = 100 * time.Millisecond
	}})
	h.mustSend(conv1, 0, "one", "")
	fw.fail.Store(true)
	h.mustSend(conv1, 0, "two", "") // durable in the log, snapshot save fails
	snaps := persistence.NewSnapshotStore(db)
	if s, err := snaps.Load(t.Context(), KindSession, conv1); err != nil || s.Version != 1 {
		t.Fatalf("snapshot before passivation = %+v, %v", s, err)
	}
	fw.fail.Store(false)
	eventually(t, 5*time.Second, func() error {
		if h.alive(KindSession, conv1) {
			return errors.New("session not passivated")
		}
		return nil
	})
	s, err := snaps.Load(t.Context(), KindSession, conv1)
	if err != nil || s.Version != 2 {
		t.Fatalf("final snapshot = %+v, %v", s, err)
	}
	var st sessionState
	if err := json.Unmarshal(s.State, &st); err != nil || st.LastSeq != 4 || st.Turns != 2 || len(st.Tail) != 4 {
		t.Fatalf("final state = %+v, %v", st, err)
	}
	if got := h.counter("kowai_actor_passivations_total", map[string]string{"kind": KindSession}); got != 1 {
		t.Fatalf("passivations = %v", got)
	}

	// A snapshot that lags the log (written before the last turn) is caught up from
	// the tail on activation.
	if err := snaps.Delete(t.Context(), KindSession, conv1); err != nil {
		t.Fatal(err)
	}
	info, err := actorpb.As[*actorpb.ConversationInfo](h.grains.Call(t.Context(), KindSession, conv1, &actorpb.GetConversation{
		ConversationId: conv1, UserId: h.users[0]}))
	if err != nil || info.LastSeq != 4 || info.Turns != 2 || info.AgentId != agenttype.DefaultAgentID() {
		t.Fatalf("activated without snapshot: %v, %v", info, err)
	}
	res := h.mustSend(conv1, 0, "three", "")
	if res.Seq != 6 {
		t.Fatalf("seq after reactivation = %d", res.Seq)
	}
	model := h.rt.deps.LM.(*lmtest.Scripted)
	if prompt := lm.MessagesText(model.Requests()[2].Messages); !containsAll(prompt, "echo: one", "echo: two") {
		t.Fatalf("history lost across activation: %s", prompt)
	}
	h.checkLog(conv1, roleUser, roleAssistant, roleUser, roleAssistant, roleUser, roleAssistant)
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// OnLeave passivates every live session of the node.
func TestOnLeave(t *testing.T) {
	h := newHarness(t, persisttest.SQLite(t), harnessOptions{})
	convs := []string{conv1, "0190a000-0000-7000-8000-000000000002"}
	for _, c := range convs {
		h.mustSend(c, 0, "hi", "")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	h.rt.OnLeave(ctx)
	eventually(t, 5*time.Second, func() error {
		for _, c := range convs {
			if h.alive(KindSession, c) {
				return fmt.Errorf("session %s survived the leave", c)
			}
		}
		return nil
	})
}

// Fencing: two activations of one conversation overlap (same identity, same database,
// two actors). The stale one's write is rejected, it stops, its caller gets a
// retryable error, and the log has no gap and no duplicate.
func TestFencing(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		h := newHarness(t, db, harnessOptions{})
		h.mustSend(conv1, 0, "before", "")
		h.passivate(conv1)

		// Both activations load the same state.
		spawn := func(name string) *actor.PID {
			pid, err := h.sys.Root.SpawnNamed(h.rt.SessionProps(conv1), name)
			if err != nil {
				t.Fatal(err)
			}
			return pid
		}
		a, b := spawn("activation-a"), spawn("activation-b")
		ask := func(pid *actor.PID, msg any) (any, error) {
			return h.sys.Root.RequestFuture(pid, msg, 10*time.Second).Result()
		}
		for _, pid := range []*actor.PID{a, b} {
			res, err := ask(pid, &actorpb.GetConversation{ConversationId: conv1, UserId: h.users[0]})
			if info, ok := res.(*actorpb.ConversationInfo); err != nil || !ok || info.LastSeq != 2 {
				t.Fatalf("activation state = %v, %v", res, err)
			}
		}
		send := func(pid *actor.PID, content, key string) (*actorpb.TurnResult, error) {
			res, err := ask(pid, &actorpb.SendMessage{ConversationId: conv1, UserId: h.users[0], Content: content, IdempotencyKey: key})
			if err != nil {
				return nil, err
			}
			if e, ok := res.(*actorpb.ErrorReply); ok {
				return nil, e.Err()
			}
			return res.(*actorpb.TurnResult), nil
		}
		// A wins seq 3 and 4; B, stale, collides on seq 3.
		if res, err := send(a, "from a", "ka"); err != nil || res.Seq != 4 {
			t.Fatalf("a = %v, %v", res, err)
		}
		_, err := send(b, "from b", "kb")
		if !errors.Is(err, actorpb.ErrUnavailable) {
			t.Fatalf("stale activation: err = %v, want unavailable", err)
		}
		eventually(t, 5*time.Second, func() error {
			if _, ok := h.sys.ProcessRegistry.GetLocal("activation-b"); ok {
				return errors.New("stale activation still running")
			}
			return nil
		})
		if got := h.counter("kowai_actor_fenced_total", map[string]string{"kind": KindSession}); got != 1 {
			t.Fatalf("fenced = %v", got)
		}
		if got := h.counter("kowai_actor_stops_total", map[string]string{"kind": "session-turn", "reason": "conflict"}); got != 1 {
			t.Fatalf("turn stops for conflict = %v", got)
		}
		// The caller retries with the same key and reaches a fresh activation.
		res, err := h.send(t.Context(), conv1, 0, "from b", "kb")
		if err != nil || res.Seq != 6 {
			t.Fatalf("retry = %v, %v", res, err)
		}

		// A is stale now too (it never saw seq 5 and 6): its next write is fenced at the
		// snapshot or the log, and nothing acknowledged is overwritten.
		if _, err := send(a, "late a", "ka2"); !errors.Is(err, actorpb.ErrUnavailable) {
			t.Fatalf("second stale activation: err = %v", err)
		}
		msgs := h.checkLog(conv1, roleUser, roleAssistant, roleUser, roleAssistant, roleUser, roleAssistant)
		if msgs[2].Content != "from a" || msgs[4].Content != "from b" {
			t.Fatalf("log = %+v", msgs)
		}
		snap, err := persistence.NewSnapshotStore(db).Load(t.Context(), KindSession, conv1)
		if err != nil || snap.Version != 3 {
			t.Fatalf("snapshot = %+v, %v", snap, err)
		}
	})
}

// The agent runs at most max_concurrency replies at once; the rest wait in its queue.
func TestAgentPoolBound(t *testing.T) {
	model := newBlockingModel()
	h := newHarness(t, persisttest.SQLite(t), harnessOptions{model: model, deps: func(d *Deps) { d.AgentWorkers = 1 }})
	convs := []string{conv1, "0190a000-0000-7000-8000-000000000002", "0190a000-0000-7000-8000-000000000003"}
	done := make(chan error, len(convs))
	for _, c := range convs {
		go func() {
			_, err := h.send(context.Background(), c, 0, "hi "+c[len(c)-1:], "")
			done <- err
		}()
	}
	<-model.started
	eventually(t, 5*time.Second, func() error {
		if q := h.gauge("kowai_agent_queued_replies"); q != 2 {
			return fmt.Errorf("queued = %v", q)
		}
		return nil
	})
	select {
	case m := <-model.started:
		t.Fatalf("second reply %q started while the only worker is busy", m)
	default:
	}
	for range convs {
		model.release <- struct{}{}
	}
	for range convs {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func (h *harness) gauge(name string) float64 {
	h.t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return 0
}

// Reload makes the agent use its changed definition for the next reply.
func TestAgentReload(t *testing.T) {
	h := newHarness(t, persisttest.SQLite(t), harnessOptions{})
	h.mustSend(conv1, 0, "one", "")
	repo := persistence.NewAgentStore(h.db)
	a, err := repo.Get(t.Context(), agenttype.DefaultAgentID())
	if err != nil {
		t.Fatal(err)
	}
	a.Instructions = "Answer in French."
	if _, err := repo.Update(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	if _, err := actorpb.As[*actorpb.Ack](h.grains.Call(t.Context(), KindAgent, a.ID, &actorpb.Reload{AgentId: a.ID})); err != nil {
		t.Fatal(err)
	}
	h.mustSend(conv1, 0, "two", "")
	reqs := h.rt.deps.LM.(*lmtest.Scripted).Requests()
	if p := lm.MessagesText(reqs[1].Messages[:1]); !strings.Contains(p, "Answer in French.") {
		t.Fatalf("reloaded instructions not used: %s", p)
	}
}
