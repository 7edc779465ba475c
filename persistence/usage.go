package persistence

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/doug-martin/goqu/v9"
	"github.com/doug-martin/goqu/v9/exp"
)

// UsageEntry is one model call charged to a user. The usage rollup keeps the sums of
// the calls of each user, agent, model and UTC minute, not the calls themselves: a
// call's own detail stays with its reply message (its usage metadata).
type UsageEntry struct {
	UserID           string
	AgentID          string
	Model            string
	PromptTokens     int64
	CompletionTokens int64
	CostUSD          float64
	// CreatedAt places the call in its UTC minute; zero is now.
	CreatedAt time.Time
}

// UsageTotal sums charged calls: their tokens (prompt + completion) and cost.
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

// UsageStore is the usage_rollup and user_budgets tables.
type UsageStore struct{ db *DB }

// NewUsageStore returns the usage repository of db.
func NewUsageStore(db *DB) *UsageStore { return &UsageStore{db: db} }

// UsageCharge is the Op that adds entries to the usage rollup, each to the row of its
// user, agent, model and UTC minute. A Writer sums the charges of a batch that fall on
// the same row and writes all of its batch's rows in one upsert, so that the calls of
// many concurrent turns of one user cost one row: a charge is far cheaper than a row
// of its own. An unknown user fails it with ErrConflict.
func UsageCharge(entries ...UsageEntry) Op { return usageCharge(entries) }

// usageCharge is UsageCharge's Op.
type usageCharge []UsageEntry

// Apply implements Op.
func (c usageCharge) Apply(ctx context.Context, tx *goqu.TxDatabase) error {
	return applyUsage(ctx, tx, tx.Dialect(), c)
}

// rows is how many rollup rows c's calls sum into.
func (c usageCharge) rows() int {
	if len(c) < 2 {
		return len(c)
	}
	keys := make(map[usageKey]struct{}, 1)
	now := time.Now()
	for _, e := range c {
		keys[e.key(now)] = struct{}{}
	}
	return len(keys)
}

// key is the rollup row e adds to: its user, agent, model and the UTC minute of its
// CreatedAt, or of now when that is zero.
func (e UsageEntry) key(now time.Time) usageKey {
	at := e.CreatedAt
	if at.IsZero() {
		at = now
	}
	return usageKey{userID: e.UserID, minute: at.UTC().Truncate(time.Minute), agent: e.AgentID, model: e.Model}
}

// usageTarget holds the charges of a batch, written by one upsert after every other
// step of the batch, so that the rollup rows' locks are held for the shortest time.
type usageTarget struct{ entries []UsageEntry }

// usageKey is the primary key of a rollup row.
type usageKey struct {
	userID string
	minute time.Time
	agent  string
	model  string
}

// usageRow is one rollup row to add.
type usageRow struct {
	usageKey
	prompt, completion, calls int64
	cost                      float64
}

// usageCols are the columns of a rollup row, in usageStatements' order; the first four
// are its key.
var usageCols = []string{"user_id", "minute_start", "agent_id", "model", "prompt_tokens", "completion_tokens", "cost_usd", "calls"}

// sumUsage sums entries by rollup row, in key order, so that concurrent batches lock
// the rows they share in the same order and cannot deadlock on them.
func sumUsage(entries []UsageEntry) []usageRow {
	index := make(map[usageKey]int, 1)
	var rows []usageRow
	now := time.Now()
	for _, e := range entries {
		k := e.key(now)
		i, ok := index[k]
		if !ok {
			i = len(rows)
			index[k] = i
			rows = append(rows, usageRow{usageKey: k})
		}
		r := &rows[i]
		r.prompt += e.PromptTokens
		r.completion += e.CompletionTokens
		r.cost += e.CostUSD
		r.calls++
	}
	slices.SortFunc(rows, func(a, b usageRow) int {
		return cmp.Or(strings.Compare(a.userID, b.userID), a.minute.Compare(b.minute),
			strings.Compare(a.agent, b.agent), strings.Compare(a.model, b.model))
	})
	return rows
}

// applyUsage adds entries to the rollup through tx, in dialect's upsert.
func applyUsage(ctx context.Context, tx *goqu.TxDatabase, dialect string, entries []UsageEntry) error {
	for _, st := range usageStatements(dialect, entries) {
		if _, err := tx.ExecContext(ctx, st.query, st.args...); err != nil {
			return wrap(err, "charge usage")
		}
	}
	return nil
}

// usageStatements is entries, summed by rollup row, as upserts that add each row's
// sums to the stored row (MariaDB's ON DUPLICATE KEY UPDATE, SQLite's ON CONFLICT DO
// UPDATE), as many as the parameter limit asks for.
func usageStatements(dialect string, entries []UsageEntry) []stmt {
	rows := sumUsage(entries)
	var out []stmt
	for chunk := range slices.Chunk(rows, maxParams/len(usageCols)) {
		var b strings.Builder
		b.Grow(160 + len(chunk)*26 + 240)
		writeInsertHead(&b, "usage_rollup", usageCols)
		args := make([]any, 0, len(chunk)*len(usageCols))
		for i, r := range chunk {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?)")
			args = append(args, r.userID, r.minute, r.agent, r.model, r.prompt, r.completion, r.cost, r.calls)
		}
		added := "VALUES(`%[1]s`)"
		if dialect == DialectMySQL {
			b.WriteString(" ON DUPLICATE KEY UPDATE ")
		} else {
			b.WriteString(" ON CONFLICT (`user_id`, `minute_start`, `agent_id`, `model`) DO UPDATE SET ")
			added = "excluded.`%[1]s`"
		}
		for i, c := range usageCols[4:] {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "`%[1]s` = `%[1]s` + "+added, c)
		}
		out = append(out, stmt{query: b.String(), args: args, want: -1})
	}
	return out
}

// Record adds e to the rollup in a transaction of its own. An unknown user is
// ErrConflict.
func (s *UsageStore) Record(ctx context.Context, e UsageEntry) error {
	return wrap(s.db.inTx(ctx, func(tx *goqu.TxDatabase) error { return UsageCharge(e).Apply(ctx, tx) }), "record usage of %s", e.UserID)
}

// Total sums the user's usage in the minutes that start at or after since (the
// budgets ask from the start of a UTC day or month, which is a minute's start).
func (s *UsageStore) Total(ctx context.Context, userID string, since time.Time) (UsageTotal, error) {
	t, err := s.sum(ctx, goqu.C("user_id").Eq(userID), goqu.C("minute_start").Gte(utc(since)))
	return t, wrap(err, "sum usage of %s", userID)
}

// AllTotal sums every user's usage in the minutes that start at or after since: the
// model usage of the whole cluster (it reads the minute_start index).
func (s *UsageStore) AllTotal(ctx context.Context, since time.Time) (UsageTotal, error) {
	t, err := s.sum(ctx, goqu.C("minute_start").Gte(utc(since)))
	return t, wrap(err, "sum every user's usage")
}

// sum adds up the tokens and cost of the rollup rows that match where.
func (s *UsageStore) sum(ctx context.Context, where ...exp.Expression) (UsageTotal, error) {
	q := s.db.Goqu.From("usage_rollup").Prepared(true).
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

// ByAgentModel sums the user's usage in the minutes that start at or after since by
// agent and model.
func (s *UsageStore) ByAgentModel(ctx context.Context, userID string, since time.Time) ([]UsageLine, error) {
	q := s.db.Goqu.From("usage_rollup").Prepared(true).
		Select("agent_id", "model", goqu.SUM("prompt_tokens"), goqu.SUM("completion_tokens"), goqu.SUM("cost_usd"), goqu.SUM("calls")).
		Where(goqu.C("user_id").Eq(userID), goqu.C("minute_start").Gte(utc(since))).
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
