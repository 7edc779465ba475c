package actors

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/agents"
	"github.com/kowai/kowai/internal/gopool"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/workflows"
)

// KindWorkflowRun is the run grain's kind; its identity is the run ID.
const KindWorkflowRun = "workflow-run"

// Defaults applied by NewWorkflows to zero fields of WorkflowDeps.
const (
	// DefaultRunLease is how long a node's heartbeat covers the runs it executes:
	// a node renews it every RecoveryInterval (one write per node, however many
	// runs it executes), and once it lapses another node takes the runs over. A
	// run whose node died resumes within lease + interval + activation (about 4 s).
	DefaultRunLease = 3 * time.Second
	// DefaultRecoveryInterval is how often a node claims due runs.
	DefaultRecoveryInterval = time.Second
	// DefaultClaimBatch bounds the runs one node claims per tick.
	DefaultClaimBatch = 100
	// DefaultClaimLease is how long a claimed (or just created) run waits for its
	// grain to start it before it is due again.
	DefaultClaimLease = 10 * time.Second
	// DefaultSuspendSleepsOver: a durable sleep longer than this passivates the run
	// until its wake-up time instead of holding a goroutine.
	DefaultSuspendSleepsOver = 10 * time.Second
)

// WorkflowDeps are the workflow runtime's dependencies. Runs, Writer and Registry
// are required; Caller may be set later with SetCaller.
type WorkflowDeps struct {
	Runs     persistence.WorkflowRuns
	Writer   LogWriter
	Registry *workflows.Registry
	// Caller reaches the run and agent grains; the cluster node's client.
	Caller GrainCaller
	// Agents runs agent tasks; nil calls the agent grains through Caller.
	Agents workflows.AgentCaller
	// Premium says whether a run's owner may now use premium-priced models, asked
	// before each agent task that the agent grains run (a run carries no token, so
	// the owner's current roles decide, at call time). Nil refuses premium models
	// to every agent task.
	Premium PremiumAccess
	// Model runs signature-program tasks; nil makes them fail (not configured).
	Model lm.LM
	// Cache is the task result cache; nil disables WithCache.
	Cache workflows.Cache
	// NodeID names this node in lease_owner (default: a random ID).
	NodeID string
	// Lease (the node heartbeat's), RecoveryInterval, ClaimBatch, ClaimLease: see
	// the Default* values.
	Lease            time.Duration
	RecoveryInterval time.Duration
	ClaimBatch       int
	ClaimLease       time.Duration
	// Limits bound each run (zero fields: the workflows defaults; SuspendSleepsOver
	// defaults to DefaultSuspendSleepsOver).
	Limits workflows.Limits
	// IdleTimeout passivates an idle run grain (default DefaultIdleTimeout).
	IdleTimeout time.Duration
	// WriteLinger is how long a new run's row, and events that nobody waits for,
	// wait for a journal write that carries them before they are written alone
	// (default DefaultWriteLinger).
	WriteLinger time.Duration
	Logger      *slog.Logger
	// Metrics registers the workflow counters; nil leaves them unregistered.
	Metrics prometheus.Registerer
	// Tracing records a span for each execution of a run and each attempt of its
	// tasks, children of the grain call that started the execution; nil turns
	// tracing off.
	Tracing trace.TracerProvider
}

// PremiumAccess tells whether a user may use premium-priced models now (the
// models:premium permission of their current roles). The node implements it over
// the authentication service, which maps roles to permissions; this package knows
// no roles.
type PremiumAccess interface {
	PremiumAllowed(ctx context.Context, userID string) (bool, error)
}

// PremiumAccessFunc adapts a function to PremiumAccess.
type PremiumAccessFunc func(ctx context.Context, userID string) (bool, error)

// PremiumAllowed implements PremiumAccess.
func (f PremiumAccessFunc) PremiumAllowed(ctx context.Context, userID string) (bool, error) {
	return f(ctx, userID)
}

// Workflows runs workflow runs as grains on this node and recovers runs whose node
// died. Construction order: NewWorkflows; add Kind() to the cluster node's kinds;
// SetCaller(node.Client()) before the node starts; Run(ctx) once the node started.
type Workflows struct {
	deps    WorkflowDeps
	log     *slog.Logger
	caller  atomic.Pointer[GrainCaller]
	metrics *workflowMetrics
	live    liveSet
	// epoch names this process among the node's: a node restarted under the same
	// NodeID is another owner, so the runs of its earlier process are recovered.
	epoch int64
	// stacks runs the run grains' mailboxes, their executions and event pumps on
	// goroutines whose stacks have grown already (gopool): a fresh goroutine per
	// run for each of them grew its stack anew, about a tenth of a no-op task's
	// CPU on the runtime's side.
	stacks *gopool.Pool
	// beating is set once this process's heartbeat row exists (ensureNode).
	beating atomic.Bool
	beatMu  sync.Mutex
	// executing maps the ID of each run executing here to its grain and since
	// when its row is durable (executingRun), for the ownership check of every
	// recovery tick.
	executing sync.Map
	// watchMu guards watchers, which maps a run ID to the channels WatchFinish
	// handed out for it.
	watchMu  sync.Mutex
	watchers map[string][]chan string
}

// NewWorkflows validates deps and returns the runtime. Errors wrap ErrInvalidDeps.
func NewWorkflows(deps WorkflowDeps) (*Workflows, error) {
	for name, missing := range map[string]bool{"Runs": deps.Runs == nil, "Writer": deps.Writer == nil, "Registry": deps.Registry == nil} {
		if missing {
			return nil, fmt.Errorf("%w: %s is required", ErrInvalidDeps, name)
		}
	}
	deps.Lease = cmp.Or(deps.Lease, DefaultRunLease)
	deps.RecoveryInterval = cmp.Or(deps.RecoveryInterval, DefaultRecoveryInterval)
	deps.ClaimBatch = cmp.Or(deps.ClaimBatch, DefaultClaimBatch)
	deps.ClaimLease = cmp.Or(deps.ClaimLease, DefaultClaimLease)
	deps.IdleTimeout = cmp.Or(deps.IdleTimeout, DefaultIdleTimeout)
	deps.WriteLinger = cmp.Or(deps.WriteLinger, DefaultWriteLinger)
	deps.Limits.SuspendSleepsOver = cmp.Or(deps.Limits.SuspendSleepsOver, DefaultSuspendSleepsOver)
	deps.NodeID = cmp.Or(deps.NodeID, uuid.NewString())
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Workflows{deps: deps, log: log.With("component", "workflows"), epoch: time.Now().UnixNano(), stacks: gopool.New(0)}
	var err error
	if w.metrics, err = newWorkflowMetrics(deps.Metrics, deps.Runs); err != nil {
		return nil, err
	}
	if deps.Caller != nil {
		w.SetCaller(deps.Caller)
	}
	return w, nil
}

// WatchFinish returns a channel that receives run runID's final status once a run
// grain on this node has durably saved it (the commit that finishes the run has
// returned), and a stop function that releases the watch. It sees only finishes
// saved after the call, by this node: a caller that may watch too late reads the
// run afterwards (one row read), and a run finished on another node is seen by
// reading its row. stop may be called more than once, also after the status came.
func (w *Workflows) WatchFinish(runID string) (<-chan string, func()) {
	ch := make(chan string, 1)
	w.watchMu.Lock()
	if w.watchers == nil {
		w.watchers = map[string][]chan string{}
	}
	w.watchers[runID] = append(w.watchers[runID], ch)
	w.watchMu.Unlock()
	return ch, func() {
		w.watchMu.Lock()
		defer w.watchMu.Unlock()
		chans := slices.DeleteFunc(w.watchers[runID], func(c chan string) bool { return c == ch })
		if len(chans) == 0 {
			delete(w.watchers, runID)
		} else {
			w.watchers[runID] = chans
		}
	}
}

// finished tells run runID's watchers its durable final status.
func (w *Workflows) finished(runID, status string) {
	w.watchMu.Lock()
	chans := w.watchers[runID]
	delete(w.watchers, runID)
	w.watchMu.Unlock()
	for _, ch := range chans {
		ch <- status // buffered, and each channel gets one status only
	}
}

// SetCaller sets the grain client; call it before the cluster node starts.
func (w *Workflows) SetCaller(c GrainCaller) { w.caller.Store(&c) }

func (w *Workflows) callerOrNil() GrainCaller {
	if c := w.caller.Load(); c != nil {
		return *c
	}
	return nil
}

// Registry returns the registered workflows.
func (w *Workflows) Registry() *workflows.Registry { return w.deps.Registry }

// Kind returns the run grain's kind for the cluster node's configuration.
func (w *Workflows) Kind() *protocluster.Kind {
	return protocluster.NewKind(KindWorkflowRun, w.RunProps(""))
}

// RunProps returns the props of a run grain; identity is the run ID for a plain actor
// (tests), empty for a cluster grain.
func (w *Workflows) RunProps(identity string) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return newRunGrain(w, identity) }, actor.WithDispatcher(w.stacks.Dispatcher()))
}

// Run renews this node's heartbeat (and checks the ownership of the runs executing
// here) every RecoveryInterval on a loop of its own, so slow claims never delay it;
// and every RecoveryInterval it reclaims the runs of nodes whose heartbeat lapsed and
// claims due runs, poking their grains, which the cluster places, until ctx ends.
// Then it lets the heartbeat lapse at once, so that the runs still executing here are
// taken over without waiting for it. A tick reads the due_at index up to now only,
// in batches of ClaimBatch, and the executing runs of lapsed nodes only, so it costs
// the same with 100 or 100k open runs: runs that execute, wait for input or have
// finished have no due_at, sleeping runs are due at their wake-up time.
func (w *Workflows) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { w.beat(ctx) })
	err := claimLoop{interval: w.deps.RecoveryInterval, full: w.deps.ClaimBatch, maxRounds: math.MaxInt,
		log: w.log, failMsg: "workflow recovery failed", round: w.RecoverOnce}.run(ctx)
	wg.Wait()
	if w.beating.Load() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if herr := w.deps.Runs.Heartbeat(sctx, w.deps.NodeID, w.epoch, time.Now()); herr != nil {
			w.log.Warn("node heartbeat not ended; its runs are taken over when it lapses", "error", herr)
		}
	}
	return err
}

// beat renews this node's heartbeat and checks the ownership of its executing
// runs, at once and then every RecoveryInterval, until ctx ends.
func (w *Workflows) beat(ctx context.Context) {
	t := time.NewTicker(w.deps.RecoveryInterval)
	defer t.Stop()
	for {
		hctx, cancel := context.WithTimeout(ctx, w.deps.Lease)
		if err := w.deps.Runs.Heartbeat(hctx, w.deps.NodeID, w.epoch, time.Now().Add(w.deps.Lease)); err != nil {
			if ctx.Err() == nil {
				w.log.Warn("node heartbeat not renewed", "error", err)
			}
		} else {
			w.beating.Store(true)
		}
		w.checkOwnership(hctx)
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ensureNode writes this process's heartbeat row before it first executes a run,
// so that every executing run's owner has a row that can lapse.
func (w *Workflows) ensureNode(ctx context.Context) error {
	if w.beating.Load() {
		return nil
	}
	w.beatMu.Lock()
	defer w.beatMu.Unlock()
	if w.beating.Load() {
		return nil
	}
	if err := w.deps.Runs.Heartbeat(ctx, w.deps.NodeID, w.epoch, time.Now().Add(w.deps.Lease)); err != nil {
		return err
	}
	w.beating.Store(true)
	return nil
}

// RecoverOnce makes due the executing runs of nodes whose heartbeat lapsed, then
// claims one batch of due runs and starts their grains; it returns how many it
// claimed.
func (w *Workflows) RecoverOnce(ctx context.Context) (int, error) {
	caller := w.callerOrNil()
	if caller == nil {
		return 0, errors.New("actors: workflow recovery before SetCaller")
	}
	now := time.Now()
	if n, err := w.deps.Runs.ReclaimLapsed(ctx, now, w.deps.ClaimBatch); err != nil {
		w.log.Warn("runs of lapsed nodes not reclaimed", "error", err)
	} else if n > 0 {
		w.log.Info("runs of lapsed nodes made due", "count", n)
	}
	runs, err := w.deps.Runs.ClaimDue(ctx, now, w.deps.NodeID, w.deps.ClaimLease, w.deps.ClaimBatch)
	if err != nil {
		return len(runs), err
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, r := range runs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if r.Status == persistence.StatusRunning || r.Status == persistence.StatusRetrying {
				w.metrics.recoveries.Inc()
			}
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if _, err := actorpb.As[*actorpb.RunAck](caller.Call(cctx, KindWorkflowRun, r.ID, &actorpb.StartRun{CorrelationId: "recovery", RunId: r.ID})); err != nil {
				w.log.Warn("recovered run did not start; it is due again after its claim", "run_id", r.ID, "error", err)
			}
		})
	}
	wg.Wait()
	return len(runs), nil
}

// checkOwnership tells every run executing here whether its row still names this
// process and the version the grain wrote: a run another node took over (its node
// was thought dead, or another activation started it) stops within a tick, without
// a write per run. Only the runs that executed before the read are checked, so a
// run just started is never taken for lost.
func (w *Workflows) checkOwnership(ctx context.Context) {
	// Only runs whose row was durable before the read below are checked: a new
	// run executes while its row is still being written (createRunning), and a
	// read that does not see the row yet says nothing about who owns it.
	read := time.Now()
	before := map[string]liveGrain{}
	w.executing.Range(func(k, v any) bool {
		if e := v.(executingRun); !e.durable.IsZero() && e.durable.Before(read) {
			before[k.(string)] = e.grain
		}
		return true
	})
	if len(before) == 0 {
		return
	}
	owned, err := w.deps.Runs.OwnedRuns(ctx, w.deps.NodeID, w.epoch)
	if err != nil {
		w.log.Warn("ownership of executing runs not checked", "error", err)
		return
	}
	for id, g := range before {
		v, ok := owned[id]
		g.sys.Root.Send(g.pid, ownerCheck{owned: ok, version: v})
	}
}

// executingRun is an entry of Workflows.executing: the grain executing a run, and
// since when the run's row is durable as executing here (zero while a new run's
// row is still being written).
type executingRun struct {
	grain   liveGrain
	durable time.Time
}

// OnLeave stops the run grains of this node before the node leaves; each hands its
// executing run back (due now), and survivors resume them. Call it from the node's
// graceful leave.
func (w *Workflows) OnLeave(ctx context.Context) {
	for _, g := range w.live.all() {
		g.sys.Root.Poison(g.pid)
	}
}

// stepJournal is the workflows.Journal of the database: loads read the repository,
// appends go through the group-commit writer, fenced by the run's version when
// version is set (persistence.StepInsertAt), as every journal write of a run that
// does not commit with the run's own row must be: the journal has no foreign key
// to the run (migration 0016).
type stepJournal struct {
	w       *Workflows
	version int64
}

var _ workflows.Journal = stepJournal{}

func (j stepJournal) Load(ctx context.Context, runID string) ([]workflows.Entry, error) {
	steps, err := j.w.deps.Runs.Steps(ctx, runID)
	if err != nil {
		return nil, err
	}
	out := make([]workflows.Entry, len(steps))
	for i, s := range steps {
		e := workflows.Entry{RunID: s.RunID, Seq: s.Seq, Name: s.Name, Kind: workflows.Kind(s.Kind), Status: s.Status,
			Output: s.Output, Error: s.Error, Attempts: s.Attempts, CacheHit: s.CacheHit, WakeAt: s.WakeAt,
			StartedAt: s.StartedAt, FinishedAt: s.FinishedAt}
		if len(s.Spend) > 0 {
			if err := json.Unmarshal(s.Spend, &e.Usage); err != nil {
				return nil, fmt.Errorf("step %d of run %s: spend: %w", s.Seq, runID, err)
			}
		}
		out[i] = e
	}
	return out, nil
}

// stepOf is the journal row of e.
func stepOf(e workflows.Entry) (persistence.WorkflowStep, error) {
	st := persistence.WorkflowStep{RunID: e.RunID, Seq: e.Seq, Name: e.Name, Kind: string(e.Kind), Status: e.Status,
		Output: e.Output, Error: e.Error, Attempts: e.Attempts, CacheHit: e.CacheHit, WakeAt: e.WakeAt,
		StartedAt: e.StartedAt, FinishedAt: e.FinishedAt}
	if e.Usage != (lm.Usage{}) {
		b, err := json.Marshal(e.Usage)
		if err != nil {
			return st, fmt.Errorf("step %d of run %s: spend: %w", e.Seq, e.RunID, err)
		}
		st.Spend = b
	}
	return st, nil
}

func (j stepJournal) Append(ctx context.Context, e workflows.Entry) error {
	st, err := stepOf(e)
	if err != nil {
		return err
	}
	op := persistence.StepInsert(st)
	if j.version > 0 {
		op = persistence.StepInsertAt(st.RunID, j.version, st)
	}
	err = j.w.deps.Writer.Submit(ctx, op)
	if errors.Is(err, persistence.ErrDuplicate) {
		return fmt.Errorf("%w: %w", workflows.ErrDuplicateEntry, err)
	}
	return err
}

func (j stepJournal) DeleteFailed(ctx context.Context, runID string) error {
	return j.w.deps.Runs.DeleteFailedSteps(ctx, runID)
}

// grainAgents runs agent tasks as turns on the agent grains. A task cancelled while
// its turn runs cancels the turn at the agent's worker. Each call asks
// WorkflowDeps.Premium whether the run's owner may use premium models now; a refusal
// (CODE_FORBIDDEN) fails the task for good, like a missing agent or a spent budget.
type grainAgents struct{ w *Workflows }

func (a grainAgents) CallAgent(ctx context.Context, req workflows.AgentRequest) (workflows.AgentReply, error) {
	caller := a.w.callerOrNil()
	if caller == nil {
		return workflows.AgentReply{}, workflows.Permanent(fmt.Errorf("%w: no grain client", workflows.ErrNotConfigured))
	}
	agentID := req.Agent
	if _, err := uuid.Parse(agentID); err != nil {
		agentID = agents.BuiltinID(req.Agent)
	}
	// Decided at every call: an owner who lost models:premium after triggering the
	// run (or creating its schedule) is refused from the next task on.
	noPremium := true
	if p := a.w.deps.Premium; p != nil {
		ok, err := p.PremiumAllowed(ctx, req.OwnerID)
		if err != nil {
			return workflows.AgentReply{}, fmt.Errorf("agent %s: permissions of the run's owner: %w", req.Agent, err)
		}
		noPremium = !ok
	}
	turnID := req.RunID + "/" + req.Task
	res, err := actorpb.As[*actorpb.ReplyResult](caller.Call(ctx, KindAgent, agentID, &actorpb.GenerateReply{
		CorrelationId: req.RunID, AgentId: agentID, ConversationId: req.RunID, TurnId: turnID,
		UserId: req.OwnerID, Content: req.Message, NoPremium: noPremium}))
	if err != nil {
		if ctx.Err() != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			if _, cerr := caller.Call(cctx, KindAgent, agentID, &actorpb.CancelTurn{CorrelationId: req.RunID,
				ConversationId: req.RunID, UserId: req.OwnerID, TurnId: turnID}); cerr != nil {
				a.w.log.Warn("agent turn of a cancelled task was not cancelled", "run_id", req.RunID, "task", req.Task, "error", cerr)
			}
			return workflows.AgentReply{}, ctx.Err()
		}
		switch actorpb.CodeOf(err) {
		case actorpb.Code_CODE_FORBIDDEN, actorpb.Code_CODE_NOT_FOUND, actorpb.Code_CODE_INVALID_ARGUMENT, actorpb.Code_CODE_BUDGET_EXCEEDED:
			return workflows.AgentReply{}, workflows.Permanent(fmt.Errorf("agent %s: %w", req.Agent, err))
		}
		return workflows.AgentReply{}, fmt.Errorf("agent %s: %w", req.Agent, err)
	}
	u := res.GetUsage()
	usage := lm.Usage{PromptTokens: int(u.GetPromptTokens()), CompletionTokens: int(u.GetCompletionTokens()), CostUSD: u.GetCostUsd(), Calls: 1}
	if u.GetCacheHit() {
		usage.CacheHits = 1
	}
	return workflows.AgentReply{Content: res.GetResponse(), Model: res.GetModel(), Usage: usage}, nil
}

// grainChildren runs sub-workflows as runs of their own (grains, rows, recovery) and
// waits for them by reading their row.
type grainChildren struct{ w *Workflows }

// childPoll is how often a parent looks at its child's row.
const childPoll = 200 * time.Millisecond

func (c grainChildren) RunChild(ctx context.Context, req workflows.ChildRequest) (json.RawMessage, error) {
	caller := c.w.callerOrNil()
	if caller == nil {
		return nil, workflows.Permanent(fmt.Errorf("%w: no grain client", workflows.ErrNotConfigured))
	}
	if _, err := actorpb.As[*actorpb.RunAck](caller.Call(ctx, KindWorkflowRun, req.RunID, &actorpb.StartRun{
		CorrelationId: req.ParentRunID, RunId: req.RunID, Workflow: req.Workflow, OwnerId: req.OwnerID,
		ParametersJson: string(req.Params), ParentId: req.ParentRunID})); err != nil {
		return nil, fmt.Errorf("start child run %s: %w", req.RunID, err)
	}
	t := time.NewTicker(childPoll)
	defer t.Stop()
	id := req.RunID // a child that continues as new is followed to its last run
	for {
		select {
		case <-ctx.Done():
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			if _, err := caller.Call(cctx, KindWorkflowRun, id, &actorpb.CancelRun{CorrelationId: req.ParentRunID, RunId: id}); err != nil {
				c.w.log.Warn("child run of a cancelled parent was not cancelled", "run_id", id, "error", err)
			}
			return nil, ctx.Err()
		case <-t.C:
		}
		r, err := c.w.deps.Runs.GetRun(ctx, id)
		if err != nil {
			continue // transient; the parent's context bounds the wait
		}
		switch r.Status {
		case persistence.StatusCompleted:
			if r.ContinuedAs != "" {
				id = r.ContinuedAs
				continue
			}
			return r.Result, nil
		case persistence.StatusFailed, persistence.StatusCancelled:
			return nil, workflows.Permanent(fmt.Errorf("child run %s %s: %s", id, r.Status, r.Error))
		}
	}
}

// workflowMetrics are the engine's metrics.
type workflowMetrics struct {
	finished     *prometheus.CounterVec
	started      *prometheus.CounterVec
	recoveries   prometheus.Counter
	taskDuration *prometheus.HistogramVec
	taskAttempts *prometheus.HistogramVec
}

// RunCounter counts the open runs by state; persistence.WorkflowStore implements
// it. The runtime exports the counts as kowai_workflow_runs when its Runs does.
type RunCounter interface {
	CountOpenRuns(ctx context.Context) (map[string]int, error)
}

func newWorkflowMetrics(reg prometheus.Registerer, runs persistence.WorkflowRuns) (*workflowMetrics, error) {
	m := &workflowMetrics{
		started: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kowai_workflow_runs_started_total",
			Help: "Executions of workflow runs started on this node (first runs and resumptions), by workflow."}, []string{"workflow"}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kowai_workflow_runs_finished_total",
			Help: "Executions of workflow runs that reached a state on this node, by workflow and status."}, []string{"workflow", "status"}),
		recoveries: prometheus.NewCounter(prometheus.CounterOpts{Name: "kowai_workflow_recoveries_total",
			Help: "Runs left executing by a lost node that this node claimed."}),
		taskDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kowai_workflow_task_duration_seconds",
			Help:    "Duration of task attempts on this node, by task kind and how the attempt ended (completed, failed, retrying, cancelled).",
			Buckets: []float64{.001, .005, .025, .1, .5, 1, 2.5, 5, 10, 30, 60, 300}}, []string{"kind", "status"}),
		taskAttempts: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kowai_workflow_task_attempts",
			Help:    "Attempts a task took until it completed or failed for good, by task kind and status.",
			Buckets: []float64{1, 2, 3, 4, 5, 7, 10}}, []string{"kind", "status"}),
	}
	if reg != nil {
		cs := []prometheus.Collector{m.started, m.finished, m.recoveries, m.taskDuration, m.taskAttempts}
		if rc, ok := runs.(RunCounter); ok {
			cs = append(cs, newOpenRunsCollector(rc))
		}
		for _, c := range cs {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("%w: register workflow metrics: %w", ErrInvalidDeps, err)
			}
		}
	}
	return m, nil
}

// observeTask records the metrics of a task event; started keeps the start of each
// step's attempt in flight (the caller's, guarded by its lock).
func (m *workflowMetrics) observeTask(e workflows.Event, started map[int]time.Time) {
	if e.Seq == 0 || e.Kind == workflows.KindSleep || e.Kind == workflows.KindInput {
		return
	}
	switch e.Status {
	case workflows.StatusRunning:
		started[e.Seq] = e.Time
		return
	case workflows.StatusCompleted, workflows.StatusFailed, workflows.StatusRetrying, workflows.StatusCancelled:
	default:
		return
	}
	if t0, ok := started[e.Seq]; ok {
		delete(started, e.Seq)
		m.taskDuration.WithLabelValues(string(e.Kind), e.Status).Observe(e.Time.Sub(t0).Seconds())
	}
	if e.Attempt > 0 && (e.Status == workflows.StatusCompleted || e.Status == workflows.StatusFailed) {
		m.taskAttempts.WithLabelValues(string(e.Kind), e.Status).Observe(float64(e.Attempt))
	}
}

// openRunsCollector exports the cluster's open runs by state from the database,
// read at most every openRunsTTL whatever the scrape rate. Every node reports the
// same cluster-wide numbers: aggregate with max, not sum.
type openRunsCollector struct {
	counter RunCounter
	desc    *prometheus.Desc

	mu     sync.Mutex
	at     time.Time
	counts map[string]int
}

const openRunsTTL = 10 * time.Second

func newOpenRunsCollector(rc RunCounter) *openRunsCollector {
	return &openRunsCollector{counter: rc, desc: prometheus.NewDesc("kowai_workflow_runs",
		"Open workflow runs of the whole cluster by status (pending, running, retrying: active; paused: waiting for input or sleeping); the same on every node.",
		[]string{"status"}, nil)}
}

// Describe implements prometheus.Collector.
func (c *openRunsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *openRunsCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) > openRunsTTL {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		counts, err := c.counter.CountOpenRuns(ctx)
		cancel()
		if err == nil {
			c.counts, c.at = counts, time.Now()
		}
	}
	if c.counts == nil {
		return
	}
	for _, st := range []string{persistence.StatusPending, persistence.StatusRunning, persistence.StatusRetrying, persistence.StatusPaused} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(c.counts[st]), st)
	}
}
