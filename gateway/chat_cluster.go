package gateway

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/cluster"
	"github.com/kowai/kowai/cluster/clusterpb"
	"github.com/kowai/kowai/internal/logging"
)

// SessionKind is the grain kind that owns a conversation.
const SessionKind = "session"

// streamTail bounds the wait for a stream's last deltas after the turn's
// result arrived: deltas travel straight from the model worker, the result
// through the session grain, so the last few may land just after it.
const streamTail = 2 * time.Second

// Grains is what ClusterChat needs of the cluster: calls and inboxes.
type Grains interface {
	cluster.GrainCaller
	NewInbox(buffer int) (*cluster.Inbox, error)
}

// ClusterChat is the ChatBackend that sends turns to session grains.
type ClusterChat struct {
	Grains Grains
}

var (
	_ ChatBackend         = (*ClusterChat)(nil)
	_ ConversationBackend = (*ClusterChat)(nil)
)

// RenameConversation implements ConversationBackend.
func (cc *ClusterChat) RenameConversation(ctx context.Context, userID, conversationID, title string) error {
	_, err := actorpb.As[*actorpb.ConversationInfo](cc.Grains.Call(ctx, SessionKind, conversationID, &actorpb.RenameConversation{
		CorrelationId: logging.CorrelationID(ctx), ConversationId: conversationID, UserId: userID, Title: title}))
	return grainError(err)
}

// DeleteConversation implements ConversationBackend.
func (cc *ClusterChat) DeleteConversation(ctx context.Context, userID, conversationID string) error {
	_, err := actorpb.As[*actorpb.Ack](cc.Grains.Call(ctx, SessionKind, conversationID, &actorpb.DeleteConversation{
		CorrelationId: logging.CorrelationID(ctx), ConversationId: conversationID, UserId: userID}))
	return grainError(err)
}

// CancelTurn implements ConversationBackend.
func (cc *ClusterChat) CancelTurn(ctx context.Context, userID, conversationID, turnID string) (bool, error) {
	res, err := actorpb.As[*actorpb.CancelResult](cc.Grains.Call(ctx, SessionKind, conversationID, &actorpb.CancelTurn{
		CorrelationId: logging.CorrelationID(ctx), ConversationId: conversationID, UserId: userID, TurnId: turnID}))
	if err != nil {
		return false, grainError(err)
	}
	return res.GetCanceled(), nil
}

// Send implements ChatBackend.
func (cc *ClusterChat) Send(ctx context.Context, t ChatTurn, onDelta func(string)) (ChatReply, error) {
	corr := logging.CorrelationID(ctx)
	if t.IdempotencyKey != "" {
		ctx = clusterpb.WithIdempotencyKey(ctx, t.IdempotencyKey)
	}
	req := &actorpb.SendMessage{
		CorrelationId:  corr,
		IdempotencyKey: t.IdempotencyKey,
		ConversationId: t.ConversationID,
		UserId:         t.UserID,
		AgentId:        t.AgentID,
		Content:        t.Content,
		MustExist:      t.MustExist,
		Fresh:          t.Fresh,
		FreshKey:       t.FreshKey,
		Options:        t.Options,
		NoPremium:      t.NoPremium,
	}
	var streamID string
	if onDelta != nil {
		// Only a streamed reply has a stream to name.
		streamID = uuid.NewString()
	}
	stream, err := cc.openDeltas(ctx, streamID, onDelta)
	if err != nil {
		return ChatReply{}, err
	}
	// No delta may reach the caller after Send returns.
	defer stream.close()
	if stream != nil {
		req.Stream, req.StreamId = stream.target, stream.id
	}
	res, err := actorpb.As[*actorpb.TurnResult](cc.Grains.Call(ctx, SessionKind, t.ConversationID, req))
	if err != nil {
		return ChatReply{}, grainError(err)
	}
	if !res.GetReplayed() {
		stream.tail()
	}
	u := res.GetUsage()
	return ChatReply{
		ConversationID: res.GetConversationId(),
		MessageID:      res.GetMessageId(),
		Response:       res.GetResponse(),
		StopReason:     res.GetStopReason(),
		Usage: Usage{PromptTokens: int(u.GetPromptTokens()), CompletionTokens: int(u.GetCompletionTokens()),
			CostUSD: u.GetCostUsd(), CacheHit: u.GetCacheHit()},
	}, nil
}

// deltaStream forwards the token deltas of one reply from an inbox to the
// caller's onDelta. A nil *deltaStream (no onDelta) does nothing.
type deltaStream struct {
	id     string
	target *actorpb.StreamTarget
	inbox  *cluster.Inbox
	stop   context.CancelFunc
	done   chan struct{}
}

// openDeltas opens an inbox for the deltas of stream id and forwards them
// to onDelta until the stream ends, ctx ends or close is called. It returns
// nil when onDelta is nil: the reply is not streamed.
func (cc *ClusterChat) openDeltas(ctx context.Context, id string, onDelta func(string)) (*deltaStream, error) {
	if onDelta == nil {
		return nil, nil
	}
	inbox, err := cc.Grains.NewInbox(64)
	if err != nil {
		return nil, grainError(err)
	}
	fwdCtx, stop := context.WithCancel(ctx)
	d := &deltaStream{id: id, target: &actorpb.StreamTarget{Address: inbox.Address(), Id: inbox.ID()},
		inbox: inbox, stop: stop, done: make(chan struct{})}
	go forwardStream(fwdCtx, inbox, id, onDelta, d.done)
	return d, nil
}

// tail waits, at most streamTail, for the stream's end once the reply's
// result has arrived.
func (d *deltaStream) tail() {
	if d == nil {
		return
	}
	select {
	case <-d.done:
	case <-time.After(streamTail):
	}
}

// close stops forwarding and the inbox; no delta reaches onDelta after it
// returns.
func (d *deltaStream) close() {
	if d == nil {
		return
	}
	d.stop()
	<-d.done
	_ = d.inbox.Close() // Inbox.Close always returns nil.
}

// forwardStream hands the deltas of one stream to onDelta in order until
// its StreamEnd arrives or ctx ends.
func forwardStream(ctx context.Context, inbox *cluster.Inbox, streamID string, onDelta func(string), done chan<- struct{}) {
	defer close(done)
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-inbox.C():
			switch m := m.(type) {
			case *actorpb.TokenDelta:
				if m.GetStreamId() == streamID {
					onDelta(m.GetDelta())
				}
			case *actorpb.StreamEnd:
				if m.GetStreamId() == streamID {
					return
				}
			}
		}
	}
}

// grainStatus maps the actors' error codes to HTTP.
var grainStatus = map[actorpb.Code]int{
	actorpb.Code_CODE_FORBIDDEN:        http.StatusForbidden,
	actorpb.Code_CODE_NOT_FOUND:        http.StatusNotFound,
	actorpb.Code_CODE_CONFLICT:         http.StatusConflict,
	actorpb.Code_CODE_UNAVAILABLE:      http.StatusServiceUnavailable,
	actorpb.Code_CODE_MODEL_FAILURE:    http.StatusBadGateway,
	actorpb.Code_CODE_TIMEOUT:          http.StatusGatewayTimeout,
	actorpb.Code_CODE_BUDGET_EXCEEDED:  http.StatusPaymentRequired,
	actorpb.Code_CODE_BUSY:             http.StatusConflict,
	actorpb.Code_CODE_CANCELED:         http.StatusConflict,
	actorpb.Code_CODE_INVALID_ARGUMENT: http.StatusBadRequest,

	actorpb.Code_CODE_IDEMPOTENCY_MISMATCH: http.StatusUnprocessableEntity,
}

// grainError turns a grain call's failure into the client's problem: the
// grain's own message for refusals it reports, 503/504 for a cluster that
// cannot reach the grain, and an opaque 500 for the rest.
func grainError(err error) error {
	if err == nil {
		return nil
	}
	var ge *actorpb.Error
	if errors.As(err, &ge) {
		if status, ok := grainStatus[ge.Code]; ok {
			e := NewError(status, ge.Message)
			if status == http.StatusServiceUnavailable {
				e.Headers = map[string]string{"Retry-After": "1"}
			}
			e.Err = err
			return e
		}
		return err
	}
	switch {
	case errors.Is(err, cluster.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return &Error{Status: http.StatusGatewayTimeout, Title: http.StatusText(http.StatusGatewayTimeout),
			Detail: "the conversation did not answer in time; retry with the same Idempotency-Key", Err: err}
	case errors.Is(err, cluster.ErrUnavailable):
		return &Error{Status: http.StatusServiceUnavailable, Title: http.StatusText(http.StatusServiceUnavailable),
			Detail:  "the conversation is moving between nodes; retry with the same Idempotency-Key",
			Headers: map[string]string{"Retry-After": "1"}, Err: err}
	}
	return err
}
