package persistence_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/doug-martin/goqu/v9"

	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
)

// rollupRows counts the usage rows stored for userID.
func rollupRows(t *testing.T, db *persistence.DB, userID string) int64 {
	t.Helper()
	n, err := db.Goqu.From("usage_rollup").Where(goqu.C("user_id").Eq(userID)).CountContext(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// The charges of one batch that fall on the same user, minute, agent and model are
// summed into one row; a later batch adds to that row, and the call counts, tokens
// and cost of every agent and model stay exact.
func TestWriterSumsUsageCharges(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		h := newHarness(t, db, persistence.WriterOptions{})
		user := seedUser(t, db)
		at := time.Now().UTC().Truncate(time.Minute)
		op := func(agent string, at time.Time, prompt int64, cost float64) persistence.Op {
			return persistence.UsageCharge(persistence.UsageEntry{UserID: user.ID, AgentID: agent, Model: "m", PromptTokens: prompt, CompletionTokens: 1, CostUSD: cost, CreatedAt: at})
		}
		charge := func(agent string, at time.Time, prompt int64, cost float64) <-chan error {
			op := op(agent, at, prompt, cost)
			return h.submit(func() error { return h.w.Submit(context.Background(), op) })
		}
		// Queued before Run, the writes form one batch: five calls, three rows.
		pending := []<-chan error{
			charge("a", at, 10, 0.5),
			charge("a", at.Add(30*time.Second), 20, 0.25),
			charge("b", at.Add(59*time.Second), 40, 1),
			charge("a", at.Add(59*time.Second+999*time.Millisecond), 80, 2),
			charge("a", at.Add(-time.Second), 1000, 8), // the minute before
		}
		stop := h.run(t.Context())
		for _, errc := range pending {
			if err := recv(t, errc); err != nil {
				t.Fatal(err)
			}
		}
		if n, rows := h.batches(); n != 1 || rows != 5 {
			t.Fatalf("batches = %d with %v calls, want 1 with 5", n, rows)
		}
		if n := rollupRows(t, db, user.ID); n != 3 {
			t.Fatalf("rollup rows = %d, want 3", n)
		}
		// A later batch adds to the stored row; its two calls of one row count as one.
		if err := h.w.Submit(t.Context(), persistence.UsageCharge(
			persistence.UsageEntry{UserID: user.ID, AgentID: "a", Model: "m", PromptTokens: 5, CompletionTokens: 1, CostUSD: 0.25, CreatedAt: at.Add(time.Second)},
			persistence.UsageEntry{UserID: user.ID, AgentID: "a", Model: "m", PromptTokens: 5, CompletionTokens: 1, CostUSD: 0.25, CreatedAt: at.Add(2 * time.Second)},
		)); err != nil {
			t.Fatal(err)
		}
		if n, rows := h.batches(); n != 2 || rows != 6 {
			t.Fatalf("batches = %d with %v rows, want 2 with 6", n, rows)
		}
		stop()
		if n := rollupRows(t, db, user.ID); n != 3 {
			t.Fatalf("rollup rows after a second batch = %d, want 3", n)
		}
		lines, err := persistence.NewUsageStore(db).ByAgentModel(t.Context(), user.ID, at)
		if err != nil {
			t.Fatal(err)
		}
		want := []persistence.UsageLine{
			{AgentID: "a", Model: "m", UsageTotal: persistence.UsageTotal{Tokens: 125, CostUSD: 3.25}, PromptTokens: 120, CompletionTokens: 5, Calls: 5},
			{AgentID: "b", Model: "m", UsageTotal: persistence.UsageTotal{Tokens: 41, CostUSD: 1}, PromptTokens: 40, CompletionTokens: 1, Calls: 1},
		}
		if !slices.Equal(lines, want) {
			t.Fatalf("usage by agent and model = %+v, want %+v", lines, want)
		}
	})
}

// Day and month sums start exactly at the UTC boundary: a call in the last
// microsecond before it counts for the period before, one at the boundary for the
// new one.
func TestUsageBoundaries(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		ctx := t.Context()
		usage := persistence.NewUsageStore(db)
		user := seedUser(t, db)
		month := time.Date(2031, 3, 1, 0, 0, 0, 0, time.UTC)
		day := month.AddDate(0, 0, 1)
		for _, e := range []persistence.UsageEntry{
			{PromptTokens: 1, CostUSD: 0.5, CreatedAt: month.Add(-time.Microsecond)},
			{PromptTokens: 10, CostUSD: 0.25, CreatedAt: month},
			{PromptTokens: 100, CostUSD: 1, CreatedAt: day.Add(-time.Microsecond)},
			{PromptTokens: 1000, CostUSD: 2, CreatedAt: day},
			{PromptTokens: 10000, CostUSD: 4, CreatedAt: day.Add(time.Minute - time.Microsecond)},
		} {
			e.UserID, e.AgentID, e.Model = user.ID, "a", "m"
			if err := usage.Record(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range []struct {
			since time.Time
			want  persistence.UsageTotal
		}{
			{month.AddDate(0, -1, 0), persistence.UsageTotal{Tokens: 11111, CostUSD: 7.75}},
			{month, persistence.UsageTotal{Tokens: 11110, CostUSD: 7.25}},
			{day, persistence.UsageTotal{Tokens: 11000, CostUSD: 6}},
			{day.Add(time.Minute), persistence.UsageTotal{}},
		} {
			if got, err := usage.Total(ctx, user.ID, c.since); err != nil || got != c.want {
				t.Errorf("Total since %v = %+v, %v; want %+v", c.since, got, err, c.want)
			}
		}
		if got, err := usage.AllTotal(ctx, day); err != nil || got.Tokens < 11000 {
			t.Errorf("AllTotal since %v = %+v, %v; want at least this user's 11000 tokens", day, got, err)
		}
		if err := usage.Record(ctx, persistence.UsageEntry{UserID: newUUID(), Model: "m", PromptTokens: 1}); !errors.Is(err, persistence.ErrConflict) {
			t.Errorf("usage of an unknown user = %v, want ErrConflict", err)
		}
		// Erasing the user erases their usage.
		if _, err := persistence.NewUserStore(db).Erase(ctx, user.ID, func(persistence.Erasure) persistence.AuditEntry {
			return persistence.AuditEntry{Action: "user.erase", TargetID: user.ID}
		}); err != nil {
			t.Fatal(err)
		}
		if n := rollupRows(t, db, user.ID); n != 0 {
			t.Fatalf("rollup rows after erasure = %d, want 0", n)
		}
	})
}

// Migration 0017 sums the ledger's rows into the rollup, by minute, and its down
// migration gives back a ledger with the same sums and call counts.
func TestUsageRollupMigration(t *testing.T) {
	persisttest.EachEmpty(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		ctx := t.Context()
		m := newMigrator(t, db, persistence.MigratorOptions{})
		if _, err := m.Up(ctx); err != nil {
			t.Fatal(err)
		}
		user := seedUser(t, db)
		// Revert every migration from 0017 on, whatever came later.
		from17 := 0
		for _, st := range mustStatus(t, m) {
			if st.Version >= 17 && st.Applied {
				from17++
			}
		}
		if _, err := m.Down(ctx, from17); err != nil {
			t.Fatal(err)
		}
		at := time.Date(2031, 3, 1, 10, 20, 0, 0, time.UTC)
		ledger := []struct {
			agent  string
			at     time.Time
			prompt int64
			cost   float64
		}{
			{"a", at.Add(time.Second), 1, 0.5},
			{"a", at.Add(59*time.Second + 999999*time.Microsecond), 2, 0.25},
			{"a", at.Add(time.Minute), 4, 1},
			{"b", at.Add(2 * time.Second), 8, 2},
			{"a", at.AddDate(0, 0, -1), 16, 4},
		}
		for _, e := range ledger {
			_, err := db.Goqu.Insert("usage_ledger").Prepared(true).Rows(goqu.Record{"id": newUUID(), "user_id": user.ID, "agent_id": e.agent,
				"conversation_id": "c", "model": "m", "prompt_tokens": e.prompt, "completion_tokens": 1, "cost_usd": e.cost, "created_at": e.at}).Executor().ExecContext(ctx)
			if err != nil {
				t.Fatal(err)
			}
		}
		usage := persistence.NewUsageStore(db)
		check := func(when string) {
			t.Helper()
			lines, err := usage.ByAgentModel(ctx, user.ID, at)
			if err != nil {
				t.Fatal(err)
			}
			want := []persistence.UsageLine{
				{AgentID: "a", Model: "m", UsageTotal: persistence.UsageTotal{Tokens: 10, CostUSD: 1.75}, PromptTokens: 7, CompletionTokens: 3, Calls: 3},
				{AgentID: "b", Model: "m", UsageTotal: persistence.UsageTotal{Tokens: 9, CostUSD: 2}, PromptTokens: 8, CompletionTokens: 1, Calls: 1},
			}
			if !slices.Equal(lines, want) {
				t.Fatalf("%s: usage since %v = %+v, want %+v", when, at, lines, want)
			}
			if got, err := usage.Total(ctx, user.ID, at.AddDate(0, 0, -1)); err != nil || got != (persistence.UsageTotal{Tokens: 36, CostUSD: 7.75}) {
				t.Fatalf("%s: usage since the day before = %+v, %v", when, got, err)
			}
		}
		if _, err := m.Up(ctx); err != nil {
			t.Fatal(err)
		}
		check("migrated up")
		if n := rollupRows(t, db, user.ID); n != 4 {
			t.Fatalf("rollup rows = %d, want 4", n)
		}
		if _, err := m.Down(ctx, from17); err != nil {
			t.Fatal(err)
		}
		n, err := db.Goqu.From("usage_ledger").Where(goqu.C("user_id").Eq(user.ID)).CountContext(ctx)
		if err != nil || n != 5 {
			t.Fatalf("ledger rows after the down migration = %d, %v; want 5", n, err)
		}
		if _, err := m.Up(ctx); err != nil {
			t.Fatal(err)
		}
		check("migrated down and up again")
	})
}
