package actors

import (
	"context"
	"time"

	"github.com/tmc/langchaingo/llms"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/budgets"
	"github.com/kowai/kowai/signatures/lm"
)

// BudgetGuard holds users to their spending limits (a *budgets.Enforcer in
// production): before every model call of a reply it checks the user's budget and
// reserves the call's estimate in one atomic step; the reservation is settled with
// the call's usage after it, or released when it failed.
type BudgetGuard interface {
	// Reserve returns an error matching lm.ErrBudgetExceeded once the user's budget
	// is used up; else it holds tokens and usd against it until the reservation is
	// settled or released (a nil reservation needs neither).
	Reserve(ctx context.Context, userID string, tokens int64, usd float64) (*budgets.Reservation, error)
}

// budgetModel is the model of one reply with its user's budget around every
// call: a spent budget refuses the call before the model is asked, and every
// answered call is charged. The refusal fails the reply with a budget error,
// which the worker's supervisor classifies as its own kind (the worker stops;
// the session keeps the user's message and records the refusal).
type budgetModel struct {
	lm.LM
	rt    *Runtime
	guard BudgetGuard
	req   *actorpb.GenerateReply
	// price is the model's, for the estimate of a call's cost.
	price lm.ModelInfo
}

// defaultCompletionEstimate is the completion tokens a call is assumed to use when
// it sets no max_tokens; the reservation is settled with the actual usage.
const defaultCompletionEstimate = 512

// chargeTimeout bounds the recording of one call's usage.
const chargeTimeout = 5 * time.Second

// withBudget wraps model (the one called modelName) in the user's budget when the
// runtime has a guard.
func (rt *Runtime) withBudget(model lm.LM, modelName string, req *actorpb.GenerateReply) lm.LM {
	if rt.deps.Budgets == nil || req.GetUserId() == "" {
		return model
	}
	return &budgetModel{LM: model, rt: rt, guard: rt.deps.Budgets, req: req, price: rt.modelInfo(modelName)}
}

// estimate is the tokens and cost r may use: its prompt at about four bytes a
// token, and its max_tokens (else defaultCompletionEstimate) of completion.
func (m *budgetModel) estimate(r *lm.Request) (int64, float64) {
	var n int
	for _, msg := range r.Messages {
		for _, p := range msg.Parts {
			if t, ok := p.(llms.TextContent); ok {
				n += len(t.Text)
			}
		}
	}
	prompt := int64(n/4 + 4*len(r.Messages))
	completion := int64(defaultCompletionEstimate)
	if r.MaxTokens > 0 {
		completion = int64(r.MaxTokens)
	}
	usd := (float64(prompt)*m.price.InputPer1K + float64(completion)*m.price.OutputPer1K) / 1000
	return prompt + completion, usd
}

// Generate implements lm.LM.
func (m *budgetModel) Generate(ctx context.Context, r *lm.Request) (*lm.Response, error) {
	tokens, usd := m.estimate(r)
	held, err := m.guard.Reserve(ctx, m.req.GetUserId(), tokens, usd)
	if err != nil {
		return nil, err
	}
	res, err := m.LM.Generate(ctx, r)
	// The call is paid for whatever happens to the reply: settle it even when the
	// reply is being cancelled.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), chargeTimeout)
	defer cancel()
	if err != nil {
		if rerr := held.Release(cctx); rerr != nil {
			m.rt.log.Error("budget reservation not released", "user_id", m.req.GetUserId(), "agent_id", m.req.GetAgentId(),
				"correlation_id", m.req.GetCorrelationId(), "error", rerr)
		}
		return nil, err
	}
	if cerr := held.Settle(cctx, budgets.Charge{UserID: m.req.GetUserId(), AgentID: m.req.GetAgentId(),
		ConversationID: m.req.GetConversationId(), Model: res.Model, PromptTokens: int64(res.Usage.PromptTokens),
		CompletionTokens: int64(res.Usage.CompletionTokens), CostUSD: res.Usage.CostUSD}); cerr != nil {
		m.rt.log.Error("usage not recorded", "user_id", m.req.GetUserId(), "agent_id", m.req.GetAgentId(),
			"correlation_id", m.req.GetCorrelationId(), "error", cerr)
	}
	return res, nil
}
