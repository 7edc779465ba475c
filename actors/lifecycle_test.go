package actors

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/google/uuid"
	"github.com/tmc/langchaingo/llms"
	"google.golang.org/protobuf/proto"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/agents"
	"github.com/kowai/kowai/internal/testenv"
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

// An idle session passivates on its receive timeout with a final snapshot when the
// log is ahead of the saved one, and the next request activates it from the snapshot,
// catching up from the log's tail whatever the snapshot lacks.
func TestPassivationAndActivation(t *testing.T) {
	db := persisttest.SQLite(t)
	var fw *failingSnapshots
	h := newHarness(t, db, harnessOptions{deps: func(d *Deps) {
		fw = &failingSnapshots{LogWriter: d.Writer}
		d.Writer = fw
		d.IdleTimeout = 100 * time.Millisecond
	}})
	snaps := persistence.NewSnapshotStore(db)
	h.mustSend(conv1, 0, "one", "")
	h.mustSend(conv1, 0, "two", "")
	if s, err := snaps.Load(t.Context(), KindSession, conv1); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("snapshot before passivation = %+v, %v; want none, the lag is below SnapshotLag", s, err)
	}
	waitPassivated := func() {
		t.Helper()
		testenv.Eventually(t, 5*time.Second, func() error {
			if h.alive(KindSession, conv1) {
				return errors.New("session not passivated")
			}
			return nil
		})
	}
	waitPassivated()
	s, err := snaps.Load(t.Context(), KindSession, conv1)
	if err != nil || s.Version != 4 {
		t.Fatalf("final snapshot = %+v, %v", s, err)
	}
	if st, err := decodeState(s.State); err != nil || st.LastSeq != 4 || st.Turns != 2 || len(st.Tail) != 4 {
		t.Fatalf("final state = %+v, %v", st, err)
	}
	if got := h.counter("kowai_actor_passivations_total", map[string]string{"kind": KindSession}); got != 1 {
		t.Fatalf("passivations = %v", got)
	}

	// Activated from the snapshot, the session goes on; its final snapshot fails, so the
	// snapshot lags the log, and the next activation catches up from the log's tail.
	fw.fail.Store(true)
	h.mustSend(conv1, 0, "three", "")
	waitPassivated()
	fw.fail.Store(false)
	if s, err := snaps.Load(t.Context(), KindSession, conv1); err != nil || s.Version != 4 {
		t.Fatalf("snapshot after a failed final save = %+v, %v", s, err)
	}
	if st := h.activated(); st.LastSeq != 6 || st.Turns != 3 || len(st.Tail) != 6 {
		t.Fatalf("activated from a lagging snapshot: %+v", st)
	}
	model := h.rt.deps.LM.(*lmtest.Scripted)
	h.mustSend(conv1, 0, "four", "")
	if prompt := lm.MessagesText(model.Requests()[3].Messages); !containsAll(prompt, "echo: one", "echo: two", "echo: three") {
		t.Fatalf("history lost across activations: %s", prompt)
	}

	// Without a snapshot, the conversation's row and the log's tail rebuild the state.
	waitPassivated()
	if err := snaps.Delete(t.Context(), KindSession, conv1); err != nil {
		t.Fatal(err)
	}
	if st := h.activated(); st.LastSeq != 8 || st.Turns != 4 || st.AgentID != agents.DefaultAgentID() || st.OwnerID != h.users[0] {
		t.Fatalf("activated without snapshot: %+v", st)
	}
	if res := h.mustSend(conv1, 0, "five", ""); res.Seq != 10 {
		t.Fatalf("seq after reactivation = %d", res.Seq)
	}

	// An unreadable snapshot is rebuilt from the log too, and replaced at passivation.
	waitPassivated()
	stale, err := snaps.Load(t.Context(), KindSession, conv1)
	if err != nil {
		t.Fatal(err)
	}
	if err := snaps.Save(t.Context(), persistence.Snapshot{Kind: KindSession, Identity: conv1, Version: stale.Version + 1,
		State: []byte(`{"owner_id":"someone"}`)}, stale.Version); err != nil {
		t.Fatal(err)
	}
	if st := h.activated(); st.LastSeq != 10 || st.Turns != 5 || st.OwnerID != h.users[0] {
		t.Fatalf("activated from an unreadable snapshot: %+v", st)
	}
	if res := h.mustSend(conv1, 0, "six", ""); res.Seq != 12 {
		t.Fatalf("seq after an unreadable snapshot = %d", res.Seq)
	}
	waitPassivated()
	if s, err := snaps.Load(t.Context(), KindSession, conv1); err != nil || s.Version != 12 {
		t.Fatalf("snapshot replacing the unreadable one = %+v, %v", s, err)
	}
	h.checkLog(conv1, roleUser, roleAssistant, roleUser, roleAssistant, roleUser, roleAssistant,
		roleUser, roleAssistant, roleUser, roleAssistant, roleUser, roleAssistant)
}

// activate makes the session pid load its conversation through a request the gateway
// sends, a CancelTurn of its owner with nothing running (it loads the state, checks
// ownership and changes nothing), and returns the state the session then holds.
func (h *harness) activate(pid *actor.PID) sessionState {
	h.t.Helper()
	res, err := h.ask(pid, &actorpb.CancelTurn{ConversationId: conv1, UserId: h.users[0]})
	if r, ok := res.(*actorpb.CancelResult); err != nil || !ok || r.Canceled {
		h.t.Fatalf("activation: %v, %v", res, err)
	}
	res, err = h.ask(pid, inspectState{})
	if err != nil {
		h.t.Fatal(err)
	}
	return res.(sessionState)
}

// activated activates the grain of conv1 (see activate) and returns its state.
func (h *harness) activated() sessionState {
	h.t.Helper()
	pid, err := h.grains.pid(KindSession, conv1)
	if err != nil {
		h.t.Fatal(err)
	}
	return h.activate(pid)
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
	testenv.Eventually(t, 5*time.Second, func() error {
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
// retryable error, and the log has no gap and no duplicate. Whether the snapshot is
// saved with every reply or lags the log, the log's unique seq fences the appends.
func TestFencing(t *testing.T) {
	for _, tc := range []struct {
		name        string
		lag         int
		wantVersion int64 // of the snapshot at the end
	}{
		{name: "snapshot every reply", lag: 1, wantVersion: 6},
		{name: "snapshot lags", lag: DefaultSnapshotLag, wantVersion: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
				testFencing(t, db, tc.lag, tc.wantVersion)
			})
		})
	}
}

func testFencing(t *testing.T, db *persistence.DB, lag int, wantVersion int64) {
	h := newHarness(t, db, harnessOptions{deps: func(d *Deps) { d.SnapshotLag = lag }})
	h.mustSend(conv1, 0, "before", "")
	h.passivate(conv1)

	// Both activations load the same state.
	a, b := h.spawnSession("activation-a"), h.spawnSession("activation-b")
	for _, pid := range []*actor.PID{a, b} {
		if st := h.activate(pid); st.LastSeq != 2 {
			t.Fatalf("activation state = %+v", st)
		}
	}
	// A wins seq 3 and 4; B, stale, collides on seq 3.
	if res, err := h.sendTo(a, "from a", "ka"); err != nil || res.Seq != 4 {
		t.Fatalf("a = %v, %v", res, err)
	}
	_, err := h.sendTo(b, "from b", "kb")
	if !errors.Is(err, actorpb.ErrUnavailable) {
		t.Fatalf("stale activation: err = %v, want unavailable", err)
	}
	h.waitStopped("activation-b")
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
	// log, and nothing acknowledged is overwritten.
	if _, err := h.sendTo(a, "late a", "ka2"); !errors.Is(err, actorpb.ErrUnavailable) {
		t.Fatalf("second stale activation: err = %v", err)
	}
	msgs := h.checkLog(conv1, roleUser, roleAssistant, roleUser, roleAssistant, roleUser, roleAssistant)
	if msgs[2].Content != "from a" || msgs[4].Content != "from b" {
		t.Fatalf("log = %+v", msgs)
	}
	snap, err := persistence.NewSnapshotStore(db).Load(t.Context(), KindSession, conv1)
	if err != nil || snap.Version != wantVersion {
		t.Fatalf("snapshot = %+v, %v; want version %d", snap, err, wantVersion)
	}
}

// Fencing at the snapshot: the stale activation's log append finds its seq free, but
// the snapshot saved with its reply lost its compare-and-swap, so the reply, committed
// together with the snapshot, is not written; the user's message waits in the log for
// the retry, which answers it once (or, when it went into the reply's commit because
// the reply came back before the writer took it, is not written either, and the
// retry appends it).
func TestFencingAtSnapshot(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		h := newHarness(t, db, harnessOptions{deps: func(d *Deps) { d.SnapshotLag = 1 }})
		h.mustSend(conv1, 0, "before", "")
		snaps := persistence.NewSnapshotStore(db)
		if err := snaps.Delete(t.Context(), KindSession, conv1); err != nil {
			t.Fatal(err)
		}
		h.passivate(conv1)

		// Both activate without a snapshot; A, catching up from the log, saves one as it
		// passivates.
		a, b := h.spawnSession("activation-a"), h.spawnSession("activation-b")
		for _, pid := range []*actor.PID{a, b} {
			if st := h.activate(pid); st.LastSeq != 2 {
				t.Fatalf("activation state = %+v", st)
			}
		}
		if _, err := h.ask(a, &actorpb.Passivate{}); err != nil {
			t.Fatal(err)
		}
		h.waitStopped("activation-a")
		if s, err := snaps.Load(t.Context(), KindSession, conv1); err != nil || s.Version != 2 {
			t.Fatalf("snapshot saved by a = %+v, %v", s, err)
		}

		if _, err := h.sendTo(b, "from b", "kb"); !errors.Is(err, actorpb.ErrUnavailable) {
			t.Fatalf("stale activation: err = %v, want unavailable", err)
		}
		h.waitStopped("activation-b")
		if msgs := h.logOf(conv1); len(msgs) != 2 {
			if m := h.checkLog(conv1, roleUser, roleAssistant, roleUser); m[2].Content != "from b" {
				t.Fatalf("log after the fenced turn = %+v", m)
			}
		} else {
			h.checkLog(conv1, roleUser, roleAssistant)
		}
		res, err := h.send(t.Context(), conv1, 0, "from b", "kb")
		if err != nil || res.Seq != 4 {
			t.Fatalf("retry = %v, %v", res, err)
		}
		msgs := h.checkLog(conv1, roleUser, roleAssistant, roleUser, roleAssistant)
		if msgs[2].Content != "from b" || res.UserMessageId != msgs[2].ID {
			t.Fatalf("log = %+v, result %v", msgs, res)
		}
		if s, err := snaps.Load(t.Context(), KindSession, conv1); err != nil || s.Version != 4 {
			t.Fatalf("snapshot after the retry = %+v, %v", s, err)
		}
	})
}

// spawnSession spawns a session of conv1 under name, beside the grain's own.
func (h *harness) spawnSession(name string) *actor.PID {
	h.t.Helper()
	pid, err := h.sys.Root.SpawnNamed(h.rt.SessionProps(conv1), name)
	if err != nil {
		h.t.Fatal(err)
	}
	return pid
}

func (h *harness) ask(pid *actor.PID, msg any) (any, error) {
	return h.sys.Root.RequestFuture(pid, msg, 10*time.Second).Result()
}

// sendTo sends a turn of conv1 to the session pid as user 0.
func (h *harness) sendTo(pid *actor.PID, content, key string) (*actorpb.TurnResult, error) {
	res, err := h.ask(pid, &actorpb.SendMessage{ConversationId: conv1, UserId: h.users[0], Content: content, IdempotencyKey: key})
	if err != nil {
		return nil, err
	}
	m, _ := res.(proto.Message)
	return actorpb.As[*actorpb.TurnResult](m, nil)
}

// waitStopped waits until the actor named name is gone.
func (h *harness) waitStopped(name string) {
	h.t.Helper()
	testenv.Eventually(h.t, 5*time.Second, func() error {
		if _, ok := h.sys.ProcessRegistry.GetLocal(name); ok {
			return fmt.Errorf("%s still running", name)
		}
		return nil
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
	testenv.Eventually(t, 5*time.Second, func() error {
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

// A definition put through the agent grain is used from the very next reply, and a
// deleted agent serves no new conversation.
func TestAgentPut(t *testing.T) {
	h := newHarness(t, persisttest.SQLite(t), harnessOptions{})
	h.mustSend(conv1, 0, "one", "")
	repo := persistence.NewAgentStore(h.db)
	a, err := repo.Get(t.Context(), agents.DefaultAgentID())
	if err != nil {
		t.Fatal(err)
	}
	a.Instructions = "Answer in French."
	put := &actorpb.PutAgent{Agent: actorpb.DefinitionOf(a)}
	got, err := actorpb.As[*actorpb.AgentDefinition](h.grains.Call(t.Context(), KindAgent, a.ID, put))
	if err != nil || got.GetVersion() != a.Version+1 || got.GetInstructions() != a.Instructions {
		t.Fatalf("put: %v, %v", got, err)
	}
	if _, err := actorpb.As[*actorpb.AgentDefinition](h.grains.Call(t.Context(), KindAgent, a.ID, put)); !errors.Is(err, actorpb.ErrConflict) {
		t.Fatalf("put at a stale version: %v, want a conflict", err)
	}
	h.mustSend(conv1, 0, "two", "")
	reqs := h.rt.deps.LM.(*lmtest.Scripted).Requests()
	if p := lm.MessagesText(reqs[1].Messages[:1]); !strings.Contains(p, "Answer in French.") {
		t.Fatalf("the new instructions were not used: %s", p)
	}

	mine := actorpb.DefinitionOf(persistence.Agent{ID: uuid.NewString(), OwnerID: h.users[0], Name: "mine", Type: "chat", Config: []byte("{}")})
	if _, err := actorpb.As[*actorpb.AgentDefinition](h.grains.Call(t.Context(), KindAgent, mine.GetId(),
		&actorpb.PutAgent{Agent: mine, Create: true})); err != nil {
		t.Fatal(err)
	}
	other := uuid.NewString()
	ask := func(u int) error {
		_, err := actorpb.As[*actorpb.TurnResult](h.grains.Call(t.Context(), KindSession, other, &actorpb.SendMessage{
			ConversationId: other, UserId: h.users[u], AgentId: mine.GetId(), Content: "hello"}))
		return err
	}
	if err := ask(1); !errors.Is(err, actorpb.ErrNotFound) {
		t.Fatalf("another user's agent: %v, want not found", err)
	}
	if _, err := actorpb.As[*actorpb.Ack](h.grains.Call(t.Context(), KindAgent, mine.GetId(), &actorpb.DeleteAgent{AgentId: mine.GetId()})); err != nil {
		t.Fatal(err)
	}
	if err := ask(0); !errors.Is(err, actorpb.ErrNotFound) {
		t.Fatalf("a deleted agent: %v, want not found", err)
	}
}

// A session moves its conversation's updated_at with a reply at most once per
// touchInterval, and at passivation when the last turn came later.
func TestConversationTouch(t *testing.T) {
	var now atomic.Int64
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return start.Add(d) }
	h := newHarness(t, persisttest.SQLite(t), harnessOptions{deps: func(d *Deps) {
		d.Now = func() time.Time { return at(time.Duration(now.Load())) }
	}})
	convs := persistence.NewConversationStore(h.db)
	for _, step := range []struct {
		clock time.Duration
		want  time.Duration // updated_at after the turn
	}{
		{clock: 0, want: 0},
		{clock: touchInterval / 2, want: 0},
		{clock: 2 * touchInterval, want: 2 * touchInterval},
		{clock: 2*touchInterval + time.Millisecond, want: 2 * touchInterval},
	} {
		now.Store(int64(step.clock))
		h.mustSend(conv1, 0, "hi", "")
		if c, err := convs.Get(t.Context(), conv1); err != nil || !c.UpdatedAt.Equal(at(step.want)) {
			t.Fatalf("after a turn at %v: updated_at = %v, %v; want %v", step.clock, c.UpdatedAt, err, at(step.want))
		}
	}
	h.passivate(conv1)
	if c, err := convs.Get(t.Context(), conv1); err != nil || !c.UpdatedAt.Equal(at(2*touchInterval+time.Millisecond)) {
		t.Fatalf("after passivation: updated_at = %v, %v", c.UpdatedAt, err)
	}
}

// An agent's history window is honoured end to end: the model receives that many
// earlier messages, beyond the runtime's own tail window, also after the session was
// passivated and after the window changed.
func TestHistoryWindowEndToEnd(t *testing.T) {
	h := newHarness(t, persisttest.SQLite(t), harnessOptions{})
	model := h.rt.deps.LM.(*lmtest.Scripted)
	users := func() int {
		reqs := model.Requests()
		n := 0
		for _, m := range reqs[len(reqs)-1].Messages {
			if m.Role == llms.ChatMessageTypeHuman {
				n++
			}
		}
		return n
	}
	setWindow := func(w int) {
		t.Helper()
		a, err := persistence.NewAgentStore(h.db).Get(t.Context(), agents.DefaultAgentID())
		if err != nil {
			t.Fatal(err)
		}
		a.Config = []byte(fmt.Sprintf(`{"history_window":%d}`, w))
		if _, err := actorpb.As[*actorpb.AgentDefinition](h.grains.Call(t.Context(), KindAgent, a.ID, &actorpb.PutAgent{Agent: actorpb.DefinitionOf(a)})); err != nil {
			t.Fatal(err)
		}
	}
	setWindow(2 * DefaultHistoryWindow)
	for i := range 30 {
		h.mustSend(conv1, 0, fmt.Sprintf("message %d", i), "")
	}
	// 40 earlier messages are 20 exchanges, each one user message, plus the message.
	if got, want := users(), DefaultHistoryWindow+1; got != want {
		t.Fatalf("the model saw %d user messages, want %d", got, want)
	}
	h.passivate(conv1)
	h.mustSend(conv1, 0, "after passivation", "")
	if got, want := users(), DefaultHistoryWindow+1; got != want {
		t.Fatalf("after passivation the model saw %d user messages, want %d", got, want)
	}
	setWindow(4)
	h.mustSend(conv1, 0, "narrow", "")
	if got := users(); got != 3 {
		t.Fatalf("with a window of 4 the model saw %d user messages, want 3", got)
	}
}
