package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/supervisors"
)

// turnJob is one chat turn as its goroutine runs it: it works on a copy of the session's
// state and returns the state after the turn, which the session adopts.
type turnJob struct {
	rt      *Runtime
	convID  string
	req     *actorpb.SendMessage
	state   sessionState
	version int64
	unsaved int
	// touched is when the session last moved the conversation's updated_at.
	touched time.Time
	exists  bool
	ctx     context.Context
}

// turnOutcome is what a turn tells its session: the answer, and the state to adopt.
type turnOutcome struct {
	result *actorpb.TurnResult
	err    *actorpb.ErrorReply
	// adopt: state, version, unsaved and touched are the session's new state, and
	// active is when the turn committed.
	adopt           bool
	state           sessionState
	version         int64
	unsaved         int
	touched, active time.Time
	// reload: the turn failed in a way that leaves the state unknown.
	reload bool
}

// turnDone carries a turn's outcome to its session; it never leaves the node.
type turnDone struct {
	job     *turnJob
	outcome turnOutcome
}

// turnFailed tells a session that its turn panicked; it never leaves the node.
type turnFailed struct {
	job    *turnJob
	reason any
	stack  string
}

// runTurn runs job and reports its outcome to the session self, or its panic: a fenced
// write panics with a conflict Failure, which the session's onTurnFailed turns into a
// stop of the whole session.
func runTurn(root *actor.RootContext, self *actor.PID, job *turnJob) {
	defer func() {
		if r := recover(); r != nil {
			root.Send(self, turnFailed{job: job, reason: r, stack: string(debug.Stack())})
		}
	}()
	root.Send(self, turnDone{job: job, outcome: job.traced()})
}

// turnPID names a session's running turn in supervision logs, metrics and events.
func turnPID(session *actor.PID) *actor.PID {
	return actor.NewPID(session.GetAddress(), session.GetId()+"/turn")
}

// stoppedTurn is the supervisor the turn strategy is given for a failed turn: the turn
// strategy always stops a failed turn, and a turn that panicked has already stopped.
type stoppedTurn struct{}

var _ actor.Supervisor = stoppedTurn{}

func (stoppedTurn) Children() []*actor.PID                  { return nil }
func (stoppedTurn) EscalateFailure(reason any, message any) {}
func (stoppedTurn) RestartChildren(...*actor.PID)           {}
func (stoppedTurn) StopChildren(...*actor.PID)              {}
func (stoppedTurn) ResumeChildren(...*actor.PID)            {}

// fenced stops the turn: another activation of the conversation wrote first.
func fenced(what string, err error) {
	panic(supervisors.NewFailure(supervisors.KindConflict, fmt.Errorf("%s: %w: %w", what, errFenced, err)))
}

func (j *turnJob) fail(code actorpb.Code, format string, args ...any) turnOutcome {
	return turnOutcome{err: errorReply(code, j.req.GetCorrelationId(), format, args...)}
}

// unavailable reports a failed write or read that may have left part of the turn in
// the log; the session reloads before its next turn.
func (j *turnJob) unavailable(what string, err error) turnOutcome {
	j.rt.log.ErrorContext(j.ctx, "turn failed", "conversation_id", j.convID, "step", what, "correlation_id", j.req.GetCorrelationId(), "error", err)
	o := j.fail(actorpb.Code_CODE_UNAVAILABLE, "the conversation's storage is unavailable; retry with the same idempotency key")
	o.reload = true
	return o
}

// traced is run inside the turn's span when tracing is on. The span is a child of the
// SendMessage's grain server span (the turn's context carries it); a fenced turn panics
// through it, marked failed.
func (j *turnJob) traced() turnOutcome {
	tr := j.rt.tracer
	if tr == nil {
		return j.run()
	}
	var span trace.Span
	j.ctx, span = tr.Start(j.ctx, "chat.turn", trace.WithAttributes(
		attribute.String("kowai.conversation.id", j.convID),
		attribute.Bool("kowai.conversation.new", !j.exists)))
	defer func() {
		if r := recover(); r != nil {
			span.SetStatus(codes.Error, fmt.Sprint(r))
			span.End()
			panic(r)
		}
		span.End()
	}()
	o := j.run()
	switch {
	case o.err != nil:
		span.SetAttributes(attribute.String("kowai.turn.error_code", o.err.GetCode().String()))
		span.SetStatus(codes.Error, o.err.GetMessage())
	case o.result != nil:
		span.SetAttributes(attribute.String("kowai.agent.id", o.result.GetAgentId()), attribute.Int64("kowai.message.seq", o.result.GetSeq()),
			attribute.Bool("kowai.turn.replayed", o.result.GetReplayed()))
	}
	return o
}

// run is the turn, in four steps: answer from the log when the idempotency key has a
// stored result (stored), append the user's message, with the conversation's row on a
// first turn, while the agent starts on it (appendUser, callAgent), and commit the
// reply or the recorded failure with, when due, the snapshot and the conversation's
// updated_at (commit); only then produce the answer.
func (j *turnJob) run() turnOutcome {
	var hash string
	if j.req.GetIdempotencyKey() != "" {
		hash = requestHash(j.req)
	}
	user, o := j.stored(hash)
	if o != nil {
		return *o
	}
	// The user's message commits while the agent starts on it: the first token does
	// not wait for the database. Nothing of the turn is answered or committed before
	// the message is durable (the reply's commit and the answer wait for it), and when
	// its write fails the agent is stopped and its reply dropped.
	//
	// One context serves both: the agent call ends with it when the append fails,
	// and the append is withdrawn with it once the call has returned, when the call
	// needs it no more.
	callCtx, stop := context.WithCancel(j.ctx)
	defer stop()
	var (
		userMeta messageMeta
		appended chan error
		withdraw = stop
	)
	if user == nil {
		user, userMeta, appended, withdraw = j.appendUser(callCtx, hash, stop)
	}
	reply, callErr := j.callAgent(callCtx, user)
	c := replyCommit{user: user, hash: hash, reply: reply, callErr: callErr}
	if appended != nil {
		// A reply that comes back before the writer took the user's message (a fast
		// model within the grace, a busy writer) withdraws the message and commits it
		// with the reply: one commit for the turn instead of two in a row.
		withdraw()
		switch err := <-appended; {
		case errors.Is(err, persistence.ErrWithdrawn):
			c.withUser = true
		case err != nil:
			return j.appendFailed("append user message", err)
		}
		c.added, c.userEntry = 1, entryWith(*user, userMeta)
	}
	return j.commit(c)
}

// replyCommit is what commit writes: the reply to user (or the failure callErr), after
// the entry added to the log in this turn; withUser when user's message goes in the
// same write (and, on a first turn, the conversation's row).
type replyCommit struct {
	user *persistence.Message
	hash string
	// added is how many entries this turn added to the log before the reply: 1,
	// the user's message (userEntry), or 0. Held by value: a replyCommit stays on
	// the stack.
	added     int
	userEntry tailEntry
	withUser  bool
	reply     *actorpb.ReplyResult
	callErr   error
}

// stored looks the turn's idempotency key up in the log, past the tail the session
// checked already: it returns the outcome when the key's reply is stored (or names
// another request), or the user's message when an earlier attempt stored it but not a
// reply; nil and nil when the turn starts afresh. A conversation this turn creates,
// and a key the gateway minted for this request just now, name nothing stored.
func (j *turnJob) stored(hash string) (*persistence.Message, *turnOutcome) {
	req := j.req
	key := req.GetIdempotencyKey()
	if key == "" || !j.exists || req.GetFreshKey() {
		return nil, nil
	}
	corr := req.GetCorrelationId()
	reply, err := j.rt.deps.Messages.GetByIdempotencyKey(j.ctx, j.convID, key+replyKeySuffix)
	if err == nil {
		e := entryOf(reply)
		if e.Hash() != "" && e.Hash() != hash {
			return nil, &turnOutcome{err: errIdempotencyMismatch(corr, key)}
		}
		return nil, &turnOutcome{result: &actorpb.TurnResult{ConversationId: j.convID, MessageId: reply.ID, Seq: reply.Seq,
			Response: reply.Content, Usage: usageOrZero(e.Usage()), AgentId: j.state.AgentID, UserMessageId: e.ReplyTo(), Replayed: true}}
	} else if !errors.Is(err, persistence.ErrNotFound) {
		o := j.unavailable("find stored reply", err)
		return nil, &o
	}
	m, err := j.rt.deps.Messages.GetByIdempotencyKey(j.ctx, j.convID, key)
	switch {
	case err == nil:
		if e := entryOf(m); e.Hash() != "" && e.Hash() != hash {
			return nil, &turnOutcome{err: errIdempotencyMismatch(corr, key)}
		}
		// An earlier attempt stored the message but not a reply: answer it now.
		return &m, nil
	case errors.Is(err, persistence.ErrNotFound):
		return nil, nil
	}
	o := j.unavailable("find stored message", err)
	return nil, &o
}

// appendUser starts the durable append of the user's message, in the same write as
// the conversation's row when the turn is its first (one group commit for both), under
// ctx. The message goes to the writer only after Deps.UserMessageGrace, so that a
// reply back by then takes it into its own commit. The returned channel answers once
// the write is done, or withdrawn: withdraw stops a write still held back (the channel
// then answers an error wrapping ErrWithdrawn) and calls stop, whose end of ctx
// withdraws the write while the writer has not taken it. A failed write calls stop,
// which ends the agent call.
func (j *turnJob) appendUser(ctx context.Context, hash string, stop context.CancelFunc) (*persistence.Message, messageMeta, chan error, func()) {
	req := j.req
	meta := messageMeta{CorrelationID: req.GetCorrelationId(), RequestHash: hash}
	m := &persistence.Message{ID: newID(), ConversationID: j.convID, Seq: j.state.LastSeq + 1, Role: roleUser,
		Content: req.GetContent(), Metadata: encodeMeta(meta), IdempotencyKey: req.GetIdempotencyKey(), CreatedAt: j.rt.deps.Now()}
	op := j.withCreate(persistence.MessagesInsert(*m), m.CreatedAt)
	done := make(chan error, 1)
	submit := func() {
		err := j.rt.deps.Writer.Submit(ctx, op)
		if err != nil && !errors.Is(err, persistence.ErrWithdrawn) {
			stop()
		}
		done <- err
	}
	if j.rt.deps.UserMessageGrace < 0 {
		go submit()
		return m, meta, done, stop
	}
	held := time.AfterFunc(j.rt.deps.UserMessageGrace, submit)
	return m, meta, done, func() {
		if held.Stop() {
			done <- errHeldBack
		}
		stop()
	}
}

// errHeldBack answers the append of a user's message withdrawn before its grace ended:
// it never reached the writer.
var errHeldBack = fmt.Errorf("actors: user message held back for the reply's commit: %w", persistence.ErrWithdrawn)

// withCreate is op preceded by the creation of the conversation's row when the turn is
// its first.
func (j *turnJob) withCreate(op persistence.Op, at time.Time) persistence.Op {
	if j.exists {
		return op
	}
	st := j.state
	return persistence.Ops{persistence.ConversationCreate(persistence.Conversation{ID: j.convID, OwnerID: st.OwnerID,
		AgentID: st.AgentID, Title: st.Title, CreatedAt: at}), op}
}

// appendFailed is the outcome of a turn whose user message (and, on a first turn, the
// conversation's row) could not be written by what. A write another activation won
// fences the session; a deleted conversation's ID or an unknown owner are answered.
func (j *turnJob) appendFailed(what string, err error) turnOutcome {
	if !j.exists {
		switch {
		case errors.Is(err, persistence.ErrGone):
			// A deleted conversation is never created again under its ID.
			return j.fail(actorpb.Code_CODE_NOT_FOUND, "conversation %s does not exist", j.convID)
		case errors.Is(err, persistence.ErrNoOwner):
			return j.fail(actorpb.Code_CODE_INVALID_ARGUMENT, "user %s does not exist", j.state.OwnerID)
		}
	}
	if isFencing(err) {
		fenced(what, err)
	}
	return j.unavailable(what, err)
}

// commit makes the turn durable: the reply (or the recorded failure), with the user's
// message when c says so, in one group commit with, when due, the snapshot and the
// conversation's updated_at; and the state after the turn.
func (j *turnJob) commit(c replyCommit) turnOutcome {
	user, hash, reply, callErr := c.user, c.hash, c.reply, c.callErr
	st := j.state
	corr, key := j.req.GetCorrelationId(), j.req.GetIdempotencyKey()
	now := j.rt.deps.Now()
	out := persistence.Message{ID: newID(), ConversationID: j.convID, Seq: st.LastSeq + int64(c.added) + 1, CreatedAt: now}
	meta := messageMeta{CorrelationID: corr, ReplyTo: user.ID, AgentID: st.AgentID, RequestHash: hash}
	var failure *actorpb.ErrorReply
	if callErr == nil {
		out.Role, out.Content, out.Variant = roleAssistant, reply.GetResponse(), reply.GetVariant()
		if key != "" {
			out.IdempotencyKey = key + replyKeySuffix
		}
		meta.Model, meta.Usage = reply.GetModel(), usageOrZero(reply.GetUsage())
		if d := reply.GetDetailsJson(); d != "" {
			meta.Details = json.RawMessage(d)
		}
		st.Turns++
		if a := reply.GetSettings(); a != nil {
			st = st.withSettings(a)
		}
	} else {
		failure = j.failureOf(callErr)
		out.Role, out.Variant = roleSystem, failure.GetVariant()
		out.Content = "No reply: " + failure.GetMessage()
		meta.Error = &errorRecord{Code: failure.GetCode().String(), Message: failure.GetMessage()}
	}
	out.Metadata = encodeMeta(meta)
	// One copy of the tail per turn, for the user's message and the reply together;
	// the two entries are copied into the tail from the stack.
	turnEntries := [2]tailEntry{c.userEntry, entryWith(out, meta)}
	st = st.with(st.tailWindow(j.rt.deps.HistoryWindow), turnEntries[1-c.added:]...)

	o := turnOutcome{adopt: true, state: st, version: j.version, unsaved: j.unsaved + c.added + 1, touched: j.touched, active: now}
	write := persistence.Ops{persistence.MessagesInsert(out)}
	if c.withUser {
		write[0] = j.withCreate(persistence.MessagesInsert(*user, out), user.CreatedAt)
	}
	if o.unsaved >= j.rt.deps.SnapshotLag {
		snap, err := j.rt.snapshotOf(j.convID, st, j.version)
		if err != nil {
			return j.unavailable("encode snapshot", err)
		}
		write = append(write, persistence.SnapshotSave(snap, j.version))
		o.version, o.unsaved = snap.Version, 0
	}
	if now.Sub(o.touched) >= touchInterval {
		write = append(write, persistence.ConversationTouch(j.convID, now))
		o.touched = now
	}
	// The reply is committed even when the turn was cancelled meanwhile; the commit
	// keeps the turn's values (its span, for the batch's trace). One commit makes the
	// reply durable, and with it the snapshot: the snapshot's compare-and-swap fences
	// the reply as much as the log's unique seq does.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(j.ctx), writeTimeout)
	defer cancel()
	if err := j.rt.deps.Writer.Submit(wctx, write); err != nil {
		if c.withUser {
			return j.appendFailed("commit user message and reply", err)
		}
		if isFencing(err) {
			fenced("commit reply", err)
		}
		return j.unavailable("commit reply", err)
	}
	if failure != nil {
		o.err = failure
		return o
	}
	o.result = &actorpb.TurnResult{ConversationId: j.convID, MessageId: out.ID, Seq: out.Seq, Response: out.Content,
		Usage: reply.GetUsage(), AgentId: st.AgentID, UserMessageId: user.ID, StopReason: reply.GetStopReason()}
	return o
}

// callAgent asks the conversation's agent for a reply with ctx (the turn's, or less).
// When ctx ends (the turn is interrupted or cancelled, or its user message could not be
// stored), the agent is told too, so its worker stops paying for the model.
func (j *turnJob) callAgent(ctx context.Context, user *persistence.Message) (*actorpb.ReplyResult, error) {
	caller := j.rt.callerOrNil()
	if caller == nil {
		return nil, actorpb.NewError(actorpb.Code_CODE_UNAVAILABLE, j.req.GetCorrelationId(), "the grain client is not set").Err()
	}
	st := j.state
	// The history is what the tail holds once the user's message joins it, without that
	// message: at most the tail's window less one.
	history := st.history(user.ID)
	if n := st.tailWindow(j.rt.deps.HistoryWindow) - 1; len(history) > n {
		history = history[len(history)-n:]
	}
	req := &actorpb.GenerateReply{CorrelationId: j.req.GetCorrelationId(), AgentId: st.AgentID, ConversationId: j.convID,
		TurnId: user.ID, UserId: j.req.GetUserId(), Content: user.Content, History: history,
		Summary: st.Summary, Stream: j.req.GetStream(), StreamId: j.req.GetStreamId(), Options: j.req.GetOptions(),
		KnownVersion: st.AgentVersion, NoPremium: j.req.GetNoPremium()}
	reply, err := actorpb.As[*actorpb.ReplyResult](caller.Call(ctx, KindAgent, st.AgentID, req))
	if err != nil && ctx.Err() != nil {
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, cerr := caller.Call(cctx, KindAgent, st.AgentID, &actorpb.CancelTurn{CorrelationId: j.req.GetCorrelationId(),
			ConversationId: j.convID, TurnId: user.ID}); cerr != nil {
			j.rt.log.Warn("cancel of agent reply failed", "conversation_id", j.convID, "agent_id", st.AgentID, "error", cerr)
		}
	}
	return reply, err
}

// failureOf is the error answered for a failed agent call. The turn's own context
// decides first: an interrupted or expired turn is cancelled or timed out whatever the
// transport reported; a grain error keeps its code; anything else (no answer from the
// agent's node) is unavailable.
func (j *turnJob) failureOf(err error) *actorpb.ErrorReply {
	corr := j.req.GetCorrelationId()
	var ae *actorpb.Error
	switch {
	case errors.Is(j.ctx.Err(), context.Canceled):
		return actorpb.NewError(actorpb.Code_CODE_CANCELED, corr, "the reply was cancelled")
	case errors.Is(j.ctx.Err(), context.DeadlineExceeded):
		return actorpb.NewError(actorpb.Code_CODE_TIMEOUT, corr, "the reply did not finish in time")
	case errors.As(err, &ae):
		e := actorpb.NewError(ae.Code, corr, ae.Message)
		e.Variant = ae.Variant
		return e
	}
	j.rt.log.WarnContext(j.ctx, "agent call failed", "conversation_id", j.convID, "correlation_id", corr, "error", err)
	return actorpb.NewError(actorpb.Code_CODE_UNAVAILABLE, corr, "the agent did not answer; retry with the same idempotency key")
}

// snapshotOf is st as the session's snapshot, replacing version expected. A session
// snapshot is versioned by the seq of the last message it covers, which grows with
// every save as a compare-and-swap version must, and lets an activation check that
// the log has nothing past the snapshot in the same read (persistence LoadSession).
// A stored version at or past that seq (a snapshot versioned otherwise) is simply
// exceeded, and activation then reads the log's tail to be sure.
func (rt *Runtime) snapshotOf(convID string, st sessionState, expected int64) (persistence.Snapshot, error) {
	b, err := encodeState(st)
	if err != nil {
		return persistence.Snapshot{}, err
	}
	// ConversationID ties the snapshot to its conversation: erasing the conversation
	// erases it, and this grain cannot save it again afterwards.
	return persistence.Snapshot{Kind: KindSession, Identity: convID, ConversationID: convID,
		Version: max(st.LastSeq, expected+1), State: b, UpdatedAt: rt.deps.Now()}, nil
}

// saveSnapshot stores st as the session's snapshot, replacing version expected.
func (rt *Runtime) saveSnapshot(ctx context.Context, convID string, st sessionState, expected int64) error {
	snap, err := rt.snapshotOf(convID, st, expected)
	if err != nil {
		return err
	}
	return rt.deps.Writer.SaveSnapshot(ctx, snap, expected)
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }
