package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/internal/tracing"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/workflows"
)

// runGrain is the workflow run grain: it owns one run's row (its snapshot, fenced by
// version) and executes the run's workflow function on a goroutine of its own, so
// its mailbox stays free for cancels and resumes. An executing run's row names this
// node's process (lease_owner, lease_epoch), whose heartbeat covers it. The
// function's steps are journaled by the executor; the grain records where each
// execution left the run, and a grain that stops with its run still executing hands
// it back to recovery (due now).
type runGrain struct {
	w        *Workflows
	identity string
	self     *actor.PID
	sys      *actor.ActorSystem

	loaded bool
	// fenced: a write of the row lost its compare-and-swap; another activation
	// owns the run.
	fenced bool
	row    persistence.WorkflowRun
	exec   *execution
	timer  *time.Timer
}

// execution is one run of the workflow function in progress.
type execution struct {
	cancel context.CancelCauseFunc
	done   chan struct{}
	// cancelled: a person asked for it (CancelRun), so the outcome is recorded.
	cancelled bool
}

// Internal messages (local only).
type (
	runDone struct {
		exec *execution
		out  workflows.Outcome
		// lastEvent is the seq of the execution's last event written;
		// pending are its events numbered after it but not written yet, which
		// go in the commit that records the outcome.
		lastEvent int64
		pending   []persistence.WorkflowEvent
		// steps are the execution's deferred journal rows not written yet
		// (workflows.DeferredJournal), which go in the same commit.
		steps []persistence.WorkflowStep
	}
	wakeUp struct{}
	// ownerCheck says whether the run's row still names this process, at which
	// version (Workflows.checkOwnership).
	ownerCheck struct {
		owned   bool
		version int64
	}
)

// errShutdown stops an execution whose grain stops (leave, a move): the grain hands
// the run back to recovery, which resumes it.
var errShutdown = errors.New("actors: run grain stopped")

// errRunFenced stops an execution whose grain lost its run to another activation.
var errRunFenced = errors.New("actors: run owned by another activation")

func newRunGrain(w *Workflows, identity string) *runGrain {
	return &runGrain{w: w, identity: identity}
}

// Receive implements actor.Actor.
func (g *runGrain) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		g.self, g.sys = ctx.Self(), ctx.ActorSystem()
		g.w.live.add(g.sys, g.self)
		ctx.SetReceiveTimeout(g.w.deps.IdleTimeout)
	case *protocluster.ClusterInit:
		g.identity = msg.Identity.GetIdentity()
	case *actor.Stopped:
		g.w.live.remove(g.self)
		g.stopTimer()
		if g.exec != nil {
			g.exec.cancel(errShutdown)
			select {
			case <-g.exec.done:
			case <-time.After(releaseWait):
				g.w.log.Warn("run execution still winding down; handing the run back anyway", "run_id", g.identity)
			}
		}
		g.w.executing.Delete(g.identity)
		g.release()
	case *actorpb.StartRun:
		ctx.Respond(g.onStart(ctx, msg))
	case *actorpb.CancelRun:
		ctx.Respond(g.onCancel(ctx, msg))
	case *actorpb.ResumeRun:
		ctx.Respond(g.onResume(ctx, msg))
	case *actorpb.RetryRun:
		ctx.Respond(g.onRetry(ctx, msg))
	case runDone:
		g.onDone(ctx, msg)
	case ownerCheck:
		if g.exec != nil && (!msg.owned || msg.version > g.row.Version) {
			g.w.log.Warn("run taken over by another activation; this one stops", "run_id", g.identity)
			g.exec.cancel(errRunFenced)
			g.loaded, g.fenced = false, true
		}
	case wakeUp:
		g.timer = nil
		if g.exec == nil {
			if e := g.reload(""); e == nil {
				g.progress(ctx, "wake")
			}
		}
	case *actor.ReceiveTimeout:
		if g.exec == nil {
			ctx.Poison(ctx.Self())
		}
	}
}

func (g *runGrain) ack() *actorpb.RunAck {
	return &actorpb.RunAck{RunId: g.identity, Status: g.row.Status}
}

// reload reads the run's row unless an execution is in progress (then the grain's
// copy is the current one); a failure is answered under the correlation ID corr.
func (g *runGrain) reload(corr string) *actorpb.ErrorReply {
	if g.exec != nil && g.loaded {
		return nil
	}
	if g.loaded && (g.row.Status == persistence.StatusCompleted || g.row.Status == persistence.StatusCancelled) {
		// Nothing moves a completed or cancelled run again (only a failed one is
		// retried), so the copy this grain read or wrote is still the row. (An
		// erased account's runs are deleted under it; the grain forgets them
		// when it passivates.)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	defer cancel()
	r, err := g.w.deps.Runs.GetRun(ctx, g.identity)
	if err != nil {
		return errorReply(codeOf(err), corr, "load run %s: %v", g.identity, err)
	}
	g.row, g.loaded = r, true
	return nil
}

func (g *runGrain) onStart(ctx actor.Context, m *actorpb.StartRun) any {
	corr := m.GetCorrelationId()
	if !g.loaded && m.GetWorkflow() != "" {
		created, e := g.createRunning(ctx, m)
		if e != nil {
			return e
		}
		if created {
			return g.ack()
		}
	}
	if e := g.reload(corr); e != nil {
		if e.GetCode() != actorpb.Code_CODE_NOT_FOUND || m.GetWorkflow() == "" {
			return e
		}
		if e := g.create(m); e != nil {
			return e
		}
	}
	g.progress(ctx, corr)
	return g.ack()
}

// create stores a new run from a trigger. Two triggers of one ID race on the
// primary key; the loser reads the winner's row.
func (g *runGrain) create(m *actorpb.StartRun) *actorpb.ErrorReply {
	corr := m.GetCorrelationId()
	def, err := g.w.deps.Registry.Lookup(m.GetWorkflow())
	if err != nil {
		return errorReply(actorpb.Code_CODE_INVALID_ARGUMENT, corr, "%v", err)
	}
	params, err := def.ValidateParams(json.RawMessage(m.GetParametersJson()))
	if err != nil {
		return errorReply(actorpb.Code_CODE_INVALID_ARGUMENT, corr, "%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	defer cancel()
	now := time.Now()
	r, err := g.w.deps.Runs.CreateRun(ctx, persistence.WorkflowRun{ID: g.identity, Name: def.Name, OwnerID: m.GetOwnerId(),
		ParentID: m.GetParentId(), Parameters: params, CreatedAt: now, DueAt: now.Add(g.w.deps.ClaimLease), LeaseOwner: g.w.deps.NodeID,
		WebhookURL: m.GetWebhookUrl()})
	if errors.Is(err, persistence.ErrDuplicate) {
		return g.reload(corr)
	}
	if err != nil {
		return errorReply(codeOf(err), corr, "create run %s: %v", g.identity, err)
	}
	g.row, g.loaded = r, true
	return nil
}

// createRunning stores a new run from a trigger already running under this node's
// lease and executes it without reading anything back: its journal and events are
// empty. The execution starts while the row commits; its first journal write
// carries the row when the writer has not taken it yet (runCreate), and nothing of
// the execution is written before the row is durable, which the trigger's answer
// waits for. It reports false, with nothing done, when the ID is taken (the caller
// reads the run instead) or when the workflow has a concurrency cap, whose check
// needs the run pending first.
func (g *runGrain) createRunning(ctx actor.Context, m *actorpb.StartRun) (bool, *actorpb.ErrorReply) {
	corr := m.GetCorrelationId()
	def, err := g.w.deps.Registry.Lookup(m.GetWorkflow())
	if err != nil {
		return false, errorReply(actorpb.Code_CODE_INVALID_ARGUMENT, corr, "%v", err)
	}
	if def.MaxConcurrent > 0 || def.MaxPerUser > 0 {
		return false, nil
	}
	params, err := def.ValidateParams(json.RawMessage(m.GetParametersJson()))
	if err != nil {
		return false, errorReply(actorpb.Code_CODE_INVALID_ARGUMENT, corr, "%v", err)
	}
	wctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	defer cancel()
	if err := g.w.ensureNode(wctx); err != nil {
		return false, errorReply(codeOf(err), corr, "node heartbeat: %v", err)
	}
	now := time.Now()
	r := persistence.WorkflowRun{ID: g.identity, Name: def.Name, OwnerID: m.GetOwnerId(), ParentID: m.GetParentId(),
		Status: persistence.StatusRunning, Parameters: params, Version: 1, CreatedAt: now, UpdatedAt: now, StartedAt: now,
		LeaseOwner: g.w.deps.NodeID, LeaseEpoch: g.w.epoch, WebhookURL: m.GetWebhookUrl()}
	create := newRunCreate(g.w.deps.Writer, persistence.RunInsert(r), g.w.deps.WriteLinger)
	g.row, g.loaded = r, true
	g.execute(ctx, true, create)
	<-create.done
	err = create.err
	if err == nil {
		if g.exec != nil {
			g.w.executing.Store(g.identity, executingRun{grain: liveGrain{pid: g.self, sys: g.sys}, durable: time.Now()})
		}
		return true, nil
	}
	// No row, so no run here: the execution stops before it wrote anything (its
	// pump writes nothing until the row is durable).
	g.abandon()
	g.row, g.loaded = persistence.WorkflowRun{}, false
	if errors.Is(err, persistence.ErrDuplicate) {
		return false, nil
	}
	return false, errorReply(codeOf(err), corr, "create run %s: %v", g.identity, err)
}

// abandon stops the grain's execution, whose run row was never written, and waits
// (boundedly) for it to end; its outcome is not recorded.
func (g *runGrain) abandon() {
	e := g.exec
	if e == nil {
		return
	}
	e.cancel(errRunFenced)
	select {
	case <-e.done:
	case <-time.After(releaseWait):
		g.w.log.Warn("abandoned run execution still winding down", "run_id", g.identity)
	}
	g.exec = nil
	g.w.executing.Delete(g.identity)
}

// progress starts, arms or leaves the run as its state asks.
func (g *runGrain) progress(ctx actor.Context, corr string) {
	if g.exec != nil {
		return
	}
	switch g.row.Status {
	case persistence.StatusPending, persistence.StatusRunning, persistence.StatusRetrying:
		g.start(ctx, corr)
	case persistence.StatusPaused:
		if len(g.row.Waiting) > 0 {
			return
		}
		if wait := time.Until(g.row.DueAt); wait > 0 {
			g.arm(wait)
			return
		}
		g.start(ctx, corr)
	}
}

func (g *runGrain) arm(wait time.Duration) {
	g.stopTimer()
	sys, self := g.sys, g.self
	g.timer = time.AfterFunc(wait, func() { sys.Root.Send(self, wakeUp{}) })
}

func (g *runGrain) stopTimer() {
	if g.timer != nil {
		g.timer.Stop()
		g.timer = nil
	}
}

// save writes next over the grain's row with a version CAS through the writer, with
// the execution's events not written yet (pending, numbered after lastEvent), the
// run's own event ev (if any) and the further writes extra in the same transaction,
// ev numbered after pending (after the event log's last seq, read, when lastEvent
// is negative). A conflict means another activation owns the run: this one stops.
func (g *runGrain) save(ctx actor.Context, next persistence.WorkflowRun, ev *workflows.Event, lastEvent int64,
	pending []persistence.WorkflowEvent, steps []persistence.WorkflowStep, extra ...persistence.Op) bool {
	next.Version = g.row.Version + 1
	next.UpdatedAt = time.Now()
	wctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	defer cancel()
	ops := persistence.Ops{persistence.SaveRunChangesOp(g.row, next)}
	events := pending
	if ev != nil {
		var err error
		if lastEvent < 0 {
			lastEvent, err = g.w.deps.Runs.LastEventSeq(wctx, g.identity)
		}
		data, merr := ev.AppendJSON(make([]byte, 0, eventJSONSize))
		if err = errors.Join(err, merr); err != nil {
			g.w.log.Warn("run event not built", "run_id", g.identity, "error", err)
		} else {
			seq := lastEvent
			for _, e := range pending {
				seq = max(seq, e.Seq)
			}
			events = append(events, persistence.WorkflowEvent{RunID: g.identity, Seq: seq + 1,
				Status: ev.Status, Data: data, CreatedAt: ev.Time})
		}
	}
	if len(steps) > 0 {
		// The execution's last results commit with its outcome, the events of
		// this commit inside their rows: a task that ends a workflow costs no
		// commit of its own, and the run's final event no row.
		events = foldStepEvents(steps, events)
		ops = append(ops, persistence.StepInsert(steps...))
	}
	if len(events) > 0 {
		ops = append(ops, persistence.EventInsert(events...))
	}
	if next.WebhookURL != "" && next.ContinuedAs == "" && workflows.Finished(next.Status) && !workflows.Finished(g.row.Status) {
		// The notification is opened in the commit that finishes the run: a
		// finished run always has it, whichever node dies when. A run that
		// continued as new hands its webhook to the run that continues it.
		ops = append(ops, persistence.NotifyOp(g.identity, next.WebhookURL, next.UpdatedAt))
	}
	ops = append(ops, extra...)
	if err := g.w.deps.Writer.Submit(wctx, ops); err != nil {
		g.w.log.Warn("run state not saved; the grain stops", "run_id", g.identity, "error", err)
		if g.exec != nil {
			g.exec.cancel(errRunFenced)
		}
		g.loaded, g.fenced = false, true
		ctx.Poison(ctx.Self())
		return false
	}
	finished := workflows.Finished(next.Status) && !workflows.Finished(g.row.Status)
	g.row = next
	if finished {
		g.w.finished(g.identity, next.Status)
	}
	return true
}

// capWait is how long a run held back by a concurrency cap stays pending before
// recovery tries it again.
const capWait = time.Second

// overCap reports whether starting the pending run would exceed its workflow's
// concurrency caps (total, per owner). The count is read, not reserved, so nodes
// starting runs at the same moment may exceed a cap briefly.
func (g *runGrain) overCap() bool {
	if g.row.Status != persistence.StatusPending {
		return false
	}
	def, err := g.w.deps.Registry.Lookup(g.row.Name)
	if err != nil || def.MaxConcurrent == 0 && def.MaxPerUser == 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	defer cancel()
	caps := []struct {
		limit int
		owner string
	}{{def.MaxConcurrent, ""}}
	if g.row.OwnerID != "" {
		caps = append(caps, struct {
			limit int
			owner string
		}{def.MaxPerUser, g.row.OwnerID})
	}
	for _, c := range caps {
		if c.limit == 0 {
			continue
		}
		n, err := g.w.deps.Runs.CountActive(ctx, g.row.Name, c.owner)
		if err != nil {
			g.w.log.Warn("active runs not counted; the run waits", "run_id", g.identity, "error", err)
			return true
		}
		if n >= c.limit {
			return true
		}
	}
	return false
}

// start records the run as running on this node (its heartbeat covers it) and
// executes it. A pending run over its workflow's concurrency cap stays pending, due
// again soon.
func (g *runGrain) start(ctx actor.Context, corr string) {
	g.stopTimer()
	hctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	err := g.w.ensureNode(hctx)
	cancel()
	if err != nil {
		// Recovery or the next request tries again.
		g.w.log.Warn("node heartbeat not written; the run waits", "run_id", g.identity, "error", err)
		return
	}
	now := time.Now()
	if g.overCap() {
		next := g.row
		next.DueAt = now.Add(capWait)
		g.save(ctx, next, nil, 0, nil, nil)
		return
	}
	next := g.row
	next.Status, next.Waiting, next.Error = persistence.StatusRunning, nil, ""
	next.DueAt, next.LeaseOwner, next.LeaseEpoch = time.Time{}, g.w.deps.NodeID, g.w.epoch
	if next.StartedAt.IsZero() {
		next.StartedAt = now
	}
	if !g.save(ctx, next, nil, 0, nil, nil) {
		return
	}
	g.execute(ctx, false, nil)
}

// execute runs the workflow function of the run, which the row says is running
// here, on a goroutine of its own. A fresh run (just created) has no journal,
// attempts or events to read first; create, when not nil, is its row's write in
// progress, which the execution's first write waits for or carries.
func (g *runGrain) execute(ctx actor.Context, fresh bool, create *runCreate) {
	var (
		prior map[int]int
		last  int64
	)
	if !fresh {
		var err error
		if prior, err = g.w.deps.Runs.Attempts(context.Background(), g.identity); err != nil {
			g.w.log.Warn("attempts of run not read; counting from the journal", "run_id", g.identity, "error", err)
		}
		if last, err = g.w.deps.Runs.LastEventSeq(context.Background(), g.identity); err != nil {
			g.w.log.Warn("events of run not read; the grain stops", "run_id", g.identity, "error", err)
			ctx.Poison(ctx.Self())
			return
		}
	}
	events := newEventPump(g.w, g.identity, g.row.Version, last, create)
	exec, err := workflows.NewExecutor(g.w.deps.Registry, g.services(events), g.w.deps.Limits)
	if err != nil {
		g.w.log.Error("workflow executor not built; the grain stops", "run_id", g.identity, "error", err)
		events.close()
		ctx.Poison(ctx.Self())
		return
	}
	// The execution joins the trace of the request that started it, if any.
	ectx, cancel := context.WithCancelCause(tracing.Extract(context.Background(), ctx.MessageHeader()))
	e := &execution{cancel: cancel, done: make(chan struct{})}
	g.exec = e
	// A fresh run's row is durable once create settles (createRunning says so).
	durable := time.Now()
	if create != nil {
		durable = time.Time{}
	}
	g.w.executing.Store(g.identity, executingRun{grain: liveGrain{pid: g.self, sys: g.sys}, durable: durable})
	g.w.metrics.started.WithLabelValues(g.row.Name).Inc()
	req := workflows.RunRequest{RunID: g.identity, Workflow: g.row.Name, OwnerID: g.row.OwnerID, Params: g.row.Parameters,
		PriorAttempts: prior, Fresh: fresh}
	sys, self := g.sys, g.self
	g.w.stacks.Go(func() {
		out := exec.Run(ectx, req)
		last, pending, steps := events.close()
		close(e.done)
		sys.Root.Send(self, runDone{exec: e, out: out, lastEvent: last, pending: pending, steps: steps})
	})
}

// releaseWait bounds how long a stopping grain waits for its execution to wind
// down before it hands the run back.
const releaseWait = 5 * time.Second

// release hands an executing run whose grain stops back to recovery: the row,
// still running on this node, becomes due now (a version CAS, so a run another
// activation took over is left alone), and any node claims and resumes it.
func (g *runGrain) release() {
	r := g.row
	if !g.loaded || g.fenced || (r.Status != persistence.StatusRunning && r.Status != persistence.StatusRetrying) ||
		!r.DueAt.IsZero() || r.LeaseOwner != g.w.deps.NodeID || r.LeaseEpoch != g.w.epoch {
		return
	}
	next := r
	next.Version, next.DueAt, next.UpdatedAt = r.Version+1, time.Now(), time.Now()
	wctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	defer cancel()
	if err := g.w.deps.Writer.Submit(wctx, persistence.SaveRunOp(next, r.Version)); err != nil {
		g.w.log.Warn("stopping run not handed back; it is taken over when this node's heartbeat lapses", "run_id", g.identity, "error", err)
		return
	}
	g.row = next
}

func (g *runGrain) services(events *eventPump) workflows.Services {
	agents := g.w.deps.Agents
	if agents == nil {
		agents = grainAgents{w: g.w}
	}
	return workflows.Services{Journal: pumpJournal{stepJournal: stepJournal{w: g.w}, pump: events}, Agents: agents, Model: g.w.deps.Model,
		Children: grainChildren{w: g.w}, Cache: g.w.deps.Cache, Observer: events, Logger: g.w.log,
		Tracing: g.w.deps.Tracing}
}

// onDone records where the execution left the run.
func (g *runGrain) onDone(ctx actor.Context, m runDone) {
	if m.exec != g.exec {
		return
	}
	g.exec = nil
	g.w.executing.Delete(g.identity)
	out := m.out
	if out.Interrupted() || errors.Is(out.Err, errShutdown) || errors.Is(out.Err, errRunFenced) ||
		(out.Status == workflows.StatusCancelled && !m.exec.cancelled) {
		// Nothing to record: the grain stops and hands the run back (Stopped),
		// unless another activation owns it; recovery resumes it.
		if out.Interrupted() {
			g.w.log.Warn("run execution interrupted", "run_id", g.identity, "error", out.Err)
		}
		if len(m.steps) > 0 {
			// Results this activation took but never made durable: the run may
			// belong to another activation now, so they are dropped and those
			// steps run again on resume.
			g.w.log.Info("undurable step results dropped with the execution", "run_id", g.identity, "steps", len(m.steps))
		}
		if errors.Is(out.Err, errRunFenced) {
			// Another activation owns the run: this one leaves it alone (no
			// events, no hand-back) and stops, as a fenced session does.
			g.loaded, g.fenced = false, true
		} else {
			g.writeEvents(m.pending)
		}
		ctx.Poison(ctx.Self())
		return
	}
	now := time.Now()
	next := g.row
	next.Status, next.Result, next.Error, next.Waiting, next.DueAt = out.Status, nil, "", nil, time.Time{}
	if spend := addSpend(g.row.Spend, out.Usage); spend != nil {
		next.Spend = spend
	}
	switch out.Status {
	case workflows.StatusCompleted:
		next.Result, next.FinishedAt = out.Result, now
	case workflows.StatusFailed, workflows.StatusCancelled:
		if out.Err != nil {
			next.Error = out.Err.Error()
		}
		next.FinishedAt = now
	case workflows.StatusPaused:
		if out.Waiting != nil {
			w, err := json.Marshal(out.Waiting)
			if err != nil {
				g.w.log.Error("waiting input not encoded", "run_id", g.identity, "error", err)
			}
			next.Waiting = w
		} else {
			next.DueAt = out.WakeAt
		}
	}
	// The run's own state change closes its event log for this execution, in the
	// same commit as the state: a reader that sees the state sees the event.
	ev := workflows.Event{RunID: g.identity, Status: out.Status, Time: now, WakeAt: out.WakeAt}
	if out.Err != nil {
		ev.Error = out.Err.Error()
	}
	var extra []persistence.Op
	if out.ContinueWith != nil {
		// Continue-as-new: the run that continues this one is created in the
		// commit that completes this one (both or neither), pending and due
		// after a claim's wait in case the poke below is lost.
		cont := persistence.WorkflowRun{ID: workflows.ContinuedRunID(g.identity), Name: g.row.Name, OwnerID: g.row.OwnerID,
			ParentID: g.row.ParentID, Status: persistence.StatusPending, Parameters: out.ContinueWith, Version: 1,
			CreatedAt: now, DueAt: now.Add(g.w.deps.ClaimLease), LeaseOwner: g.w.deps.NodeID, WebhookURL: g.row.WebhookURL,
			ContinuedFrom: g.identity}
		next.ContinuedAs, ev.ContinuedAs = cont.ID, cont.ID
		extra = append(extra, persistence.RunInsert(cont))
	}
	if !g.save(ctx, next, &ev, m.lastEvent, m.pending, m.steps, extra...) {
		return
	}
	g.w.metrics.finished.WithLabelValues(g.row.Name, out.Status).Inc()
	if next.ContinuedAs != "" {
		g.poke(next.ContinuedAs)
	}
	if out.Status == workflows.StatusPaused && out.Waiting == nil {
		g.arm(time.Until(out.WakeAt))
	}
}

// poke starts run id's grain, off the mailbox; if it fails, recovery claims the
// run when it is due.
func (g *runGrain) poke(id string) {
	caller := g.w.callerOrNil()
	if caller == nil {
		return
	}
	corr := g.identity
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := actorpb.As[*actorpb.RunAck](caller.Call(ctx, KindWorkflowRun, id, &actorpb.StartRun{CorrelationId: corr, RunId: id})); err != nil {
			g.w.log.Warn("continued run not started; recovery starts it when it is due", "run_id", id, "error", err)
		}
	}()
}

// writeEvents writes events an execution left unwritten when it recorded no
// outcome (they say what happened before it stopped), fenced by the version the
// execution started at (the grain's row's: nothing saves it while an execution
// runs), so that a stale activation's numbers never reach the log.
func (g *runGrain) writeEvents(events []persistence.WorkflowEvent) {
	if len(events) == 0 {
		return
	}
	wctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	defer cancel()
	if err := g.w.deps.Writer.Submit(wctx, persistence.EventInsertAt(g.identity, g.row.Version, events...)); err != nil {
		g.w.log.Warn("run events not written", "run_id", g.identity, "count", len(events), "error", err)
	}
}

func addSpend(prev json.RawMessage, u lm.Usage) json.RawMessage {
	if u == (lm.Usage{}) {
		return nil
	}
	var total lm.Usage
	if len(prev) > 0 {
		_ = json.Unmarshal(prev, &total) // a corrupt total restarts from this execution's spend
	}
	b, err := json.Marshal(total.Add(u))
	if err != nil {
		return nil
	}
	return b
}

func (g *runGrain) onCancel(ctx actor.Context, m *actorpb.CancelRun) any {
	if e := g.reload(m.GetCorrelationId()); e != nil {
		return e
	}
	if workflows.Finished(g.row.Status) {
		return g.ack()
	}
	if g.exec != nil {
		g.exec.cancelled = true
		g.exec.cancel(workflows.ErrCancelled)
		return g.ack()
	}
	g.stopTimer()
	next := g.row
	next.Status, next.Error, next.Waiting, next.DueAt, next.FinishedAt = persistence.StatusCancelled, workflows.ErrCancelled.Error(), nil, time.Time{}, time.Now()
	g.save(ctx, next, &workflows.Event{RunID: g.identity, Status: workflows.StatusCancelled, Time: time.Now()}, -1, nil, nil)
	return g.ack()
}

func (g *runGrain) onResume(ctx actor.Context, m *actorpb.ResumeRun) any {
	corr := m.GetCorrelationId()
	if e := g.reload(corr); e != nil {
		return e
	}
	if g.exec != nil || g.row.Status != persistence.StatusPaused || len(g.row.Waiting) == 0 {
		return errorReply(actorpb.Code_CODE_CONFLICT, corr, "run %s is %s, not waiting for input", g.identity, g.row.Status)
	}
	var w workflows.Waiting
	if err := json.Unmarshal(g.row.Waiting, &w); err != nil {
		return errorReply(actorpb.Code_CODE_INTERNAL, corr, "run %s: waiting input unreadable: %v", g.identity, err)
	}
	// The input is journaled fenced by the version just read: a stale activation
	// cannot supply it.
	exec, err := workflows.NewExecutor(g.w.deps.Registry, workflows.Services{Journal: stepJournal{w: g.w, version: g.row.Version}}, g.w.deps.Limits)
	if err == nil {
		sctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
		err = exec.SupplyInput(sctx, g.identity, w, json.RawMessage(m.GetInputJson()))
		cancel()
	}
	var ve *workflows.ValidationError
	switch {
	case errors.As(err, &ve):
		return errorReply(actorpb.Code_CODE_INVALID_ARGUMENT, corr, "%v", err)
	case errors.Is(err, workflows.ErrDuplicateEntry):
		// Another resume supplied the input first; continue with it.
	case err != nil:
		return errorReply(codeOf(err), corr, "resume run %s: %v", g.identity, err)
	}
	g.start(ctx, corr)
	return g.ack()
}

func (g *runGrain) onRetry(ctx actor.Context, m *actorpb.RetryRun) any {
	corr := m.GetCorrelationId()
	if e := g.reload(corr); e != nil {
		return e
	}
	if g.exec != nil || g.row.Status != persistence.StatusFailed {
		return errorReply(actorpb.Code_CODE_CONFLICT, corr, "run %s is %s; only a failed run can be retried", g.identity, g.row.Status)
	}
	dctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	err := g.w.deps.Runs.DeleteFailedSteps(dctx, g.identity)
	cancel()
	if err != nil {
		return errorReply(codeOf(err), corr, "retry run %s: %v", g.identity, err)
	}
	g.row.FinishedAt, g.row.Result = time.Time{}, nil
	g.start(ctx, corr)
	return g.ack()
}

// pumpJournal is the journal of one execution: its appends go through the
// execution's event pump, so a journal row and the events queued with it take one
// commit (a task costs one write, however many events it has). It is a
// workflows.DeferredJournal: a deferred result waits for the next step's start,
// or for the commit that records the execution's outcome, so that a task that
// ends a workflow shares that commit.
type pumpJournal struct {
	stepJournal
	pump *eventPump
}

var _ workflows.DeferredJournal = pumpJournal{}

// Defer implements workflows.DeferredJournal.
func (j pumpJournal) Defer(e workflows.Entry) error {
	st, err := stepOf(e)
	if err != nil {
		return err
	}
	return j.pump.deferStep(st)
}

// Flush implements workflows.DeferredJournal.
func (j pumpJournal) Flush(ctx context.Context) error { return j.pump.flush(ctx) }

func (j pumpJournal) Append(ctx context.Context, e workflows.Entry) error {
	st, err := stepOf(e)
	if err != nil {
		return err
	}
	return j.pump.appendStep(ctx, st)
}

// eventPump numbers a run's events and writes them in order through the writer, in
// batches, together with the journal rows of the execution. Observe never blocks;
// RecordAttempt and appendStep wait for their commit.
type eventPump struct {
	w     *Workflows
	runID string
	// version is the run's version this execution started at: every write of the
	// pump is fenced by it (persistence.RunFenced), so once another activation
	// has moved the run on, and then read the event log's last seq to number its
	// own events, nothing this one numbered can commit.
	version int64

	mu      sync.Mutex
	seq     int64
	queue   []persistence.WorkflowEvent
	waiters []chan error
	// steps are journal rows to write with the next batch of events.
	steps       []persistence.WorkflowStep
	stepWaiters []chan error
	// deferred are journal rows that wait for a flush, an append or close
	// (workflows.DeferredJournal); while there are any, events wait with them,
	// so that none is written ahead of the result it follows. deferredGen
	// counts the rows ever deferred, durableGen those written so far, and
	// flushes wait for durableGen to reach their target.
	deferred    []persistence.WorkflowStep
	deferredGen int64
	durableGen  int64
	flushes     []flushWaiter
	failed      error
	closed      bool
	// create is the run's row while it is written (a fresh run): until it is
	// durable the pump writes nothing, and its first write carries the row if
	// the writer has not taken it yet (runCreate.claim).
	create *runCreate
	// started holds the start of each step's attempt in flight (task metrics).
	started map[int]time.Time
	// lingerFrom is when events that nobody waits for began to wait for a write
	// that would carry them anyway (zero: none waits); linger wakes the loop
	// once they have waited WorkflowDeps.WriteLinger.
	lingerFrom time.Time
	linger     *time.Timer
	kick       chan struct{}
	done       chan struct{}
}

var _ workflows.AttemptRecorder = (*eventPump)(nil)

// flushWaiter is a flush waiting for the deferred rows up to gen to be durable.
type flushWaiter struct {
	gen int64
	ch  chan error
}

// newEventPump continues the run's events after last (read, after the execution's
// compare-and-swap, by the caller; last < 0 reads it first) for the execution that
// owns the run at version; create, when not nil, is the run's row being written.
func newEventPump(w *Workflows, runID string, version, last int64, create *runCreate) *eventPump {
	p := &eventPump{w: w, runID: runID, version: version, seq: last, create: create, started: map[int]time.Time{},
		kick: make(chan struct{}, 1), done: make(chan struct{})}
	if create != nil {
		// Events held for the row go out once it is durable.
		create.watch(p.wake)
	}
	w.stacks.Go(p.loop)
	return p
}

// wake makes the loop look at the queue.
func (p *eventPump) wake() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Observe implements workflows.Observer.
func (p *eventPump) Observe(e workflows.Event) { p.enqueue(e, nil) }

// RecordAttempt implements workflows.AttemptRecorder.
func (p *eventPump) RecordAttempt(ctx context.Context, e workflows.Event) error {
	ch := make(chan error, 1)
	p.enqueue(e, ch)
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// appendStep writes the journal row st with the events queued so far, and returns
// once that commit is done. A taken (run, seq) is workflows.ErrDuplicateEntry.
func (p *eventPump) appendStep(ctx context.Context, st persistence.WorkflowStep) error {
	ch := make(chan error, 1)
	p.mu.Lock()
	if p.closed || p.failed != nil {
		err := p.failed
		if err == nil {
			err = errors.New("actors: event log closed")
		}
		p.mu.Unlock()
		return err
	}
	p.steps = append(p.steps, st)
	p.stepWaiters = append(p.stepWaiters, ch)
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// deferStep queues the journal row st for the next write that a flush, an
// append or close asks for.
func (p *eventPump) deferStep(st persistence.WorkflowStep) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.failed != nil {
		if p.failed != nil {
			return p.failed
		}
		return errors.New("actors: event log closed")
	}
	p.deferred = append(p.deferred, st)
	p.deferredGen++
	return nil
}

// flush returns once every row deferred before it is durable, at once when they
// are. A taken (run, seq) is workflows.ErrDuplicateEntry.
func (p *eventPump) flush(ctx context.Context) error {
	p.mu.Lock()
	if p.failed != nil {
		err := p.failed
		p.mu.Unlock()
		return err
	}
	if p.durableGen >= p.deferredGen {
		p.mu.Unlock()
		return nil
	}
	if p.closed {
		p.mu.Unlock()
		return errors.New("actors: event log closed")
	}
	ch := make(chan error, 1)
	p.flushes = append(p.flushes, flushWaiter{gen: p.deferredGen, ch: ch})
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// eventJSONSize is room for a typical event's JSON (a task's is about 170 bytes).
const eventJSONSize = 192

func (p *eventPump) enqueue(e workflows.Event, ch chan error) {
	data, err := e.AppendJSON(make([]byte, 0, eventJSONSize))
	if err != nil {
		// Its fields are plain values; only a malformed raw result gets here. The
		// event still counts (its status and attempt are columns of their own).
		p.w.log.Error("workflow event not encodable; stored without its data", "run_id", p.runID, "seq", e.Seq, "status", e.Status, "error", err)
		data = []byte(`{"error":"the event's data could not be encoded"}`)
	}
	p.mu.Lock()
	if p.closed || p.failed != nil {
		err := p.failed
		if err == nil {
			err = errors.New("actors: event log closed")
		}
		p.mu.Unlock()
		if ch != nil {
			ch <- err
		}
		return
	}
	p.w.metrics.observeTask(e, p.started)
	p.queue = append(p.queue, persistence.WorkflowEvent{RunID: p.runID, StepSeq: e.Seq, Status: e.Status, Attempt: e.Attempt, Data: data, CreatedAt: e.Time})
	p.waiters = append(p.waiters, ch)
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// close stops the pump once the batch it is writing (if any) is written, and
// returns the last written event's seq with the events still queued, numbered
// after it, for the caller to write in its own next commit (-1 and none when
// the log failed). The executor has returned by then, so no RecordAttempt
// waits for them.
func (p *eventPump) close() (int64, []persistence.WorkflowEvent, []persistence.WorkflowStep) {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failed != nil || p.seq < 0 {
		return -1, nil, nil
	}
	last := p.seq
	steps := p.deferred
	p.deferred = nil
	pending := p.queue
	for i := range pending {
		p.seq++
		pending[i].Seq = p.seq
	}
	for _, ch := range p.waiters {
		if ch != nil {
			ch <- nil
		}
	}
	for _, ch := range p.stepWaiters {
		ch <- errors.New("actors: event log closed")
	}
	for _, f := range p.flushes {
		f.ch <- errors.New("actors: event log closed")
	}
	p.queue, p.waiters, p.steps, p.stepWaiters, p.flushes = nil, nil, nil, nil, nil
	return last, pending, steps
}

func (p *eventPump) loop() {
	defer close(p.done)
	defer func() {
		p.mu.Lock()
		if p.linger != nil {
			p.linger.Stop()
		}
		p.mu.Unlock()
	}()
	for range p.kick {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return
		}
		needed := len(p.flushes) > 0 || len(p.steps) > 0 || slices.ContainsFunc(p.waiters, func(ch chan error) bool { return ch != nil })
		if !needed && (len(p.deferred) > 0 || p.create != nil && !p.create.settled()) {
			// Events observed after a deferred result wait for it, and those of
			// a fresh run for its row (settling it wakes the loop): nobody
			// needs them durable yet, and the next write takes them all.
			p.mu.Unlock()
			continue
		}
		if !needed && len(p.queue) > 0 && p.lingers(time.Now()) {
			// Events alone (a task's "running"): the task's result, if it
			// comes within WriteLinger, carries them in its own write.
			p.mu.Unlock()
			continue
		}
		p.lingerFrom = time.Time{}
		var (
			lead   persistence.Op
			create *runCreate
		)
		if create = p.create; create != nil && p.failed == nil {
			// The first write of a fresh run: the row first.
			p.create = nil
			p.mu.Unlock()
			op, err := create.claim()
			p.mu.Lock()
			if err != nil {
				p.failed = err
			}
			lead = op
		}
		if p.seq < 0 && len(p.queue) > 0 {
			p.mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
			last, err := p.w.deps.Runs.LastEventSeq(ctx, p.runID)
			cancel()
			p.mu.Lock()
			if err != nil {
				p.failed = err
			}
			p.seq = last
		}
		batch, waiters := p.queue, p.waiters
		steps := append(p.deferred, p.steps...)
		stepWaiters, gen := p.stepWaiters, p.deferredGen
		p.queue, p.waiters, p.steps, p.stepWaiters, p.deferred = nil, nil, nil, nil, nil
		for i := range batch {
			p.seq++
			batch[i].Seq = p.seq
		}
		failed := p.failed
		p.mu.Unlock()
		batch = foldStepEvents(steps, batch)
		err := failed
		if err == nil && (len(batch)+len(steps) > 0 || lead != nil) {
			var ops persistence.Ops
			if lead != nil {
				ops = append(ops, lead)
			}
			// One fenced row holds the whole write (one transaction) to this
			// execution's version. A write that carries the run's new row needs
			// none: nobody else can have moved a row that commits with it.
			fenced := lead == nil
			if len(steps) > 0 {
				ops = append(ops, p.fence(fenced, persistence.StepInsert(steps...)))
				fenced = false
			}
			if len(batch) > 0 {
				ops = append(ops, p.fence(fenced, persistence.EventInsert(batch...)))
			}
			ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
			err = p.w.deps.Writer.Submit(ctx, ops)
			cancel()
			if lead != nil {
				create.settle(err)
			}
			switch {
			case errors.Is(err, persistence.ErrConflict):
				// Another activation moved the run on: this one is stale.
				err = fmt.Errorf("%w: %w", errRunFenced, err)
			case errors.Is(err, persistence.ErrDuplicate) && len(steps) > 0:
				// Another activation journaled or numbered first: this one is stale.
				err = fmt.Errorf("%w: %w", workflows.ErrDuplicateEntry, err)
			}
			if err != nil {
				p.w.log.Warn("run journal and events not written", "run_id", p.runID, "steps", len(steps), "events", len(batch), "error", err)
			}
		}
		p.mu.Lock()
		if err != nil {
			p.failed = err
		} else {
			p.durableGen = gen
		}
		var done []chan error
		p.flushes = slices.DeleteFunc(p.flushes, func(f flushWaiter) bool {
			if err != nil || f.gen <= p.durableGen {
				done = append(done, f.ch)
				return true
			}
			return false
		})
		more := len(p.flushes) > 0
		p.mu.Unlock()
		for _, ch := range done {
			ch <- err
		}
		for _, ch := range waiters {
			if ch != nil {
				ch <- err
			}
		}
		for _, ch := range stepWaiters {
			ch <- err
		}
		if more {
			// Rows deferred during this write have flushes waiting for them.
			select {
			case p.kick <- struct{}{}:
			default:
			}
		}
	}
}

// lingers reports whether events queued alone should wait longer, at now, for a
// result's write to carry them (WorkflowDeps.WriteLinger), and makes the loop look
// again once they have waited that long. p.mu is held.
func (p *eventPump) lingers(now time.Time) bool {
	if p.lingerFrom.IsZero() {
		p.lingerFrom = now
		if p.linger == nil {
			p.linger = time.AfterFunc(p.w.deps.WriteLinger, p.wake)
		} else {
			p.linger.Reset(p.w.deps.WriteLinger)
		}
		return true
	}
	return now.Sub(p.lingerFrom) < p.w.deps.WriteLinger
}

// fence returns op fenced by the pump's run version (persistence.RunFenced) when
// fenced is true, op itself otherwise.
func (p *eventPump) fence(fenced bool, op persistence.Op) persistence.Op {
	in, ok := op.(persistence.Insert)
	if !fenced || !ok {
		return op
	}
	return persistence.RunFenced(p.runID, p.version, in)
}

// foldStepEvents moves events into the rows of the completed steps among steps,
// which commit with them (WorkflowStep.Events): each step's own events into its
// row, the run's own events (step 0) into the last completed step's. It returns
// the events left, which need rows of their own: so a task costs one row, not
// three. Failed steps keep their events as rows, since a retry deletes failed
// steps and the event log keeps every event.
func foldStepEvents(steps []persistence.WorkflowStep, events []persistence.WorkflowEvent) []persistence.WorkflowEvent {
	if len(steps) == 0 || len(events) == 0 {
		return events
	}
	at := make(map[int]int, len(steps)) // step seq -> index in steps
	runs := -1                          // where the run's own events go
	for i, st := range steps {
		if st.Status == persistence.StatusCompleted {
			at[st.Seq] = i
			runs = i
		}
	}
	if runs < 0 {
		return events
	}
	left := events[:0:0]
	for _, e := range events {
		i, ok := at[e.StepSeq]
		if e.StepSeq == 0 {
			i, ok = runs, true
		}
		if ok {
			steps[i].Events = append(steps[i].Events, e)
			continue
		}
		left = append(left, e)
	}
	return left
}

// String describes the grain for logs.
func (g *runGrain) String() string { return fmt.Sprintf("run %s", g.identity) }
