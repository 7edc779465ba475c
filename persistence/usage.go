package persistence

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/doug-martin/goqu/v9"
	"github.com/doug-martin/goqu/v9/exp"
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

// usageCols are the columns of a ledger row, in UsageInsert's order.
var usageCols = []string{"id", "user_id", "agent_id", "conversation_id", "model", "prompt_tokens", "completion_tokens", "cost_usd", "created_at"}

// UsageInsert is the Insert that appends entries to the usage ledger (empty IDs get
// fresh ones), for a Writer to merge with the other inserts of its batch.
func UsageInsert(entries ...UsageEntry) Insert {
	in := Insert{Table: "usage_ledger", Cols: usageCols, Rows: make([][]any, len(entries))}
	for i, e := range entries {
		if e.ID == "" {
			e.ID = uuid.Must(uuid.NewV7()).String()
		}
		in.Rows[i] = []any{e.ID, e.UserID, e.AgentID, e.ConversationID, e.Model, e.PromptTokens, e.CompletionTokens, e.CostUSD, utc(e.CreatedAt)}
	}
	return in
}

// Record appends e to the ledger (an empty ID gets a fresh one) in a statement of
// its own. An unknown user is ErrConflict.
func (s *UsageStore) Record(ctx context.Context, e UsageEntry) error {
	return wrap(s.db.inTx(ctx, func(tx *goqu.TxDatabase) error { return UsageInsert(e).Apply(ctx, tx) }), "record usage of %s", e.UserID)
}

// Total sums the user's ledger entries at or after since.
func (s *UsageStore) Total(ctx context.Context, userID string, since time.Time) (UsageTotal, error) {
	t, err := s.sum(ctx, goqu.C("user_id").Eq(userID), goqu.C("created_at").Gte(utc(since)))
	return t, wrap(err, "sum usage of %s", userID)
}

// AllTotal sums every user's ledger entries at or after since: the model usage
// of the whole cluster (it reads the created_at index).
func (s *UsageStore) AllTotal(ctx context.Context, since time.Time) (UsageTotal, error) {
	t, err := s.sum(ctx, goqu.C("created_at").Gte(utc(since)))
	return t, wrap(err, "sum every user's usage")
}

// sum adds up the tokens and cost of the ledger entries that match where.
func (s *UsageStore) sum(ctx context.Context, where ...exp.Expression) (UsageTotal, error) {
	q := s.db.Goqu.From("usage_ledger").Prepared(true).
		Select(goqu.COALESCE(goqu.SUM(goqu.L("prompt_tokens + completion_tokens")), 0), goqu.COALESCE(goqu.SUM("cost_usd"), 0)).
		Where(where...)
	var t UsageTotal
	var cost sql.NullFloat64
	if err := scanOne(ctx, q, &t.Tokens, &cost); err != nil {
		return UsageTotal{}, err
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
