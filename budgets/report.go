package budgets

import (
	"context"
	"fmt"
	"time"

	"github.com/kowai/kowai/persistence"
)

// Line is the usage of one agent and model in a period.
type Line struct {
	AgentID          string  `json:"agent_id"`
	Model            string  `json:"model"`
	Calls            int64   `json:"calls"`
	PromptTokens     int64   `json:"prompt_tokens"`
	CompletionTokens int64   `json:"completion_tokens"`
	Tokens           int64   `json:"tokens"`
	CostUSD          float64 `json:"cost_usd"`
}

// Period is a user's usage in one day or month.
type Period struct {
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Tokens  int64     `json:"tokens"`
	CostUSD float64   `json:"cost_usd"`
	// ByAgentModel breaks the totals down, by agent then model.
	ByAgentModel []Line `json:"by_agent_model"`
}

// Report is a user's usage today and this month (UTC), from the ledger, with
// the limits that apply.
type Report struct {
	Today     Period `json:"today"`
	ThisMonth Period `json:"this_month"`
	Limits    Limits `json:"limits" doc:"0 is no limit"`
	// Override is true when an admin set the limits, false when they are the
	// user's roles'.
	Override bool `json:"override"`
}

// Report returns the user's usage report.
func (e *Enforcer) Report(ctx context.Context, userID string) (Report, error) {
	var r Report
	var err error
	if r.Limits, r.Override, err = e.Limits(ctx, userID); err != nil {
		return Report{}, err
	}
	day, month := periodStarts(e.cfg.Now())
	for _, p := range []struct {
		out        *Period
		start, end time.Time
	}{{&r.Today, day, day.AddDate(0, 0, 1)}, {&r.ThisMonth, month, month.AddDate(0, 1, 0)}} {
		lines, err := e.cfg.Ledger.ByAgentModel(ctx, userID, p.start)
		if err != nil {
			return Report{}, fmt.Errorf("budgets: report of %s: %w", userID, err)
		}
		*p.out = Period{Start: p.start, End: p.end, ByAgentModel: make([]Line, 0, len(lines))}
		for _, l := range lines {
			p.out.Tokens += l.Tokens
			p.out.CostUSD += l.CostUSD
			p.out.ByAgentModel = append(p.out.ByAgentModel, Line{AgentID: l.AgentID, Model: l.Model, Calls: l.Calls,
				PromptTokens: l.PromptTokens, CompletionTokens: l.CompletionTokens, Tokens: l.Tokens, CostUSD: l.CostUSD})
		}
	}
	return r, nil
}

// SetOverride gives the user limits of their own, replacing their roles'.
func (e *Enforcer) SetOverride(ctx context.Context, userID string, l Limits) error {
	if err := l.valid(); err != nil {
		return err
	}
	defer e.forget(userID)
	return e.cfg.Ledger.SetBudget(ctx, persistence.UserBudget{UserID: userID, DayTokens: l.DayTokens, DayUSD: l.DayUSD,
		MonthTokens: l.MonthTokens, MonthUSD: l.MonthUSD, UpdatedAt: e.cfg.Now()})
}

// DeleteOverride returns the user to their roles' limits.
func (e *Enforcer) DeleteOverride(ctx context.Context, userID string) error {
	defer e.forget(userID)
	return e.cfg.Ledger.DeleteBudget(ctx, userID)
}
