package actors

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/agents"
	"github.com/kowai/kowai/internal/gopool"
	"github.com/kowai/kowai/internal/tracing"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/supervisors"
)

// Grain kind names.
const (
	// KindSession is the session grain's kind; its identity is the conversation ID.
	KindSession = "session"
	// KindAgent is the agent grain's kind; its identity is the agent ID.
	KindAgent = "agent"
)

// Defaults applied by New to zero fields of Deps.
const (
	DefaultIdleTimeout   = 10 * time.Minute
	DefaultTurnTimeout   = 2 * time.Minute
	DefaultHistoryWindow = agents.DefaultHistoryWindow
	DefaultAgentWorkers  = 8
	DefaultAgentQueue    = 1024
	// DefaultSnapshotLag lets a session's snapshot trail the log by up to 40 turns
	// (two messages each). A snapshot, a few KiB with its tail, costs a chat turn more
	// than both its messages, so it rides along with every 40th reply instead of every
	// reply; an activation after a crash then reads at most 80 messages of the log.
	DefaultSnapshotLag = 4 * DefaultHistoryWindow
	// DefaultUserMessageGrace is how long a turn holds its user's message back from the
	// writer. A reply back by then (a fast model) commits with the message in one write;
	// otherwise the writer could take the message alone, and the reply would wait for
	// that commit before its own: two commits in a row. It was 10-13% of continuing
	// turns on MariaDB at 64 connections, 4-5% with this grace.
	DefaultUserMessageGrace = 2 * time.Millisecond
)

// ErrInvalidDeps means New was given unusable dependencies; the message names the field.
var ErrInvalidDeps = errors.New("actors: invalid dependencies")

// GrainCaller calls a grain anywhere in the cluster: kowai's cluster.Client satisfies it,
// so this package never imports the cluster package. A reply may be an
// *actorpb.ErrorReply; see actorpb.As.
type GrainCaller interface {
	Call(ctx context.Context, kind, identity string, req proto.Message) (proto.Message, error)
}

// LogWriter is the durable write path of the grains; *persistence.Writer (the
// group-commit writer) satisfies it. Nil from either method means durable.
type LogWriter interface {
	// AppendMessages writes msgs together; a taken (conversation, seq) or
	// (conversation, idempotency key) is persistence.ErrDuplicate.
	AppendMessages(ctx context.Context, msgs ...persistence.Message) error
	// SaveSnapshot is a compare-and-swap on the snapshot's version;
	// persistence.ErrConflict when another writer got there first.
	SaveSnapshot(ctx context.Context, s persistence.Snapshot, expectedVersion int64) error
	// Submit applies op in a group-commit batch.
	Submit(ctx context.Context, op persistence.Op) error
}

// Deps are the runtime's dependencies and settings. Writer, the four repositories, LM
// and SupervisorMetrics are required; Caller may be set later with SetCaller.
type Deps struct {
	Writer        LogWriter
	Conversations persistence.Conversations
	Messages      persistence.Messages
	Agents        persistence.Agents
	Snapshots     persistence.Snapshots
	// LM is the model every agent calls (the full lm.New stack in production),
	// unless the agent names another one that Models resolves.
	LM lm.LM
	// Models, optional, resolves an agent's model field to the stack that serves
	// it (an *lm.Catalog in production); nil means every agent calls LM.
	Models ModelResolver
	// Budgets, optional, holds users to their spending limits before every model
	// call of a reply; nil means no per-user budgets.
	Budgets BudgetGuard
	// Programs, optional, changes an agent's programs together with their audit
	// entries (deploy, promotion, rollback); nil means Agents when it implements
	// persistence.AgentPrograms (the AgentStore does). Without either, agents
	// refuse program deploys.
	Programs persistence.AgentPrograms
	// Stats, optional, gives an agent grain that activates with a canary the
	// canary's turns and ratings so far, and its ratings when a reply is rated;
	// nil means a canary's decision counts only the turns its activation saw.
	Stats persistence.Stats
	// Caller reaches other grains; the cluster node's client.
	Caller GrainCaller
	// Types is the agent type registry; nil means agents.Builtins.
	Types *agents.Registry
	// Logger receives the grains' logs; nil discards them.
	Logger *slog.Logger
	// Metrics registers the runtime's collectors; nil leaves them unregistered.
	Metrics prometheus.Registerer
	// SupervisorMetrics counts supervision decisions (shared per registry).
	SupervisorMetrics *supervisors.Metrics
	// Tracing records a span for each chat turn and each agent worker run, children of
	// the grain call that asked for them; nil turns tracing off.
	Tracing trace.TracerProvider
	// WorkerBackoff and WorkerBudget govern restarts of an agent's model-call workers
	// (zero values: the supervisors defaults).
	WorkerBackoff supervisors.Backoff
	WorkerBudget  supervisors.RestartBudget
	// IdleTimeout passivates a grain that received nothing for this long.
	IdleTimeout time.Duration
	// TurnTimeout bounds one chat turn, model call included. The cluster's request
	// timeout must be at least this long.
	TurnTimeout time.Duration
	// HistoryWindow is how many recent messages a session keeps in memory (and in its
	// snapshot) to give the agent as history.
	HistoryWindow int
	// SnapshotLag is how many log messages a session's snapshot may lack: a turn whose
	// messages would make the lag reach it saves the snapshot in the same commit as
	// its reply, and passivation saves any lag. Activation reads the last
	// max(HistoryWindow, SnapshotLag) messages of the log, so it sees every message a
	// snapshot lacks. 1 saves the snapshot with every reply.
	SnapshotLag int
	// UserMessageGrace is how long a turn holds its user's message back from the
	// writer while the agent starts on it (default DefaultUserMessageGrace; negative:
	// not at all). A reply back within it commits together with the message.
	UserMessageGrace time.Duration
	// AgentWorkers bounds the model calls one agent runs at once, unless its config sets
	// max_concurrency; AgentQueue bounds the calls waiting for a worker.
	AgentWorkers int
	AgentQueue   int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// ModelResolver finds the model an agent names; "" is the node's default.
type ModelResolver interface {
	Model(name string) (lm.LM, error)
}

// Runtime builds the session and agent grains and keeps what they share. It is created
// once per node, before the cluster node, whose kinds it supplies.
//
// Construction order: New (no network, no goroutines); give Kinds() to the cluster
// node's config; SetCaller(node.Client()) before the node starts; EnsureBuiltins once
// the database is migrated. OnLeave belongs in the node's graceful leave.
type Runtime struct {
	deps     Deps
	log      *slog.Logger
	types    *agents.Registry
	metrics  *metrics
	workers  *supervisors.Strategy
	turns    *supervisors.Strategy
	caller   atomic.Pointer[GrainCaller]
	sessions liveSet
	// tracer is nil when tracing is off.
	tracer trace.Tracer
	// stacks runs turns and agent workers' mailboxes on goroutines whose stacks
	// earlier turns grew (see gopool).
	stacks *gopool.Pool
}

// New validates deps and returns a Runtime. Errors wrap ErrInvalidDeps.
func New(deps Deps) (*Runtime, error) {
	for name, missing := range map[string]bool{
		"Writer": deps.Writer == nil, "Conversations": deps.Conversations == nil, "Messages": deps.Messages == nil,
		"Agents": deps.Agents == nil, "Snapshots": deps.Snapshots == nil, "LM": deps.LM == nil,
		"SupervisorMetrics": deps.SupervisorMetrics == nil,
	} {
		if missing {
			return nil, fmt.Errorf("%w: %s is required", ErrInvalidDeps, name)
		}
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Programs == nil {
		deps.Programs, _ = deps.Agents.(persistence.AgentPrograms)
	}
	deps.IdleTimeout = cmp.Or(deps.IdleTimeout, DefaultIdleTimeout)
	deps.TurnTimeout = cmp.Or(deps.TurnTimeout, DefaultTurnTimeout)
	deps.HistoryWindow = cmp.Or(deps.HistoryWindow, DefaultHistoryWindow)
	deps.AgentWorkers = cmp.Or(deps.AgentWorkers, DefaultAgentWorkers)
	deps.AgentQueue = cmp.Or(deps.AgentQueue, DefaultAgentQueue)
	deps.SnapshotLag = cmp.Or(deps.SnapshotLag, DefaultSnapshotLag)
	deps.UserMessageGrace = cmp.Or(deps.UserMessageGrace, DefaultUserMessageGrace)
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rt := &Runtime{deps: deps, log: log.With("component", "actors"), types: deps.Types,
		tracer: tracing.Tracer(deps.Tracing, "github.com/kowai/kowai/actors"), stacks: gopool.New(0)}
	if rt.types == nil {
		var err error
		if rt.types, err = agents.NewRegistry(agents.Builtins(deps.Now)...); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidDeps, err)
		}
	}
	var err error
	if rt.metrics, err = newMetrics(deps.Metrics); err != nil {
		return nil, err
	}
	classifiers := failureClassifiers
	if rt.workers, err = supervisors.NewStrategy(supervisors.Options{
		ActorKind: "agent-worker", Metrics: deps.SupervisorMetrics, Logger: rt.log, Classifiers: classifiers,
		Backoff: deps.WorkerBackoff, Budget: deps.WorkerBudget,
	}); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidDeps, err)
	}
	// A turn runs once: restarting it would append its messages again, so every
	// failure stops it and the session answers for it. Turns run in goroutines, not
	// child actors (see session.start); this strategy logs and counts their failures.
	if rt.turns, err = supervisors.NewStrategy(supervisors.Options{
		ActorKind: "session-turn", Metrics: deps.SupervisorMetrics, Logger: rt.log, Classifiers: classifiers,
		Decider: func(supervisors.Kind) actor.Directive { return actor.StopDirective },
	}); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidDeps, err)
	}
	if deps.Caller != nil {
		rt.SetCaller(deps.Caller)
	}
	return rt, nil
}

// failureClassifiers map the errors of persistence and signatures/lm to supervision
// failure kinds: a fenced write is a conflict (stop), a spent budget stops, a model
// timeout and other model errors restart with backoff. They are built once: failures
// are classified on every fenced write and every failed turn.
var failureClassifiers = buildClassifiers()

func buildClassifiers() []supervisors.Classifier {
	return []supervisors.Classifier{
		supervisors.Match(supervisors.KindConflict, persistence.ErrConflict, persistence.ErrDuplicate),
		supervisors.Match(supervisors.KindBudgetExceeded, lm.ErrBudgetExceeded),
		supervisors.Match(supervisors.KindTimeout, lm.ErrTimeout),
		supervisors.Match(supervisors.KindModelError, lm.ErrRateLimited, lm.ErrUnavailable, lm.ErrBadRequest,
			lm.ErrAuth, lm.ErrContentFiltered, lm.ErrCircuitOpen, lm.ErrProvider),
	}
}

// logReadLimit is how many of the log's last messages an activation reads: the history
// window, and at least every message the snapshot may lack.
func (rt *Runtime) logReadLimit() int {
	return max(rt.deps.HistoryWindow, rt.deps.SnapshotLag)
}

// SetCaller sets the grain client; call it before the cluster node starts.
func (rt *Runtime) SetCaller(c GrainCaller) { rt.caller.Store(&c) }

// callerOrNil returns the grain client, or nil before SetCaller.
func (rt *Runtime) callerOrNil() GrainCaller {
	if c := rt.caller.Load(); c != nil {
		return *c
	}
	return nil
}

// Kinds returns the grain kinds for the cluster node's configuration.
func (rt *Runtime) Kinds() []*protocluster.Kind {
	return []*protocluster.Kind{
		protocluster.NewKind(KindSession, rt.SessionProps("")),
		protocluster.NewKind(KindAgent, rt.AgentProps("")),
	}
}

// SessionProps returns the props of a session grain. Identity is the conversation ID
// for a plain actor (tests, benchmarks); empty for a cluster grain, which learns it from
// the cluster. Its mailbox runs on the runtime's goroutine pool, as agents' and
// workers' do: a new goroutine per mailbox run grew its stack on every turn.
func (rt *Runtime) SessionProps(identity string) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return newSession(rt, identity) }, actor.WithDispatcher(rt.stacks.Dispatcher()))
}

// AgentProps returns the props of an agent grain; identity and mailbox as for
// SessionProps.
func (rt *Runtime) AgentProps(identity string) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return newAgent(rt, identity) }, actor.WithDispatcher(rt.stacks.Dispatcher()))
}

// AgentTypes describes the registered agent types, for GET /api/v1/agents/types.
func (rt *Runtime) AgentTypes() []agents.Info { return rt.types.List() }

// Types returns the agent type registry, e.g. to validate an agent's config before it
// is stored.
func (rt *Runtime) Types() *agents.Registry { return rt.types }

// EnsureBuiltins creates the built-in agent of every registered type that is missing.
// It is idempotent; call it at startup after migrations.
func (rt *Runtime) EnsureBuiltins(ctx context.Context) error {
	return ensureBuiltins(ctx, rt.deps.Agents, rt.types)
}

// ensureBuiltins creates the built-in agent of every type in r that does not exist yet
// (owner empty, so every user sees it). It is idempotent and safe to run on several
// nodes at once: an agent another node created first is left as it is, and so is one an
// administrator has edited since.
func ensureBuiltins(ctx context.Context, repo persistence.Agents, r *agents.Registry) error {
	for _, info := range r.List() {
		id := agents.BuiltinID(info.Name)
		if _, err := repo.Get(ctx, id); err == nil {
			continue
		} else if !errors.Is(err, persistence.ErrNotFound) {
			return fmt.Errorf("ensure built-in agent %s: %w", info.Name, err)
		}
		_, err := repo.Create(ctx, persistence.Agent{ID: id, Name: info.Name, Type: info.Name,
			Signature: info.Signature, Config: []byte("{}")})
		if err != nil && !errors.Is(err, persistence.ErrDuplicate) {
			return fmt.Errorf("ensure built-in agent %s: %w", info.Name, err)
		}
	}
	return nil
}

// specOf is the spec of a stored agent.
func specOf(a persistence.Agent) agents.Spec {
	return agents.Spec{ID: a.ID, Name: a.Name, Type: a.Type, Instructions: a.Instructions, Signature: a.Signature,
		Model: a.Model, Config: a.Config, Program: a.Program}
}

// OnLeave passivates every session grain of this node and returns once each has saved
// its final snapshot and is stopping, or when ctx ends. Pass it as the cluster node's
// Config.OnLeave.
func (rt *Runtime) OnLeave(ctx context.Context) {
	live := rt.sessions.all()
	var wg sync.WaitGroup
	for _, s := range live {
		wg.Go(func() {
			timeout := time.Until(deadlineOr(ctx, 10*time.Second))
			if timeout <= 0 {
				return
			}
			_, err := s.sys.Root.RequestFuture(s.pid, &actorpb.Passivate{CorrelationId: "leave"}, timeout).Result()
			if err != nil {
				rt.log.Warn("session did not passivate before leaving", "pid", s.pid.Id, "error", err)
			}
		})
	}
	wg.Wait()
	rt.log.Info("sessions passivated for leave", "count", len(live))
}

func deadlineOr(ctx context.Context, d time.Duration) time.Time {
	if dl, ok := ctx.Deadline(); ok {
		return dl
	}
	return time.Now().Add(d)
}

// liveSet is the set of session grains alive on this node.
type liveSet struct {
	mu  sync.Mutex
	set map[*actor.PID]*actor.ActorSystem
}

type liveGrain struct {
	pid *actor.PID
	sys *actor.ActorSystem
}

func (l *liveSet) add(sys *actor.ActorSystem, pid *actor.PID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.set == nil {
		l.set = map[*actor.PID]*actor.ActorSystem{}
	}
	l.set[pid] = sys
}

func (l *liveSet) remove(pid *actor.PID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.set, pid)
}

func (l *liveSet) all() []liveGrain {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]liveGrain, 0, len(l.set))
	for pid, sys := range l.set {
		out = append(out, liveGrain{pid: pid, sys: sys})
	}
	return out
}
