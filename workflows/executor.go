package workflows

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/kowai/kowai/signatures/lm"
)

// Run and task states (API.md).
const (
	StatusPending   = "pending"
	StatusRunning   = "running"
	StatusRetrying  = "retrying"
	StatusPaused    = "paused"
	StatusCompleted = "completed"
	StatusFailed    = "failed"
	StatusCancelled = "cancelled"
)

// Finished reports whether status is terminal.
func Finished(status string) bool {
	return status == StatusCompleted || status == StatusFailed || status == StatusCancelled
}

// Errors of the engine.
var (
	// ErrNondeterministic means a replay met a step whose name or kind
	// differs from the journal's at the same sequence number: the workflow
	// branched on something other than task results. The run fails.
	ErrNondeterministic = errors.New("workflows: nondeterministic workflow: the replay does not match the journal")
	// ErrTooManyTasks means a run went past Limits.MaxTasks steps.
	ErrTooManyTasks = errors.New("workflows: too many tasks in one run")
	// ErrSuspended is what steps return once the run has paused (waiting
	// for input, or a long durable sleep): the workflow should return it.
	// Steps called after it do not run.
	ErrSuspended = errors.New("workflows: run suspended")
	// ErrWorkflowTimeout is the failure of a run past its Timeout.
	ErrWorkflowTimeout = errors.New("workflows: workflow timed out")
	// ErrCancelled is the cause a runtime gives when a person cancels a run.
	ErrCancelled = errors.New("workflows: run cancelled")
	// ErrInterrupted marks an Outcome that reached no state: the journal
	// failed, or another activation of the run owns it (fencing). Record
	// nothing; recovery resumes the run.
	ErrInterrupted = errors.New("workflows: run interrupted")
	// ErrResultTooLarge means a run's result exceeds Limits.MaxResultBytes.
	ErrResultTooLarge = errors.New("workflows: result too large")
	// ErrNotConfigured means a step needs a service the executor lacks
	// (an AgentCaller, a Model, a ChildRunner).
	ErrNotConfigured = errors.New("workflows: service not configured")
	// ErrContinuedAsNew is what ContinueAsNew returns (errors.Is): the
	// workflow returns it, and its run ends to continue as a new run.
	ErrContinuedAsNew = errors.New("workflows: continued as new")
)

// TaskError is a step that failed for good (retries exhausted or a
// permanent error). A replayed failure carries the journaled message.
type TaskError struct {
	Name     string
	Seq      int
	Attempts int
	Err      error
}

func (e *TaskError) Error() string {
	return fmt.Sprintf("task %s (#%d) failed after %d attempt(s): %v", e.Name, e.Seq, e.Attempts, e.Err)
}

// Unwrap returns the task's own error.
func (e *TaskError) Unwrap() error { return e.Err }

// AgentRequest is one turn asked of an agent from a workflow.
type AgentRequest struct {
	// Agent is the agent's ID or a built-in agent's name.
	Agent   string `json:"agent"`
	Message string `json:"message"`
	// RunID, OwnerID and Task are filled in by the executor.
	RunID   string `json:"run_id"`
	OwnerID string `json:"owner_id"`
	Task    string `json:"task"`
}

// AgentReply is an agent's answer and what it cost.
type AgentReply struct {
	Content string   `json:"content"`
	Model   string   `json:"model,omitempty"`
	Usage   lm.Usage `json:"usage"`
}

// AgentCaller runs agent turns for workflows; the runtime implements it on
// the agent grains (the workflows package knows no actors).
type AgentCaller interface {
	CallAgent(ctx context.Context, req AgentRequest) (AgentReply, error)
}

// AgentCallerFunc adapts a function to AgentCaller.
type AgentCallerFunc func(ctx context.Context, req AgentRequest) (AgentReply, error)

// CallAgent implements AgentCaller.
func (f AgentCallerFunc) CallAgent(ctx context.Context, req AgentRequest) (AgentReply, error) {
	return f(ctx, req)
}

// ChildRequest asks for a sub-workflow run. RunID is deterministic
// (ChildRunID), so a resumed parent awaits the same child.
type ChildRequest struct {
	ParentRunID string
	RunID       string
	Workflow    string
	OwnerID     string
	Params      json.RawMessage
}

// ChildRunner starts a child run (idempotently, by RunID) and waits for its
// result; a child that fails returns its error.
type ChildRunner interface {
	RunChild(ctx context.Context, req ChildRequest) (json.RawMessage, error)
}

// Event is a state change of a run (Seq 0) or of one of its steps. The
// runtime stores and streams them (SSE, WebSocket).
type Event struct {
	RunID string `json:"run_id"`
	// Seq is the step's sequence number; 0 for the run itself.
	Seq     int      `json:"seq,omitempty"`
	Name    string   `json:"name,omitempty"`
	Kind    Kind     `json:"kind,omitempty"`
	Status  string   `json:"status"`
	Attempt int      `json:"attempt,omitempty"`
	Error   string   `json:"error,omitempty"`
	Usage   lm.Usage `json:"usage,omitzero"`
	// ContinuedAs is the run that continues this one (a run's own
	// completed event, after ContinueAsNew).
	ContinuedAs string `json:"continued_as,omitempty"`
	// WakeAt is a sleep's wake-up time; RetryIn the wait before a retry.
	WakeAt  time.Time     `json:"wake_at,omitzero"`
	RetryIn time.Duration `json:"retry_in,omitempty"`
	Time    time.Time     `json:"time"`
}

// Observer receives events, from several goroutines at once; it must not
// block for long.
type Observer interface{ Observe(Event) }

// AttemptRecorder is an Observer that must record a step's "running" event
// durably before the attempt starts, so that attempts are counted across
// crashes (the next activation passes them as RunRequest.PriorAttempts). A
// failure interrupts the run, like a journal failure.
type AttemptRecorder interface {
	RecordAttempt(ctx context.Context, e Event) error
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(Event)

// Observe implements Observer.
func (f ObserverFunc) Observe(e Event) { f(e) }

// Services are what the executor's steps use. Journal is required; the
// others are needed only by the steps that use them.
type Services struct {
	Journal  Journal
	Agents   AgentCaller
	Model    lm.LM
	Children ChildRunner
	Cache    Cache
	Observer Observer
	// Jitter returns a uniform value in [0,1) for retry jitter (default
	// math/rand/v2).
	Jitter func() float64
	Logger *slog.Logger
	// Tracing records a span for each execution of a run and one for each
	// attempt of a step, children of the execution's; nil turns tracing off.
	Tracing trace.TracerProvider
}

// Limits bound one run. Zero fields take the defaults.
type Limits struct {
	// MaxParallel bounds the steps of one run executing at once (8).
	MaxParallel int
	// MaxTasks bounds the steps of one run, replayed ones included (1000).
	MaxTasks int
	// MaxResultBytes bounds a step's and a run's JSON result (1 MiB).
	MaxResultBytes int
	// SuspendSleepsOver: a durable sleep with more left than this ends the
	// execution (paused with Outcome.WakeAt) instead of holding a
	// goroutine; 0 never suspends.
	SuspendSleepsOver time.Duration
}

// Executor runs workflow functions against a journal. It holds no per-run
// state: Run may be called for many runs at once.
type Executor struct {
	reg *Registry
	svc Services
	lim Limits
	// tracer is nil when tracing is off.
	tracer trace.Tracer
}

// NewExecutor returns an executor of reg's workflows.
func NewExecutor(reg *Registry, svc Services, lim Limits) (*Executor, error) {
	if reg == nil || svc.Journal == nil {
		return nil, fmt.Errorf("%w: a registry and a journal are required", ErrNotConfigured)
	}
	if svc.Jitter == nil {
		svc.Jitter = rand.Float64
	}
	if svc.Logger == nil {
		svc.Logger = slog.New(slog.DiscardHandler)
	}
	if svc.Observer == nil {
		svc.Observer = ObserverFunc(func(Event) {})
	}
	if lim.MaxParallel <= 0 {
		lim.MaxParallel = 8
	}
	if lim.MaxTasks <= 0 {
		lim.MaxTasks = 1000
	}
	if lim.MaxResultBytes <= 0 {
		lim.MaxResultBytes = 1 << 20
	}
	e := &Executor{reg: reg, svc: svc, lim: lim}
	if svc.Tracing != nil {
		e.tracer = svc.Tracing.Tracer("github.com/kowai/kowai/workflows")
	}
	return e, nil
}

// Registry returns the executor's registry.
func (e *Executor) Registry() *Registry { return e.reg }

// RunRequest is one execution (first or resumed) of a run.
type RunRequest struct {
	RunID    string
	Workflow string
	OwnerID  string
	// Params are the run's validated parameters.
	Params json.RawMessage
	// PriorAttempts maps a step's Seq to the attempts an earlier
	// activation started without journaling a result (it crashed), so the
	// count goes on and the retry policy sees them.
	PriorAttempts map[int]int
	// Fresh says the run was just created, so its journal is empty and is
	// not read.
	Fresh bool
}

// Waiting describes a run paused for human input.
type Waiting struct {
	Seq  int    `json:"seq"`
	Name string `json:"name"`
	// Schema is the JSON schema the input must follow.
	Schema json.RawMessage `json:"schema"`
}

// Outcome is where one execution left the run.
type Outcome struct {
	// Status is completed, failed, cancelled or paused; empty when
	// Interrupted.
	Status string
	Result json.RawMessage
	// Err is the failure (failed), the cancellation cause (cancelled), or
	// wraps ErrInterrupted.
	Err error
	// Waiting is set when paused for input; WakeAt when paused by a sleep.
	Waiting *Waiting
	WakeAt  time.Time
	// Usage sums the model spend of the steps executed (not replayed).
	Usage lm.Usage
	// ContinueWith is set when the workflow continued as new
	// (ContinueAsNew): the validated parameters of the run that continues
	// this one (ContinuedRunID), which the runtime starts. Status is
	// completed and Result empty.
	ContinueWith json.RawMessage
}

// Interrupted reports whether the execution reached no state (see
// ErrInterrupted).
func (o Outcome) Interrupted() bool { return errors.Is(o.Err, ErrInterrupted) }

// Run executes req's workflow from the top, replaying journaled steps,
// until it completes, fails, pauses or ctx ends. Cancelling ctx cancels
// every step in flight; the Outcome is then cancelled with
// context.Cause(ctx). Run returns only after every step goroutine ended.
func (e *Executor) Run(ctx context.Context, req RunRequest) Outcome {
	if e.tracer == nil {
		return e.run(ctx, req)
	}
	ctx, span := e.tracer.Start(ctx, "workflow.run "+req.Workflow, trace.WithAttributes(
		attribute.String("kowai.workflow.name", req.Workflow), attribute.String("kowai.workflow.run_id", req.RunID)))
	defer span.End()
	out := e.run(ctx, req)
	span.SetAttributes(attribute.String("kowai.workflow.status", out.Status))
	if out.Status == StatusFailed || out.Interrupted() {
		span.SetStatus(codes.Error, fmt.Sprint(out.Err))
	}
	return out
}

// run is Run without its span.
func (e *Executor) run(ctx context.Context, req RunRequest) Outcome {
	def, err := e.reg.Lookup(req.Workflow)
	if err != nil {
		return Outcome{Status: StatusFailed, Err: err}
	}
	var entries []Entry
	if !req.Fresh {
		entries, err = e.svc.Journal.Load(ctx, req.RunID)
		if err != nil {
			return Outcome{Err: fmt.Errorf("%w: load the journal: %w", ErrInterrupted, err)}
		}
	}
	parent := ctx
	if def.Timeout > 0 {
		var cancel context.CancelFunc
		parent, cancel = context.WithTimeoutCause(ctx, def.Timeout, ErrWorkflowTimeout)
		defer cancel()
	}
	rctx, stop := context.WithCancelCause(parent)
	defer stop(nil)
	r := &run{e: e, req: req, ctx: rctx, stop: stop, entries: make(map[int]Entry, len(entries)),
		sem: make(chan struct{}, e.lim.MaxParallel)}
	for _, en := range entries {
		r.entries[en.Seq] = en
	}
	r.observe(Event{Status: StatusRunning})
	result, fnErr := r.call(def)
	stop(errReturned) // steps still in flight no longer matter
	r.wg.Wait()

	r.mu.Lock()
	defer r.mu.Unlock()
	out := Outcome{Usage: r.usage}
	switch {
	case r.fatal != nil:
		out.Err = r.fatal
		if !errors.Is(r.fatal, ErrInterrupted) {
			out.Status = StatusFailed
		}
	case errors.Is(context.Cause(parent), ErrWorkflowTimeout):
		out.Status, out.Err = StatusFailed, ErrWorkflowTimeout
	case parent.Err() != nil:
		out.Status, out.Err = StatusCancelled, context.Cause(parent)
	case r.waiting != nil || !r.wakeAt.IsZero():
		out.Status, out.Waiting, out.WakeAt = StatusPaused, r.waiting, r.wakeAt
	case errors.Is(fnErr, ErrContinuedAsNew):
		var cont *continueError
		if !errors.As(fnErr, &cont) {
			out.Status, out.Err = StatusFailed, fnErr
			break
		}
		params, err := def.ValidateParams(cont.params)
		if err != nil {
			out.Status, out.Err = StatusFailed, fmt.Errorf("continue as new: %w", err)
			break
		}
		out.Status, out.ContinueWith = StatusCompleted, params
	case fnErr != nil:
		out.Status, out.Err = StatusFailed, fnErr
	case len(result) > e.lim.MaxResultBytes:
		out.Status, out.Err = StatusFailed, fmt.Errorf("%w: %d bytes, at most %d", ErrResultTooLarge, len(result), e.lim.MaxResultBytes)
	default:
		out.Status, out.Result = StatusCompleted, result
	}
	return out
}

// errReturned stops the steps still in flight when the workflow returns.
var errReturned = errors.New("workflows: the workflow returned")

// call runs the workflow function, turning a panic into a failure.
func (r *run) call(def *Definition) (out json.RawMessage, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("workflow %s panicked: %v", def.Name, p)
		}
	}()
	return def.run(&Context{r: r}, r.req.Params)
}

// SupplyInput validates input against the schema the paused run waits
// with and journals it, so that the next Run continues past the wait. A
// second input for the same wait is ErrDuplicateEntry.
func (e *Executor) SupplyInput(ctx context.Context, runID string, w Waiting, input json.RawMessage) error {
	var schema map[string]any
	if err := json.Unmarshal(w.Schema, &schema); err != nil {
		return fmt.Errorf("the waiting schema of run %s: %w", runID, err)
	}
	clean, err := validateDoc("input", schema, input)
	if err != nil {
		return err
	}
	now := time.Now()
	if err := e.svc.Journal.Append(ctx, Entry{RunID: runID, Seq: w.Seq, Name: w.Name, Kind: KindInput,
		Status: StatusCompleted, Output: clean, Attempts: 1, StartedAt: now, FinishedAt: now}); err != nil {
		return fmt.Errorf("journal the input of run %s: %w", runID, err)
	}
	return nil
}

// ChildRunID is the run ID of the sub-workflow started at step seq of run
// parent: a UUID (version 8) derived from both, stable across replays.
func ChildRunID(parent string, seq int) string {
	h := sha256.Sum256(fmt.Appendf(nil, "%s/%d", parent, seq))
	h[6] = h[6]&0x0f | 0x80
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// ContinuedRunID is the run ID of the run that continues run (continue-as-new):
// a UUID (version 8) derived from it, so a continuation recorded twice is one run.
func ContinuedRunID(run string) string { return ChildRunID(run+"/continued", 0) }

// run is the state of one execution.
type run struct {
	e    *Executor
	req  RunRequest
	ctx  context.Context
	stop context.CancelCauseFunc
	sem  chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	entries map[int]Entry
	next    int
	fatal   error
	waiting *Waiting
	wakeAt  time.Time
	usage   lm.Usage
}

func (r *run) observe(ev Event) {
	ev.RunID = r.req.RunID
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	r.e.svc.Observer.Observe(ev)
}

// failLocked records the run's fatal error (first wins) and stops its steps.
func (r *run) failLocked(err error) error {
	if r.fatal == nil {
		r.fatal = err
		r.stop(err)
	}
	return err
}

// claim assigns the next sequence number to a step and returns its
// journaled entry when the step already ran.
func (r *run) claim(name string, kind Kind) (int, *Entry, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.fatal != nil:
		return 0, nil, r.fatal
	case r.waiting != nil || !r.wakeAt.IsZero():
		return 0, nil, ErrSuspended
	case r.ctx.Err() != nil:
		return 0, nil, context.Cause(r.ctx)
	}
	r.next++
	seq := r.next
	if seq > r.e.lim.MaxTasks {
		return 0, nil, r.failLocked(fmt.Errorf("%w: more than %d", ErrTooManyTasks, r.e.lim.MaxTasks))
	}
	en, ok := r.entries[seq]
	if !ok {
		return seq, nil, nil
	}
	if en.Name != name || en.Kind != kind {
		return 0, nil, r.failLocked(fmt.Errorf("%w: step #%d is %s %q in the journal but %s %q now",
			ErrNondeterministic, seq, en.Kind, en.Name, kind, name))
	}
	return seq, &en, nil
}

// suspend pauses the run: for input (w) or until wake.
func (r *run) suspend(w *Waiting, wake time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.waiting == nil && r.wakeAt.IsZero() {
		r.waiting, r.wakeAt = w, wake
	}
}

// startAttempt announces an attempt. It waits for the record to be durable
// when the observer records attempts and the step needs it: agent, program
// and child steps spend money or start work elsewhere, so every attempt that
// may have reached the model is counted even across a crash; a plain task
// asks for it with WithDurableAttempts. Other attempts are announced like any
// event and become durable with the run's next commit, which keeps a task
// at about one commit (its journal row).
func (r *run) startAttempt(ev Event, durable bool) error {
	rec, ok := r.e.svc.Observer.(AttemptRecorder)
	if !ok || !durable {
		r.observe(ev)
		return nil
	}
	ev.RunID = r.req.RunID
	ev.Time = time.Now()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), 30*time.Second)
	defer cancel()
	if err := rec.RecordAttempt(ctx, ev); err != nil {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.failLocked(fmt.Errorf("%w: record attempt %d of step #%d %s: %w", ErrInterrupted, ev.Attempt, ev.Seq, ev.Name, err))
	}
	return nil
}

// append journals en; a duplicate means another activation owns the run.
func (r *run) append(en Entry) error {
	return r.journal(en, false)
}

// appendDeferred journals en like append, but with a DeferredJournal it only
// defers en: the next flush makes it durable (see DeferredJournal).
func (r *run) appendDeferred(en Entry) error {
	return r.journal(en, true)
}

func (r *run) journal(en Entry, deferred bool) error {
	en.RunID = r.req.RunID
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), 30*time.Second)
	defer cancel()
	var err error
	if dj, ok := r.e.svc.Journal.(DeferredJournal); ok && deferred {
		err = dj.Defer(en)
	} else {
		err = r.e.svc.Journal.Append(ctx, en)
	}
	if err == nil {
		r.mu.Lock()
		r.entries[en.Seq] = en
		r.usage = r.usage.Add(en.Usage)
		r.mu.Unlock()
		return nil
	}
	err = fmt.Errorf("%w: journal step #%d %s: %w", ErrInterrupted, en.Seq, en.Name, err)
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failLocked(err)
}

// flush makes the results deferred so far durable (DeferredJournal); a failure
// interrupts the run like a failed append.
func (r *run) flush() error {
	dj, ok := r.e.svc.Journal.(DeferredJournal)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), 30*time.Second)
	defer cancel()
	if err := dj.Flush(ctx); err != nil {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.failLocked(fmt.Errorf("%w: journal deferred results: %w", ErrInterrupted, err))
	}
	return nil
}

// stepFunc is one attempt of a step.
type stepFunc func(ctx context.Context, seq int) (json.RawMessage, lm.Usage, error)

// future is a step's eventual result as JSON.
type future struct {
	done chan struct{}
	out  json.RawMessage
	err  error
	// r is the run of a step that executes, nil for a resolved one.
	r *run
}

// wait waits for the step. A workflow that would block on it first makes the
// results deferred so far durable: no result waits undurable for long.
func (f *future) wait() {
	select {
	case <-f.done:
		return
	default:
	}
	if f.r != nil {
		_ = f.r.flush() // a failure stops the run, which ends the step
	}
	<-f.done
}

func resolved(out json.RawMessage, err error) *future {
	f := &future{done: make(chan struct{}), out: out, err: err}
	close(f.done)
	return f
}

// replayed is the future of a step the journal has (prior), or nil.
func replayed(name string, seq int, prior *Entry) *future {
	if prior == nil {
		return nil
	}
	if prior.Status == StatusFailed {
		return resolved(nil, &TaskError{Name: name, Seq: seq, Attempts: prior.Attempts, Err: errors.New(prior.Error)})
	}
	return resolved(prior.Output, nil)
}

// do claims a step and, unless the journal has it, executes it on the calling
// goroutine (bounded by MaxParallel like the others), for a caller that waits
// for it at once (Task): a goroutine of its own, with the stack it grew and the
// switches to and from it, cost more than the rest of a plain task's execution.
func (r *run) do(name string, kind Kind, cfg taskConfig, fn stepFunc) *future {
	seq, prior, err := r.claim(name, kind)
	if err != nil {
		return resolved(nil, err)
	}
	if f := replayed(name, seq, prior); f != nil {
		return f
	}
	return resolved(r.execute(seq, name, kind, cfg, fn))
}

// start claims a step and, unless the journal has it, executes it on its
// own goroutine (bounded by MaxParallel).
func (r *run) start(name string, kind Kind, cfg taskConfig, fn stepFunc) *future {
	seq, prior, err := r.claim(name, kind)
	if err != nil {
		return resolved(nil, err)
	}
	if f := replayed(name, seq, prior); f != nil {
		return f
	}
	f := &future{done: make(chan struct{}), r: r}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(f.done)
		f.out, f.err = r.execute(seq, name, kind, cfg, fn)
	}()
	return f
}

// execute runs a step with its retry policy and journals its result.
func (r *run) execute(seq int, name string, kind Kind, cfg taskConfig, fn stepFunc) (json.RawMessage, error) {
	select {
	case r.sem <- struct{}{}:
		defer func() { <-r.sem }()
	case <-r.ctx.Done():
		return nil, context.Cause(r.ctx)
	}
	cacheKey := ""
	if cfg.cacheInput && r.e.svc.Cache != nil {
		cacheKey = taskCacheKey(name, cfg.cacheKey)
		if out, ok, err := r.e.svc.Cache.Get(r.ctx, cacheKey); err == nil && ok {
			now := time.Now()
			if err := r.appendDeferred(Entry{Seq: seq, Name: name, Kind: kind, Status: StatusCompleted, Output: out,
				CacheHit: true, StartedAt: now, FinishedAt: now}); err != nil {
				return nil, err
			}
			r.observe(Event{Seq: seq, Name: name, Kind: kind, Status: StatusCompleted})
			return out, nil
		}
	}
	started := time.Now()
	prior := r.req.PriorAttempts[seq]
	attempt := prior
	var usage lm.Usage
	for {
		// No attempt starts on a result that is not durable.
		if err := r.flush(); err != nil {
			return nil, err
		}
		attempt++
		durable := kind != KindTask || cfg.durableAttempts
		if err := r.startAttempt(Event{Seq: seq, Name: name, Kind: kind, Status: StatusRunning, Attempt: attempt}, durable); err != nil {
			return nil, err
		}
		actx, cancel := r.ctx, context.CancelFunc(func() {})
		if cfg.timeout > 0 {
			actx, cancel = context.WithTimeout(r.ctx, cfg.timeout)
		}
		out, u, err := r.attempt(actx, seq, name, kind, attempt, fn)
		cancel()
		usage = usage.Add(u)
		if err == nil && len(out) > r.e.lim.MaxResultBytes {
			err = Permanent(fmt.Errorf("%w: %d bytes, at most %d", ErrResultTooLarge, len(out), r.e.lim.MaxResultBytes))
		}
		if err == nil {
			if err := r.appendDeferred(Entry{Seq: seq, Name: name, Kind: kind, Status: StatusCompleted, Output: out,
				Attempts: attempt, Usage: usage, StartedAt: started, FinishedAt: time.Now()}); err != nil {
				return nil, err
			}
			if cacheKey != "" {
				if err := r.e.svc.Cache.Put(r.ctx, cacheKey, out, cfg.cacheTTL); err != nil {
					r.e.svc.Logger.Warn("task cache put failed", "run_id", r.req.RunID, "task", name, "err", err)
				}
			}
			r.observe(Event{Seq: seq, Name: name, Kind: kind, Status: StatusCompleted, Attempt: attempt, Usage: usage})
			return out, nil
		}
		if r.ctx.Err() != nil {
			cause := context.Cause(r.ctx)
			if !errors.Is(cause, errReturned) && !errors.Is(cause, ErrInterrupted) {
				r.observe(Event{Seq: seq, Name: name, Kind: kind, Status: StatusCancelled, Attempt: attempt})
			}
			return nil, cause
		}
		retryable := IsRetryable
		if cfg.retryable != nil {
			retryable = cfg.retryable
		}
		if attempt >= max(cfg.retry.Attempts, prior+1) || !retryable(err) {
			if jerr := r.appendDeferred(Entry{Seq: seq, Name: name, Kind: kind, Status: StatusFailed, Error: err.Error(),
				Attempts: attempt, Usage: usage, StartedAt: started, FinishedAt: time.Now()}); jerr != nil {
				return nil, jerr
			}
			r.observe(Event{Seq: seq, Name: name, Kind: kind, Status: StatusFailed, Attempt: attempt, Error: err.Error(), Usage: usage})
			return nil, &TaskError{Name: name, Seq: seq, Attempts: attempt, Err: err}
		}
		wait := cfg.retry.delay(attempt, r.e.svc.Jitter())
		r.observe(Event{Seq: seq, Name: name, Kind: kind, Status: StatusRetrying, Attempt: attempt, Error: err.Error(), RetryIn: wait})
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-r.ctx.Done():
			t.Stop()
			return nil, context.Cause(r.ctx)
		}
	}
}

// attempt runs one attempt of step seq, inside its span when tracing is on.
func (r *run) attempt(ctx context.Context, seq int, name string, kind Kind, attempt int, fn stepFunc) (json.RawMessage, lm.Usage, error) {
	tr := r.e.tracer
	if tr == nil {
		return protect(ctx, seq, fn)
	}
	ctx, span := tr.Start(ctx, "workflow.task "+name, trace.WithAttributes(
		attribute.String("kowai.workflow.task", name), attribute.String("kowai.workflow.task_kind", string(kind)),
		attribute.Int("kowai.workflow.seq", seq), attribute.Int("kowai.workflow.attempt", attempt),
		attribute.String("kowai.workflow.run_id", r.req.RunID)))
	defer span.End()
	out, u, err := protect(ctx, seq, fn)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "attempt failed")
	}
	return out, u, err
}

// protect runs one attempt, turning a panic into a permanent error.
func protect(ctx context.Context, seq int, fn stepFunc) (out json.RawMessage, u lm.Usage, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = Permanent(fmt.Errorf("task panicked: %v", p))
		}
	}()
	return fn(ctx, seq)
}
