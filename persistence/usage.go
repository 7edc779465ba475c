package persistence

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/doug-martin/goqu/v9"
	"github.com/google/uuid"
)

// UsageEntry is one model call charged to a user: a row of the usage ledger.
type UsageEntry struct {
	ID               string
	UserID           string
	AgentID          string
	ConversationID   string
	Model            string
	PromptTokens     int64
	CompletionTokens int64
	CostUSD          float64
	CreatedAt        time.Time
}

// UsageTotal sums ledger entries: their tokens (prompt + completion) and cost.
type UsageTotal struct {
	Tokens  int64
	CostUSD float64
}

// UsageLine is the usage of one agent and model.
type UsageLine struct {
	AgentID string
	Model   string
	UsageTotal
	PromptTokens     int64
	CompletionTokens int64
	Calls            int64
}

// UserBudget is an admin's override of a user's spending limits; zero is no
// limit on that measure.
type UserBudget struct {
	UserID      string
	DayTokens   int64
	DayUSD      float64
	MonthTokens int64
	MonthUSD    float64
	UpdatedAt   time.Time
}

// UsageStore is the usage_ledger and user_budgets tables.
type UsageStore struct{ db *DB }

// NewUsageStore returns the usage repository of db.
func NewUsageStore(db *DB) *UsageStore { return &UsageStore{db: db} }

// Record appends e to the ledger (an empty ID gets a fresh one). An unknown user
// is ErrConflict.
func (s *UsageStore) Record(ctx context.Context, e UsageEntry) error {
	if e.ID == "" {
		e.ID = uuid.Must(uuid.NewV7()).String()
	}
	q := s.db.Goqu.Insert("usage_ledger").Prepared(true).Rows(goqu.Record{
		"id": e.ID, "user_id": e.UserID, "agent_id": e.AgentID, "conversation_id": e.ConversationID, "model": e.Model,
		"prompt_tokens": e.PromptTokens, "completion_tokens": e.CompletionTokens, "cost_usd": e.CostUSD, "created_at": utc(e.CreatedAt),
	})
	_, err := q.Executor().ExecContext(ctx)
	return wrap(err, "record usage of %s", e.UserID)
}

// Total sums the user's ledger entries at or after since.
func (s *UsageStore) Total(ctx context.Context, userID string, since time.Time) (UsageTotal, error) {
	q := s.db.Goqu.From("usage_ledger").Prepared(true).
		Select(goqu.COALESCE(goqu.SUM(goqu.L("prompt_tokens + completion_tokens")), 0), goqu.COALESCE(goqu.SUM("cost_usd"), 0)).
		Where(goqu.C("user_id").Eq(userID), goqu.C("created_at").Gte(utc(since)))
	var t UsageTotal
	var cost sql.NullFloat64
	if err := scanOne(ctx, q, &t.Tokens, &cost); err != nil {
		return UsageTotal{}, wrap(err, "sum usage of %s", userID)
	}
	t.CostUSD = cost.Float64
	return t, nil
}

// ByAgentModel sums the user's ledger entries at or after since by agent and model.
func (s *UsageStore) ByAgentModel(ctx context.Context, userID string, since time.Time) ([]UsageLine, error) {
	q := s.db.Goqu.From("usage_ledger").Prepared(true).
		Select("agent_id", "model", goqu.SUM("prompt_tokens"), goqu.SUM("completion_tokens"), goqu.SUM("cost_usd"), goqu.COUNT("*")).
		Where(goqu.C("user_id").Eq(userID), goqu.C("created_at").Gte(utc(since))).
		GroupBy("agent_id", "model").Order(goqu.C("agent_id").Asc(), goqu.C("model").Asc())
	lines, err := scanAll(ctx, q, func(r scanner) (UsageLine, error) {
		var l UsageLine
		err := r.Scan(&l.AgentID, &l.Model, &l.PromptTokens, &l.CompletionTokens, &l.CostUSD, &l.Calls)
		l.Tokens = l.PromptTokens + l.CompletionTokens
		return l, err
	})
	return lines, wrap(err, "usage of %s by agent and model", userID)
}

// Budget returns the user's override, or ErrNotFound when there is none.
func (s *UsageStore) Budget(ctx context.Context, userID string) (UserBudget, error) {
	q := s.db.Goqu.From("user_budgets").Prepared(true).
		Select("user_id", "day_tokens", "day_usd", "month_tokens", "month_usd", "updated_at").Where(goqu.C("user_id").Eq(userID))
	var b UserBudget
	err := scanOne(ctx, q, &b.UserID, &b.DayTokens, &b.DayUSD, &b.MonthTokens, &b.MonthUSD, &b.UpdatedAt)
	if err != nil {
		return UserBudget{}, wrap(err, "get budget of %s", userID)
	}
	b.UpdatedAt = b.UpdatedAt.UTC()
	return b, nil
}

// SetBudget replaces the user's override. An unknown user is ErrConflict.
func (s *UsageStore) SetBudget(ctx context.Context, b UserBudget) error {
	return s.db.inTx(ctx, func(tx *goqu.TxDatabase) error {
		if _, err := tx.Delete("user_budgets").Prepared(true).Where(goqu.C("user_id").Eq(b.UserID)).Executor().ExecContext(ctx); err != nil {
			return wrap(err, "set budget of %s", b.UserID)
		}
		_, err := tx.Insert("user_budgets").Prepared(true).Rows(goqu.Record{"user_id": b.UserID, "day_tokens": b.DayTokens,
			"day_usd": b.DayUSD, "month_tokens": b.MonthTokens, "month_usd": b.MonthUSD, "updated_at": utc(b.UpdatedAt)}).Executor().ExecContext(ctx)
		return wrap(err, "set budget of %s", b.UserID)
	})
}

// DeleteBudget removes the user's override; none is not an error.
func (s *UsageStore) DeleteBudget(ctx context.Context, userID string) error {
	_, err := s.db.Goqu.Delete("user_budgets").Prepared(true).Where(goqu.C("user_id").Eq(userID)).Executor().ExecContext(ctx)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return wrap(err, "delete budget of %s", userID)
	}
	return nil
}
