package actors

import (
	"context"
	"time"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/budgets"
	"github.com/kowai/kowai/signatures/lm"
)

// BudgetGuard holds users to their spending limits (a *budgets.Enforcer in
// production): Check before every model call of a reply, Charge after each.
type BudgetGuard interface {
	// Check returns an error matching lm.ErrBudgetExceeded once the user's budget
	// is used up.
	Check(ctx context.Context, userID string) error
	// Charge records one call's usage against its user.
	Charge(ctx context.Context, c budgets.Charge) error
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
}

// chargeTimeout bounds the recording of one call's usage.
const chargeTimeout = 5 * time.Second

// withBudget wraps model in the user's budget when the runtime has a guard.
func (rt *Runtime) withBudget(model lm.LM, req *actorpb.GenerateReply) lm.LM {
	if rt.deps.Budgets == nil || req.GetUserId() == "" {
		return model
	}
	return &budgetModel{LM: model, rt: rt, guard: rt.deps.Budgets, req: req}
}

// Generate implements lm.LM.
func (m *budgetModel) Generate(ctx context.Context, r *lm.Request) (*lm.Response, error) {
	if err := m.guard.Check(ctx, m.req.GetUserId()); err != nil {
		return nil, err
	}
	res, err := m.LM.Generate(ctx, r)
	if err != nil {
		return nil, err
	}
	// The call is paid for whatever happens to the reply: charge it even when the
	// reply is being cancelled.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), chargeTimeout)
	defer cancel()
	if cerr := m.guard.Charge(cctx, budgets.Charge{UserID: m.req.GetUserId(), AgentID: m.req.GetAgentId(),
		ConversationID: m.req.GetConversationId(), Model: res.Model, PromptTokens: int64(res.Usage.PromptTokens),
		CompletionTokens: int64(res.Usage.CompletionTokens), CostUSD: res.Usage.CostUSD}); cerr != nil {
		m.rt.log.Error("usage not recorded", "user_id", m.req.GetUserId(), "agent_id", m.req.GetAgentId(),
			"correlation_id", m.req.GetCorrelationId(), "error", cerr)
	}
	return res, nil
}
