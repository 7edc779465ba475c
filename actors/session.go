package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/agents"
	"github.com/kowai/kowai/internal/tracing"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/supervisors"
)

// session is the session grain: it owns one conversation and is the only writer of
// it. It runs one turn at a time in a goroutine of its own, so its mailbox stays free
// for cancels, renames, deletes and the messages that queue behind the running turn.
// Reads (history pages, listings) do not come here: the gateway serves them from the
// stores.
type session struct {
	rt       *Runtime
	identity string
	self     *actor.PID
	sys      *actor.ActorSystem
	log      *slog.Logger

	// loaded: state and version reflect the database. exists: the conversation row
	// exists. unsaved: how many of the log's messages the saved snapshot lacks.
	loaded, exists bool
	unsaved        int
	state          sessionState
	version        int64
	// touched is when the session last moved the conversation's updated_at; active is
	// when its last turn committed.
	touched, active time.Time

	running     *turn
	queue       []*turn
	passivating bool
	// passivated are the requesters of Passivate, answered once the final snapshot is
	// saved.
	passivated []*actor.PID
	stopped    bool
	// deleting are the requesters of a DeleteConversation that waits for the running
	// turn to end; deleteCorr is its correlation ID.
	deleting   []*actor.PID
	deleteCorr string
}

// turn is one SendMessage on its way: queued, or running.
type turn struct {
	req *actorpb.SendMessage
	// base carries the trace context of the request (its grain server span), so the
	// turn's span joins the caller's trace even when the turn starts later, from the
	// queue.
	base    context.Context
	waiters []*actor.PID
	job     *turnJob
	cancel  context.CancelFunc
	start   time.Time
}

// startNext is sent by the session to itself when it must start the next turn outside
// of a message handler (after a supervision decision).
type startNext struct{}

// inspect asks a session for its queue; tests use it to observe queuing.
type inspect struct{}

// inspectState asks a session for its state; tests use it to observe what it holds.
type inspectState struct{}

func newSession(rt *Runtime, identity string) *session {
	return &session{rt: rt, identity: identity, log: rt.log}
}

// Receive implements actor.Actor.
func (s *session) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		s.self, s.sys = ctx.Self(), ctx.ActorSystem()
		s.rt.sessions.add(s.sys, s.self)
		ctx.SetReceiveTimeout(s.rt.deps.IdleTimeout)
	case *protocluster.ClusterInit:
		s.identity = msg.Identity.GetIdentity()
	case *actor.Stopped:
		s.rt.sessions.remove(s.self)
		s.unload()
		s.failAll(actorpb.Code_CODE_UNAVAILABLE, "the conversation's grain stopped; retry")
	case *actorpb.SendMessage:
		s.onSend(ctx, msg)
	case *actorpb.CancelTurn:
		ctx.Respond(s.onCancel(msg))
	case *actorpb.RenameConversation:
		ctx.Respond(s.onRename(msg))
	case *actorpb.DeleteConversation:
		s.onDelete(ctx, msg)
	case turnDone:
		s.onTurnDone(ctx, msg)
	case turnFailed:
		s.onTurnFailed(ctx, msg)
	case startNext:
		s.startNext(ctx)
	case inspect:
		ctx.Respond(s.queue)
	case inspectState:
		ctx.Respond(s.state)
	case *actorpb.Passivate:
		s.passivating = true
		s.passivated = append(s.passivated, ctx.Sender())
		s.passivateIfIdle(ctx)
	case *actor.ReceiveTimeout:
		s.passivating = true
		s.passivateIfIdle(ctx)
	}
}

// ensureLoaded activates the session's state. A current snapshot is one read, which
// also checks that the log does not go on past it; otherwise the log's tail is read
// and wins where it and the snapshot disagree (turns since the last snapshot are only
// in the log). A missing conversation is not an error: the first SendMessage creates
// it.
func (s *session) ensureLoaded(corr string) *actorpb.ErrorReply {
	if s.loaded {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	defer cancel()
	fail := func(what string, err error) *actorpb.ErrorReply {
		s.log.Error("session activation failed", "conversation_id", s.identity, "step", what, "correlation_id", corr, "error", err)
		return errorReply(actorpb.Code_CODE_UNAVAILABLE, corr, "conversation %s cannot be loaded now", s.identity)
	}
	var st sessionState
	snap, behind, err := s.rt.deps.Snapshots.LoadSession(ctx, KindSession, s.identity)
	found := err == nil
	switch {
	case found:
		if st, err = decodeState(snap.State); err != nil {
			// An unreadable snapshot (such as one from an older encoding) must not lock
			// the conversation out: the state is rebuilt from the conversation and the
			// log, and the next save replaces the snapshot.
			s.log.Warn("session snapshot unreadable, rebuilding from the log", "conversation_id", s.identity,
				"correlation_id", corr, "error", err)
			st = sessionState{}
		}
	case !errors.Is(err, persistence.ErrNotFound):
		return fail("load snapshot", err)
	}
	if st.OwnerID == "" {
		conv, err := s.rt.deps.Conversations.Get(ctx, s.identity)
		if errors.Is(err, persistence.ErrNotFound) {
			s.state, s.version, s.exists, s.loaded, s.unsaved = sessionState{}, snap.Version, false, true, 0
			s.rt.metrics.loaded.WithLabelValues(KindSession).Inc()
			return nil
		}
		if err != nil {
			return fail("load conversation", err)
		}
		st = sessionState{OwnerID: conv.OwnerID, AgentID: conv.AgentID, Title: conv.Title}
	}
	unsaved := 0
	// The snapshot is current when the log has nothing past it; that check holds only
	// for a snapshot versioned by its last seq (see snapshotOf).
	if !found || behind || snap.Version != st.LastSeq {
		tail, err := s.rt.deps.Messages.Tail(ctx, s.identity, max(s.rt.logReadLimit(), st.tailWindow(s.rt.deps.HistoryWindow)))
		if err != nil {
			return fail("read log tail", err)
		}
		st, unsaved = st.catchUp(st.tailWindow(s.rt.deps.HistoryWindow), tail)
	}
	s.state, s.version, s.exists, s.loaded, s.unsaved = st, snap.Version, true, true, unsaved
	s.rt.metrics.loaded.WithLabelValues(KindSession).Inc()
	return nil
}

// unload drops the in-memory state; the next request loads it again.
func (s *session) unload() {
	if s.loaded {
		s.rt.metrics.loaded.WithLabelValues(KindSession).Dec()
	}
	s.loaded, s.state = false, sessionState{}
}

// errNoConversation is the one answer for a conversation that does not exist and one
// the caller may not touch, so that nobody learns which IDs are taken.
func errNoConversation(corr, id string) *actorpb.ErrorReply {
	return errorReply(actorpb.Code_CODE_NOT_FOUND, corr, "conversation %s does not exist", id)
}

func (s *session) checkIdentity(corr, convID string) *actorpb.ErrorReply {
	if convID != s.identity {
		return errorReply(actorpb.Code_CODE_INVALID_ARGUMENT, corr, "request for conversation %q reached session %q", convID, s.identity)
	}
	return nil
}

func (s *session) onSend(ctx actor.Context, req *actorpb.SendMessage) {
	corr := req.GetCorrelationId()
	t := &turn{req: req, waiters: []*actor.PID{ctx.Sender()}, base: tracing.Extract(context.Background(), ctx.MessageHeader())}
	if e := s.checkIdentity(corr, req.GetConversationId()); e != nil {
		s.answer(ctx, t, e)
		return
	}
	if req.GetUserId() == "" || req.GetContent() == "" {
		s.answer(ctx, t, errorReply(actorpb.Code_CODE_INVALID_ARGUMENT, corr, "user_id and content are required"))
		return
	}
	if s.deleting != nil {
		// The conversation is on its way out; its owner asked for that.
		s.answer(ctx, t, errNoConversation(corr, s.identity))
		return
	}
	if !s.admit(ctx, t) {
		return
	}
	switch s.state.BusyPolicy {
	case agents.BusyReject:
		s.answer(ctx, t, errorReply(actorpb.Code_CODE_BUSY, corr, "a reply is still running in conversation %s", s.identity))
		return
	case agents.BusyInterrupt:
		s.running.cancel()
	}
	s.queue = append(s.queue, t)
}

// admit takes t through the steps before it runs, the same for a turn that arrives and
// one that leaves the queue: load the state, check that the caller may write, answer
// with the stored result when t's idempotency key has one, let t's requesters wait for
// the turn in flight with that key, and, when no turn runs, resolve the agent of a new
// conversation and start t. It answers t itself where a step settles it, and reports
// whether t must wait behind the running turn (then the busy policy decides).
func (s *session) admit(ctx actor.Context, t *turn) (wait bool) {
	if !s.loaded && t.req.GetFresh() {
		// The gateway minted the ID for this turn: there is nothing to read. Were
		// something stored under it after all, the turn's create would fail and fence
		// the session before any write.
		s.state, s.version, s.exists, s.loaded, s.unsaved = sessionState{}, 0, false, true, 0
		s.rt.metrics.loaded.WithLabelValues(KindSession).Inc()
	}
	if e := s.ensureLoaded(t.req.GetCorrelationId()); e != nil {
		s.answer(ctx, t, e)
		return false
	}
	if e := s.checkWrite(t.req); e != nil {
		s.answer(ctx, t, e)
		return false
	}
	key := t.req.GetIdempotencyKey()
	hash := requestHash(t.req)
	if res, mismatch := s.state.replay(s.identity, key, hash); mismatch {
		s.answer(ctx, t, errIdempotencyMismatch(t.req.GetCorrelationId(), key))
		return false
	} else if res != nil {
		s.answer(ctx, t, res)
		return false
	}
	if key != "" {
		// A retry of a turn still in progress waits for that turn's answer. A turn
		// leaving the queue never matches: a key enters the queue at most once. The
		// caller is the owner (checkWrite), and a request other than the one in
		// progress is refused rather than given its answer.
		for _, other := range append([]*turn{s.running}, s.queue...) {
			if other != nil && other.req.GetIdempotencyKey() == key {
				if requestHash(other.req) != hash {
					s.answer(ctx, t, errIdempotencyMismatch(t.req.GetCorrelationId(), key))
					return false
				}
				other.waiters = append(other.waiters, t.waiters...)
				return false
			}
		}
	}
	if s.running != nil {
		return true
	}
	if !s.exists {
		if e := s.resolveAgent(t.req); e != nil {
			s.answer(ctx, t, e)
			return false
		}
	}
	s.start(ctx, t)
	return false
}

// checkWrite checks that req may add a turn: only the owner writes, and a conversation
// keeps its agent. The owner is known from the moment the first turn starts, before the
// conversation's row exists, so nobody else joins or queues behind that turn. A
// conversation that does not exist yet may be created by anyone, unless the request says
// it must exist (its ID is reserved, see SendMessage.must_exist). A stranger gets the
// answer a missing conversation gets.
func (s *session) checkWrite(req *actorpb.SendMessage) *actorpb.ErrorReply {
	corr := req.GetCorrelationId()
	switch owner := s.state.OwnerID; {
	case owner == "" && req.GetMustExist():
		return errNoConversation(corr, s.identity)
	case owner == "":
		return nil
	case owner != req.GetUserId():
		return errNoConversation(corr, s.identity)
	}
	if a := req.GetAgentId(); a != "" && a != s.state.AgentID {
		return errorReply(actorpb.Code_CODE_CONFLICT, corr, "conversation %s is served by agent %s, not %s", s.identity, s.state.AgentID, a)
	}
	return nil
}

// resolveAgent chooses the agent of a conversation about to be created: the requested
// one, which the caller must be allowed to use, or the built-in chat agent. The agent
// grain answers with its settings; its busy policy applies from the first turn on.
func (s *session) resolveAgent(req *actorpb.SendMessage) *actorpb.ErrorReply {
	corr := req.GetCorrelationId()
	agentID := req.GetAgentId()
	if agentID == "" {
		agentID = agents.DefaultAgentID()
	}
	caller := s.rt.callerOrNil()
	if caller == nil {
		return errorReply(actorpb.Code_CODE_UNAVAILABLE, corr, "the grain client is not set")
	}
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	defer cancel()
	settings, err := actorpb.As[*actorpb.AgentSettings](caller.Call(ctx, KindAgent, agentID,
		&actorpb.DescribeAgent{CorrelationId: corr, AgentId: agentID, UserId: req.GetUserId()}))
	var ae *actorpb.Error
	switch {
	case errors.As(err, &ae):
		return actorpb.NewError(ae.Code, corr, ae.Message)
	case err != nil:
		s.log.Error("agent lookup failed", "conversation_id", s.identity, "agent_id", agentID, "correlation_id", corr, "error", err)
		return errorReply(actorpb.Code_CODE_UNAVAILABLE, corr, "agent %s cannot be reached now", agentID)
	}
	s.state = sessionState{OwnerID: req.GetUserId(), AgentID: agentID, Title: titleOf(req.GetContent())}.withSettings(settings)
	return nil
}

// start runs t on a copy of the state in a goroutine, which reports to the session
// with turnDone, or turnFailed when the turn panics (a fenced write panics with a
// conflict Failure). A turn used to run in a child actor; protoactor's PIDSet.Remove
// keeps the last removed child's PID in its backing array, and with it the finished
// child's mailbox, context and job, so every idle session held its last turn (see
// docs/protoactor-pidset.md). A goroutine holds nothing once it returns, and a turn
// needs no mailbox: it receives no messages. The goroutine is one of the runtime's
// pool, which keeps the stack an earlier turn grew instead of growing a new one.
func (s *session) start(ctx actor.Context, t *turn) {
	base := t.base
	if base == nil {
		base = context.Background()
	}
	jctx, cancel := context.WithTimeout(base, s.rt.deps.TurnTimeout)
	job := &turnJob{rt: s.rt, convID: s.identity, req: t.req, state: s.state, version: s.version, unsaved: s.unsaved,
		touched: s.touched, exists: s.exists, ctx: jctx}
	t.cancel, t.start, t.job = cancel, time.Now(), job
	s.running = t
	root, self := ctx.ActorSystem().Root, ctx.Self()
	s.rt.stacks.Go(func() { runTurn(root, self, job) })
}

// startNext starts the next queued turn that may still run, or finishes a delete that
// waited for the running turn.
func (s *session) startNext(ctx actor.Context) {
	if s.running == nil && s.deleting != nil {
		s.finishDelete(ctx)
	}
	for s.running == nil && len(s.queue) > 0 && !s.stopped {
		t := s.queue[0]
		s.queue = slices.Delete(s.queue, 0, 1)
		s.admit(ctx, t)
	}
	if s.running == nil && s.passivating {
		s.passivateIfIdle(ctx)
	}
}

func (s *session) onTurnDone(ctx actor.Context, d turnDone) {
	t := s.running
	if t == nil || t.job != d.job {
		return
	}
	s.running = nil
	t.cancel()
	o := d.outcome
	switch {
	case o.reload:
		s.unload()
	case o.adopt:
		// A rename while the turn ran changed the title; the turn never does.
		title := s.state.Title
		s.state, s.version, s.exists, s.unsaved = o.state, o.version, true, o.unsaved
		s.touched, s.active = o.touched, o.active
		if s.state.Title != title {
			s.state.Title = title
			s.unsaved = max(s.unsaved, 1)
		}
	case !s.exists:
		// The conversation was not created; the next first message chooses again.
		s.state = sessionState{}
	}
	if o.result != nil {
		s.rt.metrics.turnDuration.Observe(time.Since(t.start).Seconds())
		s.answer(ctx, t, o.result)
	} else {
		s.answer(ctx, t, o.err)
	}
	s.startNext(ctx)
}

// answer replies to every requester of t.
func (s *session) answer(ctx actor.SenderContext, t *turn, reply any) {
	label := "ok"
	switch r := reply.(type) {
	case *actorpb.ErrorReply:
		label = outcome(r)
	case *actorpb.TurnResult:
		if r.GetReplayed() {
			label = "replayed"
		}
	}
	s.rt.metrics.turns.WithLabelValues(label).Inc()
	for _, w := range t.waiters {
		if w != nil {
			ctx.Send(w, reply)
		}
	}
}

// outcome is the metric label of a failed turn: its code in lower case
// without the CODE_ prefix ("forbidden", "model_failure", ...), like every
// other label value; an unset or unknown code counts as "internal", as the
// protocol treats it.
func outcome(e *actorpb.ErrorReply) string {
	code := e.GetCode()
	if _, known := actorpb.Code_name[int32(code)]; !known || code == actorpb.Code_CODE_UNSPECIFIED {
		code = actorpb.Code_CODE_INTERNAL
	}
	return strings.ToLower(strings.TrimPrefix(code.String(), "CODE_"))
}

// failAll answers every running and queued turn with an error.
func (s *session) failAll(code actorpb.Code, message string) {
	for _, t := range append([]*turn{s.running}, s.queue...) {
		if t == nil {
			continue
		}
		if t.cancel != nil {
			t.cancel()
		}
		s.answer(s.sys.Root, t, actorpb.NewError(code, t.req.GetCorrelationId(), message))
	}
	s.running, s.queue = nil, nil
	for _, w := range s.deleting {
		if w != nil {
			s.sys.Root.Send(w, actorpb.NewError(code, s.deleteCorr, message))
		}
	}
	s.deleting = nil
}

func (s *session) onCancel(req *actorpb.CancelTurn) any {
	corr := req.GetCorrelationId()
	if e := s.checkIdentity(corr, req.GetConversationId()); e != nil {
		return e
	}
	if e := s.ensureLoaded(corr); e != nil {
		return e
	}
	// A conversation being created by its first turn is already its owner's.
	if s.state.OwnerID == "" || s.state.OwnerID != req.GetUserId() {
		return errNoConversation(corr, s.identity)
	}
	id := req.GetTurnId()
	match := func(t *turn) bool { return id == "" || t.req.GetIdempotencyKey() == id }
	canceled := false
	if s.running != nil && match(s.running) {
		s.running.cancel()
		canceled = true
	}
	s.queue = slices.DeleteFunc(s.queue, func(t *turn) bool {
		if !match(t) {
			return false
		}
		s.answer(s.sys.Root, t, errorReply(actorpb.Code_CODE_CANCELED, t.req.GetCorrelationId(), "the turn was cancelled before it started"))
		canceled = true
		return true
	})
	return &actorpb.CancelResult{Canceled: canceled}
}

// onRename sets the title of an existing conversation, in its row and in the state
// (saved with the next snapshot; activation reads the title from the snapshot).
func (s *session) onRename(req *actorpb.RenameConversation) any {
	corr := req.GetCorrelationId()
	if e := s.checkIdentity(corr, req.GetConversationId()); e != nil {
		return e
	}
	if s.deleting != nil {
		return errNoConversation(corr, s.identity)
	}
	if e := s.ensureLoaded(corr); e != nil {
		return e
	}
	if !s.exists || s.state.OwnerID != req.GetUserId() {
		return errNoConversation(corr, s.identity)
	}
	title := req.GetTitle()
	if title == "" {
		return errorReply(actorpb.Code_CODE_INVALID_ARGUMENT, corr, "title is required")
	}
	wctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	err := s.rt.deps.Conversations.UpdateTitle(wctx, s.identity, title)
	if errors.Is(err, persistence.ErrNotFound) {
		// Deleted behind the session's back (its owner's account went): forget it.
		s.unload()
		return errNoConversation(corr, s.identity)
	}
	if err != nil {
		s.log.Error("rename failed", "conversation_id", s.identity, "correlation_id", corr, "error", err)
		return errorReply(actorpb.Code_CODE_UNAVAILABLE, corr, "conversation %s cannot be renamed now", s.identity)
	}
	s.state.Title = title
	s.unsaved = max(s.unsaved, 1)
	return &actorpb.ConversationInfo{ConversationId: s.identity, OwnerId: s.state.OwnerID, AgentId: s.state.AgentID,
		Title: s.state.Title, Turns: s.state.Turns, LastSeq: s.state.LastSeq, Busy: s.running != nil}
}

// onDelete erases the conversation for its owner. Queued turns are refused at once; a
// running turn is cancelled, and the delete waits for it to end, so that no write of the
// turn lands after the delete. The answer is sent when the delete is done.
func (s *session) onDelete(ctx actor.Context, req *actorpb.DeleteConversation) {
	corr := req.GetCorrelationId()
	reply := func(r any) { ctx.Respond(r) }
	if e := s.checkIdentity(corr, req.GetConversationId()); e != nil {
		reply(e)
		return
	}
	if e := s.ensureLoaded(corr); e != nil {
		reply(e)
		return
	}
	// A conversation in creation by its first turn is its owner's to delete too.
	if s.state.OwnerID == "" || s.state.OwnerID != req.GetUserId() {
		reply(errNoConversation(corr, s.identity))
		return
	}
	s.deleting = append(s.deleting, ctx.Sender())
	if s.deleteCorr == "" {
		s.deleteCorr = corr
	}
	for _, t := range s.queue {
		s.answer(ctx, t, errorReply(actorpb.Code_CODE_NOT_FOUND, t.req.GetCorrelationId(), "conversation %s was deleted", s.identity))
	}
	s.queue = nil
	if s.running != nil {
		s.running.cancel()
		return
	}
	s.finishDelete(ctx)
}

// finishDelete deletes the conversation (with its messages, their feedback and its
// snapshot, leaving a tombstone) and answers the requesters of the delete. The session
// then holds the state of a conversation that does not exist, which no turn can create
// again under this ID.
func (s *session) finishDelete(ctx actor.Context) {
	waiters, corr := s.deleting, s.deleteCorr
	s.deleting, s.deleteCorr = nil, ""
	wctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	var reply any = &actorpb.Ack{}
	err := s.rt.deps.Conversations.Delete(wctx, s.identity)
	switch {
	case err == nil, errors.Is(err, persistence.ErrNotFound):
		// Not found: the first turn never created it, or the owner's account went.
		if s.loaded {
			s.state, s.version, s.exists, s.unsaved = sessionState{}, 0, false, 0
		}
		s.log.Info("conversation deleted", "conversation_id", s.identity, "correlation_id", corr)
	default:
		s.log.Error("conversation delete failed", "conversation_id", s.identity, "correlation_id", corr, "error", err)
		s.unload()
		reply = errorReply(actorpb.Code_CODE_UNAVAILABLE, corr, "conversation %s cannot be deleted now; retry", s.identity)
	}
	for _, w := range waiters {
		if w != nil {
			ctx.Send(w, reply)
		}
	}
}

// passivateIfIdle saves a final snapshot when the state is ahead of the saved one,
// and the conversation's updated_at when it trails the last turn, and stops the
// session, unless a turn is running (then it passivates when the turn ends).
func (s *session) passivateIfIdle(ctx actor.Context) {
	if s.running != nil || len(s.queue) > 0 || s.stopped {
		return
	}
	if s.loaded && s.exists && s.unsaved > 0 {
		wctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		err := s.rt.saveSnapshot(wctx, s.identity, s.state, s.version)
		if err != nil {
			// Passivation goes on: the log holds every acknowledged message, and the
			// next activation rebuilds the tail from it.
			s.log.Warn("final snapshot failed", "conversation_id", s.identity, "error", err)
		}
		if s.active.After(s.touched) {
			if err := s.rt.deps.Writer.Submit(wctx, persistence.ConversationTouch(s.identity, s.active)); err != nil {
				s.log.Warn("final conversation touch failed", "conversation_id", s.identity, "error", err)
			}
		}
		cancel()
	}
	s.rt.metrics.passivations.WithLabelValues(KindSession).Inc()
	s.stopped = true
	for _, p := range s.passivated {
		if p != nil {
			ctx.Send(p, &actorpb.Ack{})
		}
	}
	ctx.Stop(ctx.Self())
}

// onTurnFailed handles a turn that panicked. A fenced turn (another activation won a
// write) stops the whole session: its state is stale, and only a fresh activation may
// continue. Any other failure answers the turn's requesters with an error and drops the
// state, since the log may hold part of the turn. Either way the turn strategy logs and
// counts the failure, as it did for the turn child a turn used to run in.
func (s *session) onTurnFailed(ctx actor.Context, f turnFailed) {
	t := s.running
	if t == nil || t.job != f.job {
		return
	}
	s.rt.turns.HandleFailure(ctx.ActorSystem(), stoppedTurn{}, turnPID(ctx.Self()), actor.NewRestartStatistics(), f.reason, t.req)
	if supervisors.Classify(f.reason, failureClassifiers...) == supervisors.KindConflict {
		s.log.Warn("session fenced out by another activation", "conversation_id", s.identity,
			"correlation_id", t.req.GetCorrelationId(), "reason", fmt.Sprint(f.reason))
		s.rt.metrics.fenced.WithLabelValues(KindSession).Inc()
		s.failAll(actorpb.Code_CODE_UNAVAILABLE, "the conversation moved to another activation; retry with the same idempotency key")
		s.unload()
		s.stopped = true
		ctx.Stop(ctx.Self())
		return
	}
	s.log.Error("turn failed", "conversation_id", s.identity, "correlation_id", t.req.GetCorrelationId(),
		"reason", fmt.Sprint(f.reason), "stack", f.stack)
	s.running = nil
	t.cancel()
	s.answer(ctx, t, errorReply(actorpb.Code_CODE_INTERNAL, t.req.GetCorrelationId(), "the turn failed"))
	s.unload()
	s.startNext(ctx)
}
