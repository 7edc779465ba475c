package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/internal/logging"
)

// AgentKind is the grain kind of an agent (identity = agent ID).
const AgentKind = "agent"

// Completion is one stateless reply: an agent answers Content with History
// as the conversation so far, and nothing is stored.
type Completion struct {
	UserID  string
	AgentID string
	// History holds the earlier messages, oldest first (roles "user" and
	// "assistant").
	History []*actorpb.HistoryEntry
	Content string
	// Options override the agent's model settings; nil keeps them.
	Options *actorpb.ModelOptions
}

// CompletionResult is a stateless reply.
type CompletionResult struct {
	Response string
	Usage    Usage
	// Model is the "provider:model" that answered; StopReason the model's
	// reason for stopping ("stop", "length", ...), empty when unknown.
	Model, StopReason string
}

// CompletionBackend runs the turns of the OpenAI-compatible endpoint:
// stateless replies straight from an agent grain, and turns in a kowai
// conversation through its session (ChatBackend.Send). onDelta is as in
// ChatBackend.
type CompletionBackend interface {
	ChatBackend
	Complete(ctx context.Context, c Completion, onDelta func(delta string)) (CompletionResult, error)
}

var _ CompletionBackend = (*ClusterChat)(nil)

// Complete implements CompletionBackend: it asks the agent grain for a
// reply with the client's history, without a conversation, so nothing is
// written. The agent's worker pool, budgets and metrics apply as to any
// reply. When ctx ends first the agent is told to stop paying for the model.
func (cc *ClusterChat) Complete(ctx context.Context, c Completion, onDelta func(string)) (CompletionResult, error) {
	turnID := uuid.NewString()
	req := &actorpb.GenerateReply{CorrelationId: logging.CorrelationID(ctx), AgentId: c.AgentID, TurnId: turnID,
		UserId: c.UserID, Content: c.Content, History: c.History, Options: c.Options}
	stream, err := cc.openDeltas(ctx, turnID, onDelta)
	if err != nil {
		return CompletionResult{}, err
	}
	defer stream.close()
	if stream != nil {
		req.Stream, req.StreamId = stream.target, stream.id
	}
	res, err := actorpb.As[*actorpb.ReplyResult](cc.Grains.Call(ctx, AgentKind, c.AgentID, req))
	if err != nil {
		if ctx.Err() != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			if _, cerr := cc.Grains.Call(cctx, AgentKind, c.AgentID, &actorpb.CancelTurn{CorrelationId: req.CorrelationId, TurnId: turnID}); cerr != nil {
				// The reply's worker still stops at its own deadline.
				err = errors.Join(err, fmt.Errorf("cancelling the reply: %w", cerr))
			}
		}
		return CompletionResult{}, grainError(err)
	}
	stream.tail()
	u := res.GetUsage()
	return CompletionResult{Response: res.GetResponse(), Model: res.GetModel(), StopReason: res.GetStopReason(),
		Usage: Usage{PromptTokens: int(u.GetPromptTokens()), CompletionTokens: int(u.GetCompletionTokens()),
			CostUSD: u.GetCostUsd(), CacheHit: u.GetCacheHit()}}, nil
}
