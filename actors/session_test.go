package actors

import (
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"weak"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/agents"
	"github.com/kowai/kowai/internal/testenv"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/signatures/lm/lmtest"
)

const conv1 = "0190a000-0000-7000-8000-000000000001"

// A turn creates the conversation, stores both messages, moves the conversation's
// updated_at, streams the reply to the requester's PID, and only then answers. The
// snapshot rides along with the reply that makes it lag SnapshotLag messages.
func TestTurn(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		var tick atomic.Int64
		start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		h := newHarness(t, db, harnessOptions{deps: func(d *Deps) {
			d.SnapshotLag = 4
			d.Now = func() time.Time { return start.Add(time.Duration(tick.Add(1)) * time.Millisecond) }
		}})
		col := &collector{}
		target := h.sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return col }))
		res, err := actorpb.As[*actorpb.TurnResult](h.grains.Call(t.Context(), KindSession, conv1, &actorpb.SendMessage{
			CorrelationId: "c1", ConversationId: conv1, UserId: h.users[0], Content: "hello there",
			Stream: &actorpb.StreamTarget{Address: target.Address, Id: target.Id}, StreamId: "s1"}))
		if err != nil {
			t.Fatal(err)
		}
		if res.Response != "echo: hello there" || res.Seq != 2 || res.AgentId != agents.DefaultAgentID() || res.UserMessageId == "" {
			t.Fatalf("result = %v", res)
		}
		if res.Usage.GetPromptTokens() == 0 || res.Usage.GetCompletionTokens() == 0 {
			t.Fatalf("usage = %v", res.Usage)
		}
		msgs := h.checkLog(conv1, roleUser, roleAssistant)
		if msgs[1].ID != res.MessageId || msgs[0].ID != res.UserMessageId || msgs[1].Content != res.Response {
			t.Fatalf("log = %+v", msgs)
		}
		var meta messageMeta
		if err := json.Unmarshal(msgs[1].Metadata, &meta); err != nil || meta.CorrelationID != "c1" || meta.ReplyTo != msgs[0].ID || meta.Usage == nil {
			t.Fatalf("reply metadata = %s (%v)", msgs[1].Metadata, err)
		}
		conv, err := persistence.NewConversationStore(db).Get(t.Context(), conv1)
		if err != nil || conv.OwnerID != h.users[0] || conv.Title != "hello there" || !conv.UpdatedAt.After(conv.CreatedAt) {
			t.Fatalf("conversation = %+v, %v", conv, err)
		}
		snaps := persistence.NewSnapshotStore(db)
		if snap, err := snaps.Load(t.Context(), KindSession, conv1); !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("snapshot after 2 of 4 messages = %+v, %v", snap, err)
		}
		testenv.Eventually(t, 5*time.Second, func() error {
			if text, ends := col.text(); text != "echo: hello there" || ends != 1 {
				return errors.New("stream = " + text)
			}
			return nil
		})

		// The second turn sees the first as history.
		h.mustSend(conv1, 0, "again", "")
		model := h.rt.deps.LM.(*lmtest.Scripted)
		if prompt := lm.MessagesText(model.Requests()[1].Messages); !strings.Contains(prompt, "echo: hello there") {
			t.Fatalf("second prompt lacks the history: %s", prompt)
		}
		h.checkLog(conv1, roleUser, roleAssistant, roleUser, roleAssistant)
		snap, err := snaps.Load(t.Context(), KindSession, conv1)
		var st sessionState
		if err == nil {
			st, err = decodeState(snap.State)
		}
		if err != nil || snap.Version != 4 || st.LastSeq != 4 || st.Turns != 2 || len(st.Tail) != 4 {
			t.Fatalf("snapshot after 4 messages = %+v (%+v), %v", snap, st, err)
		}
	})
}

// A repeated idempotency key returns the stored result without a model call: from the
// session's memory, and after reactivation from the log.
func TestIdempotentRetry(t *testing.T) {
	h := newHarness(t, persisttest.SQLite(t), harnessOptions{})
	model := h.rt.deps.LM.(*lmtest.Scripted)
	first := h.mustSend(conv1, 0, "once", "k1")
	again := h.mustSend(conv1, 0, "once", "k1")
	if !again.Replayed || again.MessageId != first.MessageId || again.Response != first.Response || again.UserMessageId != first.UserMessageId {
		t.Fatalf("replay = %v, first = %v", again, first)
	}
	h.passivate(conv1)
	again = h.mustSend(conv1, 0, "once", "k1")
	if !again.Replayed || again.MessageId != first.MessageId {
		t.Fatalf("replay after reactivation = %v", again)
	}
	// With the reply out of the in-memory tail, the log answers.
	h.rt.deps.HistoryWindow = 2
	h.passivate(conv1)
	h.mustSend(conv1, 0, "other", "k2")
	again = h.mustSend(conv1, 0, "once", "k1")
	if !again.Replayed || again.MessageId != first.MessageId || again.Usage.GetPromptTokens() == 0 {
		t.Fatalf("replay from the log = %v", again)
	}
	if model.Calls() != 2 {
		t.Fatalf("model calls = %d, want 2", model.Calls())
	}
	h.checkLog(conv1, roleUser, roleAssistant, roleUser, roleAssistant)
	if got := h.counter("kowai_chat_turns_total", map[string]string{"outcome": "replayed"}); got != 3 {
		t.Fatalf("replayed turns = %v", got)
	}
}

// passivate stops the session through its Passivate message and waits until it is gone.
func (h *harness) passivate(conv string) {
	h.t.Helper()
	if _, err := actorpb.As[*actorpb.Ack](h.grains.Call(context.Background(), KindSession, conv, &actorpb.Passivate{})); err != nil {
		h.t.Fatal(err)
	}
	testenv.Eventually(h.t, 5*time.Second, func() error {
		if h.alive(KindSession, conv) {
			return errors.New("session still alive")
		}
		return nil
	})
}

// Only the owner writes to a conversation (turns, cancels); anyone else gets the answer
// a missing conversation gets. The messages carry no roles: reads are the gateway's,
// from the stores, under its RBAC table.
func TestOwnership(t *testing.T) {
	h := newHarness(t, persisttest.SQLite(t), harnessOptions{})
	h.mustSend(conv1, 0, "mine", "")
	ctx := t.Context()
	cancel := func(conv string, u int) error {
		_, err := actorpb.As[*actorpb.CancelResult](h.grains.Call(ctx, KindSession, conv, &actorpb.CancelTurn{
			ConversationId: conv, UserId: h.users[u]}))
		return err
	}
	cases := []struct {
		name string
		err  error
		want error
	}{
		{"owner cancels", cancel(conv1, 0), nil},
		{"stranger cancels", cancel(conv1, 1), actorpb.ErrNotFound},
		{"unknown conversation", cancel("0190a000-0000-7000-8000-0000000000ff", 0), actorpb.ErrNotFound},
	}
	_, err := h.send(ctx, conv1, 1, "not mine", "")
	cases = append(cases, struct {
		name string
		err  error
		want error
	}{"stranger writes", err, actorpb.ErrNotFound})
	_, err = actorpb.As[*actorpb.TurnResult](h.grains.Call(ctx, KindSession, conv1, &actorpb.SendMessage{
		ConversationId: conv1, UserId: h.users[0], Content: "x", AgentId: agents.BuiltinID("react")}))
	cases = append(cases, struct {
		name string
		err  error
		want error
	}{"other agent", err, actorpb.ErrConflict})
	_, err = actorpb.As[*actorpb.TurnResult](h.grains.Call(ctx, KindSession, "0190a000-0000-7000-8000-0000000000fe", &actorpb.SendMessage{
		ConversationId: "0190a000-0000-7000-8000-0000000000fe", UserId: h.users[0], Content: "x", AgentId: "0190a000-0000-7000-8000-00000000dead"}))
	cases = append(cases, struct {
		name string
		err  error
		want error
	}{"unknown agent", err, actorpb.ErrNotFound})
	for _, tc := range cases {
		if !errors.Is(tc.err, tc.want) && !(tc.want == nil && tc.err == nil) {
			t.Errorf("%s: err = %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	h.checkLog(conv1, roleUser, roleAssistant)
	if st := h.activated(); st.OwnerID != h.users[0] || st.Turns != 1 || st.LastSeq != 2 {
		t.Fatalf("state after refused writes = %+v", st)
	}
}

// A failing model call keeps the user's message, records the failure, answers with a
// typed error, restarts the worker under supervision, and the next turn works.
func TestModelFailure(t *testing.T) {
	cases := []struct {
		err    error
		want   error
		reason string
		metric string
	}{
		{lm.ErrUnavailable, actorpb.ErrModelFailure, "model_error", "kowai_actor_restarts_total"},
		{lm.ErrTimeout, actorpb.ErrTimeout, "timeout", "kowai_actor_restarts_total"},
		{lm.ErrBudgetExceeded, actorpb.ErrBudgetExceeded, "budget_exceeded", "kowai_actor_stops_total"},
	}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			model := echoModel()
			model.Push(lmtest.Output{Err: tc.err})
			h := newHarness(t, persisttest.SQLite(t), harnessOptions{model: model})
			_, err := h.send(t.Context(), conv1, 0, "first", "k1")
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			msgs := h.checkLog(conv1, roleUser, roleSystem)
			var meta messageMeta
			if json.Unmarshal(msgs[1].Metadata, &meta); meta.Error == nil || meta.ReplyTo != msgs[0].ID {
				t.Fatalf("failure record = %s", msgs[1].Metadata)
			}
			if got := h.counter(tc.metric, map[string]string{"kind": "agent-worker", "reason": tc.reason}); got != 1 {
				t.Fatalf("%s{reason=%s} = %v", tc.metric, tc.reason, got)
			}
			// A retry with the same key reuses the stored message and gets a reply.
			res := h.mustSend(conv1, 0, "first", "k1")
			if res.Response != "echo: first" || res.UserMessageId != msgs[0].ID {
				t.Fatalf("retry = %v", res)
			}
			h.mustSend(conv1, 0, "second", "")
			h.checkLog(conv1, roleUser, roleSystem, roleAssistant, roleUser, roleAssistant)
		})
	}
}

// blockingModel answers only when released (or its context ends), so tests can hold a
// reply running.
type blockingModel struct {
	started chan string
	release chan struct{}
}

func newBlockingModel() *blockingModel {
	return &blockingModel{started: make(chan string, 16), release: make(chan struct{}, 16)}
}

func (m *blockingModel) Name() string { return "test:blocking" }

func (m *blockingModel) Generate(ctx context.Context, req *lm.Request) (*lm.Response, error) {
	msg := lastMessage(req)
	m.started <- msg
	select {
	case <-m.release:
		return &lm.Response{Text: chatReply("done: " + msg), Model: m.Name(), Usage: lm.Usage{PromptTokens: 1, CompletionTokens: 1, Calls: 1}}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (h *harness) setBusyPolicy(policy string) {
	h.t.Helper()
	repo := persistence.NewAgentStore(h.db)
	a, err := repo.Get(context.Background(), agents.DefaultAgentID())
	if err != nil {
		h.t.Fatal(err)
	}
	a.Config = json.RawMessage(`{"busy_policy":"` + policy + `"}`)
	if _, err := repo.Update(context.Background(), a); err != nil {
		h.t.Fatal(err)
	}
}

func TestBusyPolicies(t *testing.T) {
	type answer struct {
		res *actorpb.TurnResult
		err error
	}
	for _, policy := range []string{agents.BusyEnqueue, agents.BusyReject, agents.BusyInterrupt} {
		t.Run(policy, func(t *testing.T) {
			model := newBlockingModel()
			h := newHarness(t, persisttest.SQLite(t), harnessOptions{model: model})
			h.setBusyPolicy(policy)
			firstDone := make(chan answer, 1)
			go func() {
				res, err := h.send(context.Background(), conv1, 0, "first", "")
				firstDone <- answer{res, err}
			}()
			if got := <-model.started; got != "first" {
				t.Fatalf("model started on %q", got)
			}
			secondDone := make(chan answer, 1)
			go func() {
				res, err := h.send(context.Background(), conv1, 0, "second", "")
				secondDone <- answer{res, err}
			}()
			switch policy {
			case agents.BusyEnqueue:
				testenv.Eventually(t, 5*time.Second, func() error {
					if len(h.sessionQueue(conv1)) != 1 {
						return errors.New("second message not queued")
					}
					return nil
				})
				model.release <- struct{}{}
				if a := <-firstDone; a.err != nil || a.res.Response != "done: first" {
					t.Fatalf("first = %+v", a)
				}
				if got := <-model.started; got != "second" {
					t.Fatalf("model started on %q", got)
				}
				model.release <- struct{}{}
				if a := <-secondDone; a.err != nil || a.res.Response != "done: second" {
					t.Fatalf("second = %+v", a)
				}
				h.checkLog(conv1, roleUser, roleAssistant, roleUser, roleAssistant)
			case agents.BusyReject:
				if a := <-secondDone; !errors.Is(a.err, actorpb.ErrBusy) {
					t.Fatalf("second = %+v, want busy", a)
				}
				model.release <- struct{}{}
				if a := <-firstDone; a.err != nil {
					t.Fatalf("first = %+v", a)
				}
				h.checkLog(conv1, roleUser, roleAssistant)
			case agents.BusyInterrupt:
				if a := <-firstDone; !errors.Is(a.err, actorpb.ErrCanceled) {
					t.Fatalf("first = %+v (%v), want cancelled", a, a.err)
				}
				if got := <-model.started; got != "second" {
					t.Fatalf("model started on %q", got)
				}
				model.release <- struct{}{}
				if a := <-secondDone; a.err != nil || a.res.Response != "done: second" {
					t.Fatalf("second = %+v", a)
				}
				h.checkLog(conv1, roleUser, roleSystem, roleUser, roleAssistant)
			}
		})
	}
}

// A turn that arrives while another runs, and one that leaves the queue, pass the same
// steps before they start: a retry of the running turn's idempotency key waits for
// that turn's answer instead of calling the model again, and a stranger's message
// queued behind the first turn of a new conversation is refused once that turn has
// made the conversation its owner's.
func TestTurnsBehindARunningTurn(t *testing.T) {
	model := newBlockingModel()
	h := newHarness(t, persisttest.SQLite(t), harnessOptions{model: model})
	pid, err := h.grains.pid(KindSession, conv1)
	if err != nil {
		t.Fatal(err)
	}
	request := func(u int, content, key string) *actor.Future {
		return h.sys.Root.RequestFuture(pid, &actorpb.SendMessage{CorrelationId: "corr-" + content, IdempotencyKey: key,
			ConversationId: conv1, UserId: h.users[u], Content: content}, 10*time.Second)
	}
	first := request(0, "first", "k1")
	if got := <-model.started; got != "first" {
		t.Fatalf("model started on %q", got)
	}
	retry := request(0, "first", "k1")
	stranger := request(1, "not mine", "")
	second := request(0, "second", "k2")
	// The requests above were sent from this goroutine before this one, so the session
	// has taken them in once it answers. The owner is known from the first turn's
	// start, so the stranger is refused at once instead of queued.
	if q := h.sessionQueue(conv1); len(q) != 1 || q[0].req.GetIdempotencyKey() != "k2" {
		t.Fatalf("queue holds %d turns, want the owner's second alone (the retry joins the running turn)", len(q))
	}
	res, err := stranger.Result()
	if err == nil {
		_, err = actorpb.As[*actorpb.TurnResult](res.(proto.Message), nil)
	}
	if !errors.Is(err, actorpb.ErrNotFound) {
		t.Fatalf("stranger's message: err = %v, want not found", err)
	}
	model.release <- struct{}{}
	if got := <-model.started; got != "second" {
		t.Fatalf("model started on %q", got)
	}
	model.release <- struct{}{}
	if _, err := second.Result(); err != nil {
		t.Fatal(err)
	}
	results := make([]*actorpb.TurnResult, 2)
	for i, f := range []*actor.Future{first, retry} {
		res, err := f.Result()
		if err == nil {
			results[i], err = actorpb.As[*actorpb.TurnResult](res.(proto.Message), nil)
		}
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
	}
	if results[0].MessageId != results[1].MessageId || results[1].Response != "done: first" {
		t.Fatalf("first = %v, retry = %v: want one answer for both", results[0], results[1])
	}
	select {
	case m := <-model.started:
		t.Fatalf("model called again, on %q", m)
	default:
	}
	h.checkLog(conv1, roleUser, roleAssistant, roleUser, roleAssistant)
	if got := h.counter("kowai_chat_turns_total", map[string]string{"outcome": "not_found"}); got != 1 {
		t.Fatalf("refused turns = %v, want 1", got)
	}
}

// sessionQueue reads the queue of a live session through its mailbox.
func (h *harness) sessionQueue(conv string) []*turn {
	h.t.Helper()
	pid, err := h.grains.pid(KindSession, conv)
	if err != nil {
		h.t.Fatal(err)
	}
	res, err := h.sys.Root.RequestFuture(pid, inspect{}, 5*time.Second).Result()
	if err != nil {
		h.t.Fatal(err)
	}
	return res.([]*turn)
}

func TestCancelTurn(t *testing.T) {
	model := newBlockingModel()
	h := newHarness(t, persisttest.SQLite(t), harnessOptions{model: model})
	done := make(chan error, 1)
	go func() {
		_, err := h.send(context.Background(), conv1, 0, "long", "k-long")
		done <- err
	}()
	<-model.started
	cancelAs := func(u int) (*actorpb.CancelResult, error) {
		return actorpb.As[*actorpb.CancelResult](h.grains.Call(t.Context(), KindSession, conv1, &actorpb.CancelTurn{
			ConversationId: conv1, UserId: h.users[u], TurnId: "k-long"}))
	}
	if _, err := cancelAs(1); !errors.Is(err, actorpb.ErrNotFound) {
		t.Fatalf("stranger cancel: %v", err)
	}
	res, err := cancelAs(0)
	if err != nil || !res.Canceled {
		t.Fatalf("cancel = %v, %v", res, err)
	}
	if err := <-done; !errors.Is(err, actorpb.ErrCanceled) {
		t.Fatalf("turn err = %v", err)
	}
	h.checkLog(conv1, roleUser, roleSystem)
}

// A reply counts once per agent type and outcome, with the model usage of the
// completed replies; the agent label is the agent's type, never its ID.
func TestAgentReplyMetrics(t *testing.T) {
	h := newHarness(t, persisttest.SQLite(t), harnessOptions{})
	res := h.mustSend(conv1, 0, "count me", "m1")
	agent, err := h.rt.deps.Agents.Get(t.Context(), res.GetAgentId())
	if err != nil {
		t.Fatal(err)
	}
	ok := map[string]string{"agent_type": agent.Type, "outcome": "ok"}
	if got := h.counter("kowai_agent_replies_total", ok); got != 1 {
		t.Fatalf("replies of %s = %v, want 1", agent.Type, got)
	}
	if got := h.counter("kowai_agent_tokens_total", map[string]string{"agent_type": agent.Type, "kind": "prompt"}); got != float64(res.GetUsage().GetPromptTokens()) || got == 0 {
		t.Fatalf("prompt tokens of %s = %v, want the turn's %d", agent.Type, got, res.GetUsage().GetPromptTokens())
	}
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "agent_type" && lp.GetValue() == res.GetAgentId() && agent.Type != res.GetAgentId() {
					t.Fatalf("%s is labelled with the agent's ID %s", mf.GetName(), lp.GetValue())
				}
			}
		}
	}
}

// TestFinishedTurnIsNotRetained checks that a session holds nothing of a turn once it
// has answered: the state a turn started from (its copy of the history tail) becomes
// garbage when the session adopts the turn's new state. When turns ran in child
// actors, protoactor's PIDSet.Remove left the finished child's PID, and through it the
// child, its job and that state, in the session's children slice until the next turn.
func TestFinishedTurnIsNotRetained(t *testing.T) {
	h := newHarness(t, persisttest.SQLite(t), harnessOptions{})
	h.mustSend(conv1, 0, "one", "")
	pid, err := h.grains.pid(KindSession, conv1)
	if err != nil {
		t.Fatal(err)
	}
	res, err := h.sys.Root.RequestFuture(pid, inspectState{}, 5*time.Second).Result()
	if err != nil {
		t.Fatal(err)
	}
	st := res.(sessionState)
	if len(st.Tail) != 2 {
		t.Fatalf("tail after one turn: %d entries", len(st.Tail))
	}
	// The second turn starts from this tail and, as a conversation's first tail has
	// no room to grow in place (sessionState.with), replaces it with a new one.
	old := weak.Make(&st.Tail[0])
	if cap(st.Tail) != len(st.Tail) {
		t.Fatalf("first tail of %d entries with room for %d: the second turn would extend it in place", len(st.Tail), cap(st.Tail))
	}
	st = sessionState{}
	res = nil
	h.mustSend(conv1, 0, "two", "")
	testenv.Eventually(t, 5*time.Second, func() error {
		runtime.GC()
		if old.Value() != nil {
			return errors.New("the tail the finished turn started from is still reachable")
		}
		return nil
	})
	runtime.KeepAlive(st)
}

// countingSnapshots counts the session loads of a snapshot store.
type countingSnapshots struct {
	persistence.Snapshots
	loads *atomic.Int64
}

func (c countingSnapshots) LoadSession(ctx context.Context, kind, id string) (persistence.Snapshot, bool, error) {
	c.loads.Add(1)
	return c.Snapshots.LoadSession(ctx, kind, id)
}

// TestFreshConversationSkipsActivationReads: a first turn whose ID the gateway just
// minted (SendMessage.fresh) activates its session without reading a snapshot; a fresh
// turn that names a conversation that exists after all writes nothing to it.
func TestFreshConversationSkipsActivationReads(t *testing.T) {
	var loads atomic.Int64
	h := newHarness(t, persisttest.SQLite(t), harnessOptions{deps: func(d *Deps) {
		d.Snapshots = countingSnapshots{Snapshots: d.Snapshots, loads: &loads}
	}})
	fresh := func(conv, content string) (*actorpb.TurnResult, error) {
		return actorpb.As[*actorpb.TurnResult](h.grains.Call(context.Background(), KindSession, conv, &actorpb.SendMessage{
			CorrelationId: "corr-fresh", ConversationId: conv, UserId: h.users[0], Content: content, Fresh: true}))
	}
	res, err := fresh(conv1, "hello")
	if err != nil || res.GetResponse() != "echo: hello" {
		t.Fatalf("fresh first turn: %v, %v", res, err)
	}
	if n := loads.Load(); n != 0 {
		t.Fatalf("a fresh first turn loaded %d snapshots", n)
	}
	h.checkLog(conv1, roleUser, roleAssistant)
	// A continuing turn of a live session reads nothing either; after passivation an
	// activation reads as before.
	h.mustSend(conv1, 0, "again", "")
	h.passivate(conv1)
	if _, err := fresh(conv1, "not new"); err == nil {
		t.Fatal("a fresh turn to an existing conversation succeeded")
	}
	h.checkLog(conv1, roleUser, roleAssistant, roleUser, roleAssistant)
	testenv.Eventually(t, 5*time.Second, func() error {
		if h.alive(KindSession, conv1) {
			return errors.New("the fenced session is still alive")
		}
		return nil
	})
	if res := h.mustSend(conv1, 0, "after", ""); res.GetResponse() != "echo: after" {
		t.Fatalf("turn after the refused fresh one: %v", res)
	}
	if n := loads.Load(); n != 1 {
		t.Fatalf("%d snapshot loads, want 1 (the activation after the refused fresh turn)", n)
	}
	h.checkLog(conv1, roleUser, roleAssistant, roleUser, roleAssistant, roleUser, roleAssistant)
}
