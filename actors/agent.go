package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/agents"
	"github.com/kowai/kowai/internal/tracing"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/signatures"
	"github.com/kowai/kowai/signatures/lm"
)

// agentGrain is the agent grain: it holds one agent's definition and compiled program
// and hands every reply to a bounded pool of worker children, so its own mailbox never
// waits for a model. Requests beyond the pool wait in queue (not in goroutines), up to
// Deps.AgentQueue.
type agentGrain struct {
	rt       *Runtime
	identity string
	sys      *actor.ActorSystem
	log      *slog.Logger

	loaded bool
	agent  persistence.Agent
	def    agents.Definition
	prog   agents.Program
	// premium: the agent's own model is premium-priced.
	premium bool
	// variants are the agent's A/B variants, each compiled with its own model
	// and instructions; weights are theirs, for AssignVariant.
	variants []compiledVariant
	weights  []int
	// canary is the agent's canary variant with its decision's counts; nil for none.
	canary *canaryRun

	workers     map[string]*workerSlot
	queue       []*replyJob
	passivating bool
	// histories keeps the rendered history of recent conversations.
	histories historyCaches
}

// workerSlot is the agent's view of one worker: busy with job, idle, or waiting to be
// restarted by its supervisor after a failure.
type workerSlot struct {
	pid        *actor.PID
	job        *replyJob
	restarting bool
	// spawned: the worker's first workerReady is still to come. A new worker gets
	// a job at once, so that message says nothing; arriving after the worker
	// failed its job, it must not mark the failed worker ready.
	spawned bool
}

// replyJob is one GenerateReply on its way through a worker. It carries the program
// compiled when the request arrived, so a Reload never changes a running reply.
type replyJob struct {
	req *actorpb.GenerateReply
	// agentType labels the reply's metrics: a type of the registry, since the
	// agent compiled.
	agentType string
	sender    *actor.PID
	prog      agents.Program
	window    int
	version   int64
	model     string
	// variant is the A/B variant the reply runs as ("" for none).
	variant string
	// premium: the reply's model is premium-priced.
	premium bool
	// canary is the canary in place when the reply started (nil for none), and
	// onCanary whether the reply runs it: the reply counts in that canary's
	// decision.
	canary   *canaryRun
	onCanary bool
	// counted and failed are the finished reply's outcome for the canary's
	// decision, set by the worker before jobDone: failed counts as an error,
	// counted false (a cancelled reply) not at all.
	counted, failed bool
	// settings go with the reply when the session's are of another version.
	settings *actorpb.AgentSettings
	// history keeps the conversation's rendered history (nil for none).
	history *historyCache
	ctx     context.Context
	cancel  context.CancelFunc
}

// compiledVariant is one A/B variant of the agent, ready to run.
type compiledVariant struct {
	name    string
	model   string
	prog    agents.Program
	premium bool
}

// Messages between the agent and its workers; they never leave the node.
type (
	workerReady struct{}
	// jobDone ends a job (its outcome in job.counted and job.failed). One pointer,
	// so sending it allocates nothing.
	jobDone struct{ job *replyJob }
)

var _ actor.SupervisorStrategy = (*agentGrain)(nil)

func newAgent(rt *Runtime, identity string) *agentGrain {
	return &agentGrain{rt: rt, identity: identity, log: rt.log}
}

// Receive implements actor.Actor.
func (a *agentGrain) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		a.sys = ctx.ActorSystem()
		ctx.SetReceiveTimeout(a.rt.deps.IdleTimeout)
	case *protocluster.ClusterInit:
		a.identity = msg.Identity.GetIdentity()
	case *actorpb.GenerateReply:
		a.onGenerate(ctx, msg)
	case *actorpb.CancelTurn:
		ctx.Respond(&actorpb.CancelResult{Canceled: a.cancel(msg.GetTurnId())})
	case *actorpb.DescribeAgent:
		ctx.Respond(a.onDescribe(msg))
	case *actorpb.PutAgent:
		ctx.Respond(a.onPut(msg))
	case *actorpb.DeleteAgent:
		ctx.Respond(a.onDelete(msg))
	case *actorpb.DeployProgram:
		ctx.Respond(a.onDeploy(msg))
	case *actorpb.DecideProgram:
		ctx.Respond(a.onDecide(msg))
	case *actorpb.ProgramFeedback:
		ctx.Respond(a.onFeedback(msg))
	case *actorpb.Passivate:
		a.passivating = true
		ctx.Respond(&actorpb.Ack{})
		a.stopIfIdle(ctx)
	case *actor.ReceiveTimeout:
		a.passivating = true
		a.stopIfIdle(ctx)
	case workerReady:
		if s := a.workers[ctx.Sender().GetId()]; s != nil {
			if s.spawned {
				s.spawned = false
			} else {
				s.restarting = false
			}
		}
		a.dispatch(ctx)
	case jobDone:
		for _, s := range a.workers {
			if s.job == msg.job {
				s.job = nil
			}
		}
		msg.job.cancel()
		a.histories.settle(msg.job.history, historyCacheBytes)
		if msg.job.counted {
			a.countTurn(msg.job, msg.job.failed)
		}
		a.dispatch(ctx)
		if a.passivating {
			a.stopIfIdle(ctx)
		}
	case *actor.Terminated:
		if s := a.workers[msg.Who.GetId()]; s != nil {
			if s.job != nil {
				a.fail(s.job, actorpb.Code_CODE_UNAVAILABLE, "the reply's worker stopped")
			}
			delete(a.workers, msg.Who.GetId())
		}
		a.dispatch(ctx)
	case *actor.Stopping, *actor.Restarting:
		// Workers stop with the agent; nobody would answer these requests.
		for _, s := range a.workers {
			if s.job != nil {
				a.fail(s.job, actorpb.Code_CODE_UNAVAILABLE, "the agent is stopping")
				s.job = nil
			}
		}
		for _, j := range a.queue {
			a.fail(j, actorpb.Code_CODE_UNAVAILABLE, "the agent is stopping")
		}
		a.rt.metrics.queued.Sub(float64(len(a.queue)))
		a.queue = nil
	}
}

// ensureLoaded reads and compiles the agent's definition unless it is in memory.
func (a *agentGrain) ensureLoaded(correlationID string) *actorpb.ErrorReply {
	if a.loaded {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	defer cancel()
	ag, err := a.rt.deps.Agents.Get(ctx, a.identity)
	if errors.Is(err, persistence.ErrNotFound) {
		return errorReply(actorpb.Code_CODE_NOT_FOUND, correlationID, "agent %s does not exist", a.identity)
	}
	if err != nil {
		a.log.Error("agent load failed", "agent_id", a.identity, "correlation_id", correlationID, "error", err)
		return errorReply(actorpb.Code_CODE_UNAVAILABLE, correlationID, "agent %s cannot be loaded now", a.identity)
	}
	return a.use(ag, correlationID)
}

// use compiles ag and makes it the agent's definition.
func (a *agentGrain) use(ag persistence.Agent, correlationID string) *actorpb.ErrorReply {
	def, prog, err := a.rt.types.Compile(specOf(ag))
	if err != nil {
		a.loaded = false
		a.log.Error("agent compile failed", "agent_id", a.identity, "correlation_id", correlationID, "error", err)
		return errorReply(actorpb.Code_CODE_INVALID_ARGUMENT, correlationID, "agent %s is misconfigured: %v", a.identity, err)
	}
	variants := make([]compiledVariant, 0, len(ag.Variants))
	weights := make([]int, 0, len(ag.Variants))
	var canary *canaryRun
	for _, v := range ag.Variants {
		spec := specOf(ag)
		if v.Model != "" {
			spec.Model = v.Model
		}
		if v.Instructions != "" {
			spec.Instructions = v.Instructions
		}
		if len(v.Program) > 0 {
			spec.Program = v.Program
		}
		_, vprog, err := a.rt.types.Compile(spec)
		if err != nil {
			a.loaded = false
			a.log.Error("agent variant compile failed", "agent_id", a.identity, "variant", v.Name, "correlation_id", correlationID, "error", err)
			return errorReply(actorpb.Code_CODE_INVALID_ARGUMENT, correlationID, "agent %s variant %s is misconfigured: %v", a.identity, v.Name, err)
		}
		cv := compiledVariant{name: v.Name, model: spec.Model, prog: vprog, premium: a.rt.premiumModel(spec.Model)}
		if v.Canary != nil {
			canary = &canaryRun{variant: cv, stored: v, policy: *v.Canary}
			continue
		}
		variants = append(variants, cv)
		weights = append(weights, v.Weight)
	}
	a.agent, a.def, a.prog, a.variants, a.weights, a.loaded = ag, def, prog, variants, weights, true
	a.premium = a.rt.premiumModel(ag.Model)
	a.canary = a.keepCounts(canary, correlationID)
	return nil
}

// settings are the agent's settings as a session needs them.
func (a *agentGrain) settings() *actorpb.AgentSettings {
	return &actorpb.AgentSettings{Version: a.agent.Version, BusyPolicy: a.def.Config.BusyPolicy,
		HistoryWindow: int32(a.def.Config.HistoryWindow)}
}

// onDescribe answers a session that is about to start a conversation with this agent.
// An agent the user may not use is one that does not exist.
func (a *agentGrain) onDescribe(req *actorpb.DescribeAgent) any {
	corr := req.GetCorrelationId()
	if e := a.ensureLoaded(corr); e != nil {
		return e
	}
	if a.agent.OwnerID != "" && a.agent.OwnerID != req.GetUserId() {
		return errorReply(actorpb.Code_CODE_NOT_FOUND, corr, "agent %s does not exist", a.identity)
	}
	return a.settings()
}

// onPut stores a new definition of the agent (create, or replace at the version the
// caller read) and uses it from the next reply on; replies already running keep the
// program they started with. The grain is the only writer of its row, so no other node
// can serve an older definition once the answer is sent.
func (a *agentGrain) onPut(req *actorpb.PutAgent) any {
	corr := req.GetCorrelationId()
	in, err := actorpb.AgentOf(req.GetAgent())
	if err != nil {
		return errorReply(actorpb.Code_CODE_INVALID_ARGUMENT, corr, "%v", err)
	}
	if in.ID != a.identity {
		return errorReply(actorpb.Code_CODE_INVALID_ARGUMENT, corr, "definition of agent %q reached agent %q", in.ID, a.identity)
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	var stored persistence.Agent
	if req.GetCreate() {
		stored, err = a.rt.deps.Agents.Create(ctx, in)
	} else {
		stored, err = a.rt.deps.Agents.Update(ctx, in)
	}
	switch {
	case errors.Is(err, persistence.ErrConflict) && !req.GetCreate(), errors.Is(err, persistence.ErrDuplicate):
		return errorReply(actorpb.Code_CODE_CONFLICT, corr, "agent %s changed since it was read", a.identity)
	case errors.Is(err, persistence.ErrNotFound):
		a.loaded = false
		return errorReply(actorpb.Code_CODE_NOT_FOUND, corr, "agent %s does not exist", a.identity)
	case err != nil:
		a.log.Error("agent write failed", "agent_id", a.identity, "correlation_id", corr, "error", err)
		// The write may or may not have landed: read the row again before the next reply.
		a.loaded = false
		return errorReply(actorpb.Code_CODE_UNAVAILABLE, corr, "agent %s cannot be saved now", a.identity)
	}
	// A definition the registry cannot compile was stored anyway (the caller checked
	// it against the same registry); replies then fail until it is fixed.
	_ = a.use(stored, corr)
	return actorpb.DefinitionOf(stored)
}

// onDelete deletes the agent; the next request finds it gone.
func (a *agentGrain) onDelete(req *actorpb.DeleteAgent) any {
	corr := req.GetCorrelationId()
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	a.loaded = false
	err := a.rt.deps.Agents.Delete(ctx, a.identity)
	switch {
	case errors.Is(err, persistence.ErrNotFound):
		return errorReply(actorpb.Code_CODE_NOT_FOUND, corr, "agent %s does not exist", a.identity)
	case err != nil:
		a.log.Error("agent delete failed", "agent_id", a.identity, "correlation_id", corr, "error", err)
		return errorReply(actorpb.Code_CODE_UNAVAILABLE, corr, "agent %s cannot be deleted now", a.identity)
	}
	return &actorpb.Ack{}
}

func (a *agentGrain) onGenerate(ctx actor.Context, req *actorpb.GenerateReply) {
	corr := req.GetCorrelationId()
	if e := a.ensureLoaded(corr); e != nil {
		ctx.Respond(e)
		return
	}
	if a.agent.OwnerID != "" && a.agent.OwnerID != req.GetUserId() {
		ctx.Respond(errorReply(actorpb.Code_CODE_FORBIDDEN, corr, "agent %s belongs to another user", a.identity))
		return
	}
	if len(a.queue) >= a.rt.deps.AgentQueue {
		ctx.Respond(errorReply(actorpb.Code_CODE_BUSY, corr, "agent %s has %d replies waiting", a.identity, len(a.queue)))
		return
	}
	// The job's context carries the request's trace context, so the worker's span is
	// a child of the grain call's server span.
	jctx, cancel := context.WithTimeout(tracing.Extract(context.Background(), ctx.MessageHeader()), a.rt.deps.TurnTimeout)
	job := &replyJob{req: req, agentType: a.agent.Type, sender: ctx.Sender(), prog: a.prog, window: a.def.Config.HistoryWindow,
		version: a.agent.Version, model: a.agent.Model, premium: a.premium, ctx: jctx, cancel: cancel,
		history: a.histories.get(req.GetConversationId(), len(req.GetHistory()))}
	if c := a.canary; c != nil {
		job.canary = c
		if agents.AssignCanary(a.identity, req.GetConversationId(), c.policy.Percent) {
			job.prog, job.model, job.variant, job.premium, job.onCanary = c.variant.prog, c.variant.model, c.variant.name, c.variant.premium, true
		}
	}
	if i := agents.AssignVariant(a.identity, req.GetConversationId(), a.weights); i >= 0 && !job.onCanary {
		v := a.variants[i]
		job.prog, job.model, job.variant, job.premium = v.prog, v.model, v.name, v.premium
	}
	if job.premium && req.GetNoPremium() {
		// The user may have lost models:premium since the agent was saved: the
		// caller's current word decides (the token's claims for a chat turn, the
		// run owner's current roles for a workflow's agent task).
		cancel()
		e := errorReply(actorpb.Code_CODE_FORBIDDEN, corr, "agent %s answers with the premium model %q, which needs the models:premium permission", a.identity, job.model)
		e.Variant = job.variant
		ctx.Respond(e)
		return
	}
	if req.GetKnownVersion() != a.agent.Version {
		job.settings = a.settings()
	}
	a.queue = append(a.queue, job)
	a.rt.metrics.queued.Inc()
	a.dispatch(ctx)
}

// dispatch hands queued jobs to idle workers, spawning workers up to the pool size.
func (a *agentGrain) dispatch(ctx actor.Context) {
	if a.workers == nil {
		a.workers = map[string]*workerSlot{}
	}
	size := a.rt.deps.AgentWorkers
	if n := a.def.Config.MaxConcurrency; n > 0 {
		size = n
	}
	for len(a.queue) > 0 {
		var slot *workerSlot
		for _, s := range a.workers {
			if s.job == nil && !s.restarting {
				slot = s
				break
			}
		}
		if slot == nil {
			if len(a.workers) >= size {
				return
			}
			// A worker's mailbox runs on the runtime's pool: a reply's call chain
			// (program, prompt, model) is deep, and a fresh goroutine per run grew
			// its stack on every reply.
			slot = &workerSlot{pid: ctx.Spawn(actor.PropsFromProducer(func() actor.Actor { return &worker{rt: a.rt} },
				actor.WithDispatcher(a.rt.stacks.Dispatcher()))), spawned: true}
			a.workers[slot.pid.GetId()] = slot
		}
		job := a.queue[0]
		a.queue = slices.Delete(a.queue, 0, 1)
		a.rt.metrics.queued.Dec()
		slot.job = job
		ctx.Send(slot.pid, job)
	}
}

// cancel cancels the job of turnID (every job when empty); a queued job is answered at
// once, a running one when its worker notices.
func (a *agentGrain) cancel(turnID string) bool {
	found := false
	match := func(j *replyJob) bool { return turnID == "" || j.req.GetTurnId() == turnID }
	for _, s := range a.workers {
		if s.job != nil && match(s.job) {
			s.job.cancel()
			found = true
		}
	}
	a.queue = slices.DeleteFunc(a.queue, func(j *replyJob) bool {
		if !match(j) {
			return false
		}
		a.fail(j, actorpb.Code_CODE_CANCELED, "the reply was cancelled")
		a.rt.metrics.queued.Dec()
		found = true
		return true
	})
	return found
}

// fail answers job's requester with an error and ends its stream.
func (a *agentGrain) fail(job *replyJob, code actorpb.Code, message string) {
	job.cancel()
	e := actorpb.NewError(code, job.req.GetCorrelationId(), message)
	e.Variant = job.variant
	if job.sender != nil {
		a.sys.Root.Send(job.sender, e)
	}
	endStream(a.sys.Root, job.req, e)
}

func (a *agentGrain) stopIfIdle(ctx actor.Context) {
	if len(a.queue) > 0 {
		return
	}
	for _, s := range a.workers {
		if s.job != nil {
			return
		}
	}
	ctx.Stop(ctx.Self())
}

// HandleFailure answers the requester of a worker's failed reply with a typed error,
// then lets the worker strategy decide (restart with backoff, or stop after a conflict
// or a spent budget). It runs on the agent's goroutine.
func (a *agentGrain) HandleFailure(sys *actor.ActorSystem, sup actor.Supervisor, child *actor.PID,
	rs *actor.RestartStatistics, reason, message any) {
	if s := a.workers[child.GetId()]; s != nil {
		if s.job != nil {
			err, _ := reason.(error)
			if err == nil {
				err = fmt.Errorf("worker panic: %v", reason)
			}
			code := codeOf(err)
			// The job's context carries the request's trace: the line names it.
			a.log.WarnContext(s.job.ctx, "agent reply failed", "agent_id", a.identity, "correlation_id", s.job.req.GetCorrelationId(),
				"code", code.String(), "error", err)
			msg := publicMessage(code)
			// A failure that speaks to the user (a spent budget says which and until
			// when) is told as it is.
			var pm interface{ PublicMessage() string }
			if code == actorpb.Code_CODE_BUDGET_EXCEEDED && errors.As(err, &pm) {
				msg = pm.PublicMessage()
			}
			a.fail(s.job, code, msg)
			// A spent budget is the user's, not the program's.
			if code != actorpb.Code_CODE_BUDGET_EXCEEDED {
				a.countTurn(s.job, true)
			}
			a.histories.settle(s.job.history, historyCacheBytes)
			s.job = nil
		}
		s.restarting = true
	}
	a.rt.workers.HandleFailure(sys, sup, child, rs, reason, message)
}

// publicMessage is what the end user is told about a failed reply; details stay in the
// logs.
func publicMessage(code actorpb.Code) string {
	switch code {
	case actorpb.Code_CODE_TIMEOUT:
		return "the model did not answer in time"
	case actorpb.Code_CODE_BUDGET_EXCEEDED:
		return "the spending budget for model calls is used up"
	case actorpb.Code_CODE_MODEL_FAILURE:
		return "the model failed to answer"
	case actorpb.Code_CODE_CANCELED:
		return "the reply was cancelled"
	default:
		return "the reply failed"
	}
}

// worker runs one reply at a time; blocking its own mailbox on the model is its job.
type worker struct{ rt *Runtime }

// Receive implements actor.Actor.
func (w *worker) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		ctx.Request(ctx.Parent(), workerReady{})
	case *replyJob:
		w.run(ctx, msg)
	}
}

// run generates the reply of job and sends it straight to the requester. A model
// failure panics with the error so the supervisor classifies, counts and restarts; a
// cancelled or expired job is answered here, since it is not the worker's failure.
func (w *worker) run(ctx actor.Context, job *replyJob) {
	req, jctx := job.req, job.ctx
	var span trace.Span
	if tr := w.rt.tracer; tr != nil {
		jctx, span = tr.Start(jctx, "agent.reply", trace.WithAttributes(
			attribute.String("kowai.agent.id", req.GetAgentId()),
			attribute.String("kowai.agent.type", job.agentType),
			attribute.Int64("kowai.agent.version", job.version),
			attribute.String("kowai.conversation.id", req.GetConversationId()),
			attribute.Bool("kowai.stream", req.GetStream().GetId() != "")))
	}
	// A model failure panics out of run (the supervisor's business): the reply
	// still counts, as failed, and its span still ends, marked failed.
	start, outcome := time.Now(), "failed"
	var usage lm.Usage
	defer func() {
		r := recover()
		w.rt.metrics.reply(job.agentType, outcome, time.Since(start).Seconds(), usage.PromptTokens, usage.CompletionTokens, usage.CostUSD)
		if span != nil {
			span.SetAttributes(attribute.String("kowai.agent.outcome", outcome))
			if r != nil {
				span.SetStatus(codes.Error, fmt.Sprint(r))
			}
			span.End()
		}
		if r != nil {
			panic(r)
		}
	}()
	in := agents.Input{Message: req.GetContent(), History: historyWindow(req.GetHistory(), job.window), Summary: req.GetSummary()}
	if job.history != nil {
		in.HistoryCache = &job.history.cache
	}
	if t := req.GetStream(); t.GetId() != "" {
		target := actor.NewPID(t.GetAddress(), t.GetId())
		var index int64
		in.Stream = func(_ context.Context, chunk string) error {
			ctx.Send(target, &actorpb.TokenDelta{StreamId: req.GetStreamId(), ConversationId: req.GetConversationId(), Delta: chunk, Index: index})
			index++
			return nil
		}
	}
	base, err := w.rt.modelOf(job.model)
	if err != nil {
		e := actorpb.NewError(actorpb.Code_CODE_INVALID_ARGUMENT, req.GetCorrelationId(),
			fmt.Sprintf("agent %s names model %q, which this node does not serve", req.GetAgentId(), job.model))
		e.Variant = job.variant
		ctx.Send(job.sender, e)
		endStream(ctx, req, e)
		job.counted, job.failed = true, true
		ctx.Send(ctx.Parent(), jobDone{job: job})
		return
	}
	model := newReplyModel(w.rt.withBudget(base, job.model, req), req.GetOptions())
	out, err := job.prog.Reply(jctx, model, in)
	if err != nil {
		if cerr := jctx.Err(); cerr != nil {
			code := actorpb.Code_CODE_CANCELED
			outcome = "canceled"
			if errors.Is(cerr, context.DeadlineExceeded) {
				code, outcome = actorpb.Code_CODE_TIMEOUT, "timeout"
			}
			e := actorpb.NewError(code, req.GetCorrelationId(), publicMessage(code))
			e.Variant = job.variant
			ctx.Send(job.sender, e)
			endStream(ctx, req, e)
			// A timeout is the reply's failure; a cancellation is nobody's.
			job.counted, job.failed = code == actorpb.Code_CODE_TIMEOUT, true
			ctx.Send(ctx.Parent(), jobDone{job: job})
			return
		}
		panic(fmt.Errorf("agent %s: reply to conversation %s: %w", req.GetAgentId(), req.GetConversationId(), err))
	}
	details := ""
	if len(out.Details) > 0 {
		b, err := json.Marshal(out.Details)
		if err != nil {
			panic(fmt.Errorf("agent %s: encode reply details: %w", req.GetAgentId(), err))
		}
		details = string(b)
	}
	outcome, usage = "ok", out.Usage
	ctx.Send(job.sender, &actorpb.ReplyResult{
		Response: out.Text, Model: out.Model, DetailsJson: details, AgentVersion: job.version, Settings: job.settings, StopReason: model.stopReason(),
		Variant: job.variant,
		Usage: &actorpb.Usage{PromptTokens: int64(out.Usage.PromptTokens), CompletionTokens: int64(out.Usage.CompletionTokens),
			CostUsd: out.Usage.CostUSD, CacheHit: out.Usage.CacheHits > 0 && out.Usage.Calls == out.Usage.CacheHits},
	})
	endStream(ctx, req, nil)
	job.counted = true
	ctx.Send(ctx.Parent(), jobDone{job: job})
}

// endStream tells the request's stream target that no more deltas come.
func endStream(s actor.SenderContext, req *actorpb.GenerateReply, e *actorpb.ErrorReply) {
	if t := req.GetStream(); t.GetId() != "" {
		s.Send(actor.NewPID(t.GetAddress(), t.GetId()), &actorpb.StreamEnd{StreamId: req.GetStreamId(), ConversationId: req.GetConversationId(), Error: e})
	}
}

// conversation is a request's history as the agent's program reads it
// (signatures.Conversation): the entries the session sent, shared, not copied.
type conversation []*actorpb.HistoryEntry

var _ signatures.Conversation = conversation(nil)

// Len implements signatures.Conversation.
func (c conversation) Len() int { return len(c) }

// Message implements signatures.Conversation.
func (c conversation) Message(i int) (role, content string) { return c[i].GetRole(), c[i].GetContent() }

// historyWindow is the last window entries of history. This is the one place the
// agent's history window applies: the session sends at least that many. The
// program's Chat pairs them into turns and leaves recorded failures (system
// entries) out.
func historyWindow(history []*actorpb.HistoryEntry, window int) signatures.Conversation {
	if len(history) > window {
		history = history[len(history)-window:]
	}
	if len(history) == 0 {
		return nil
	}
	return conversation(history)
}
