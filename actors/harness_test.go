package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/signatures/lm/lmtest"
	"github.com/kowai/kowai/supervisors"
)

// harness is one node's worth of actors on a local actor system (no cluster): a
// Runtime over a real database, its grains spawned as named actors by localGrains.
type harness struct {
	t      testing.TB
	db     *persistence.DB
	writer *persistence.Writer
	rt     *Runtime
	sys    *actor.ActorSystem
	grains *localGrains
	reg    *prometheus.Registry
	users  []string
}

type harnessOptions struct {
	model  lm.LM
	writer LogWriter // wraps the real writer when set
	deps   func(*Deps)
}

func newHarness(t testing.TB, db *persistence.DB, opts harnessOptions) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := persistence.NewWriter(db, persistence.WriterOptions{})
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("writer: %v", err)
			}
		case <-time.After(2 * time.Second):
			// Not this package's failure: the writer did not drain; say so and go on.
			t.Logf("persistence writer did not stop within 2s of its context ending")
		}
	})
	reg := prometheus.NewRegistry()
	sm, err := supervisors.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	model := opts.model
	if model == nil {
		model = echoModel()
	}
	var lw LogWriter = w
	if opts.writer != nil {
		lw = opts.writer
	}
	deps := Deps{
		Writer: lw, Conversations: persistence.NewConversationStore(db), Messages: persistence.NewMessageStore(db),
		Agents: persistence.NewAgentStore(db), Snapshots: persistence.NewSnapshotStore(db), LM: model,
		Metrics: reg, SupervisorMetrics: sm, TurnTimeout: 20 * time.Second,
		WorkerBackoff: supervisors.Backoff{Initial: time.Millisecond, Max: 10 * time.Millisecond},
	}
	if opts.deps != nil {
		opts.deps(&deps)
	}
	rt, err := New(deps)
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.EnsureBuiltins(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The library logs every actor system start; tests read their own assertions, not that.
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }))
	t.Cleanup(sys.Shutdown)
	h := &harness{t: t, db: db, writer: w, rt: rt, sys: sys, reg: reg}
	h.grains = &localGrains{sys: sys, props: map[string]func(string) *actor.Props{KindSession: rt.SessionProps, KindAgent: rt.AgentProps}}
	rt.SetCaller(h.grains)
	users := persistence.NewUserStore(db)
	for i := range 2 {
		u, err := users.Create(t.Context(), persistence.User{Email: fmt.Sprintf("u%d@example.com", i), Roles: []string{"user"}})
		if err != nil {
			t.Fatal(err)
		}
		h.users = append(h.users, u.ID)
	}
	return h
}

// localGrains is a GrainCaller over one local actor system: it spawns each grain as
// an actor named kind/identity on first use, like the cluster's activation does.
type localGrains struct {
	sys   *actor.ActorSystem
	props map[string]func(identity string) *actor.Props
	// pids are the grains spawned so far, called again while they live, as the
	// cluster's PID cache does.
	mu   sync.Mutex
	pids map[grainKey]*actor.PID
}

type grainKey struct{ kind, identity string }

// forget drops the PIDs kept so far: they are the caller's, not the grains'.
func (l *localGrains) forget() {
	l.mu.Lock()
	l.pids = nil
	l.mu.Unlock()
}

func (l *localGrains) pid(kind, identity string) (*actor.PID, error) {
	props, ok := l.props[kind]
	if !ok {
		return nil, fmt.Errorf("no kind %q", kind)
	}
	// A live grain is called by the PID it was spawned with, as the cluster client
	// calls one it has a PID for: spawning to learn that the name is taken builds
	// and discards a whole actor (context, mailbox, registry entry) on every call,
	// which the benchmarks would count as the turn's.
	key := grainKey{kind, identity}
	l.mu.Lock()
	pid := l.pids[key]
	l.mu.Unlock()
	if pid != nil {
		if _, ok := l.sys.ProcessRegistry.GetLocal(pid.GetId()); ok {
			return pid, nil
		}
	}
	pid, err := l.sys.Root.SpawnNamed(props(identity), kind+"/"+identity)
	if err != nil && !errors.Is(err, actor.ErrNameExists) {
		return nil, err
	}
	l.mu.Lock()
	if l.pids == nil {
		l.pids = map[grainKey]*actor.PID{}
	}
	l.pids[key] = pid
	l.mu.Unlock()
	return pid, nil
}

// Call implements GrainCaller, honouring ctx like the cluster client does.
func (l *localGrains) Call(ctx context.Context, kind, identity string, req proto.Message) (proto.Message, error) {
	pid, err := l.pid(kind, identity)
	if err != nil {
		return nil, err
	}
	timeout := 30 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	f := l.sys.Root.RequestFuture(pid, req, timeout)
	if ctx.Done() == nil {
		// Nothing can end the wait early: no goroutine to watch for it.
		res, err := f.Result()
		if err != nil {
			return nil, err
		}
		m, ok := res.(proto.Message)
		if !ok {
			return nil, fmt.Errorf("reply %T is not protobuf", res)
		}
		return m, nil
	}
	type result struct {
		res any
		err error
	}
	ch := make(chan result, 1)
	go func() {
		res, err := f.Result()
		ch <- result{res, err}
	}()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case r := <-ch:
		if r.err != nil {
			return nil, r.err
		}
		m, ok := r.res.(proto.Message)
		if !ok {
			return nil, fmt.Errorf("reply %T is not protobuf", r.res)
		}
		return m, nil
	}
}

// chatReply is a reply in the chat signature's format.
func chatReply(text string) string {
	return "[[ ## response ## ]]\n" + text + "\n\n[[ ## completed ## ]]"
}

// lastMessage returns the message of the final user block of a chat prompt.
func lastMessage(req *lm.Request) string {
	text := lm.MessagesText(req.Messages[len(req.Messages)-1:])
	_, after, _ := strings.Cut(text, "[[ ## message ## ]]")
	before, _, _ := strings.Cut(after, "Respond with")
	return strings.TrimSpace(before)
}

// echoModel answers every chat prompt with "echo: <message>".
func echoModel() *lmtest.Scripted {
	return lmtest.NewScripted(nil, lmtest.WithRespond(func(req *lm.Request) lmtest.Output {
		return lmtest.Output{Text: chatReply("echo: " + lastMessage(req))}
	}))
}

// send sends one turn as user u and returns the typed answer.
func (h *harness) send(ctx context.Context, conv string, u int, content, key string) (*actorpb.TurnResult, error) {
	return actorpb.As[*actorpb.TurnResult](h.grains.Call(ctx, KindSession, conv, &actorpb.SendMessage{
		CorrelationId: "corr-" + key, IdempotencyKey: key, ConversationId: conv, UserId: h.users[u], Content: content}))
}

func (h *harness) mustSend(conv string, u int, content, key string) *actorpb.TurnResult {
	h.t.Helper()
	res, err := h.send(context.Background(), conv, u, content, key)
	if err != nil {
		h.t.Fatalf("send %q: %v", content, err)
	}
	return res
}

// logOf returns the conversation's log, oldest first.
func (h *harness) logOf(conv string) []persistence.Message {
	h.t.Helper()
	page, err := persistence.NewMessageStore(h.db).ListByConversation(context.Background(), conv, persistence.Forward, persistence.PageRequest{Limit: 200})
	if err != nil {
		h.t.Fatal(err)
	}
	return page.Items
}

// checkLog fails unless the log's seqs are 1..n without gap or duplicate and its roles
// are as given.
func (h *harness) checkLog(conv string, roles ...string) []persistence.Message {
	h.t.Helper()
	msgs := h.logOf(conv)
	var got []string
	for i, m := range msgs {
		if m.Seq != int64(i+1) {
			h.t.Fatalf("log of %s: message %d has seq %d", conv, i, m.Seq)
		}
		got = append(got, m.Role)
	}
	if strings.Join(got, ",") != strings.Join(roles, ",") {
		h.t.Fatalf("log roles = %v, want %v", got, roles)
	}
	return msgs
}

// counter returns the value of a counter of the harness registry.
func (h *harness) counter(name string, labels map[string]string) float64 {
	h.t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue metric
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// alive reports whether the named grain actor exists.
func (h *harness) alive(kind, identity string) bool {
	_, ok := h.sys.ProcessRegistry.GetLocal(kind + "/" + identity)
	return ok
}

// collector is a stream target that records what it receives.
type collector struct {
	mu     sync.Mutex
	deltas []string
	ends   []*actorpb.StreamEnd
}

func (c *collector) Receive(ctx actor.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch m := ctx.Message().(type) {
	case *actorpb.TokenDelta:
		c.deltas = append(c.deltas, m.GetDelta())
	case *actorpb.StreamEnd:
		c.ends = append(c.ends, m)
	}
}

func (c *collector) text() (string, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.deltas, ""), len(c.ends)
}
