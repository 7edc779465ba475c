package budgets

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kowai/kowai/internal/testenv"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
	"github.com/kowai/kowai/signatures/lm"
)

func TestParseRoleLimits(t *testing.T) {
	got, err := ParseRoleLimits(`{"user":{"day_tokens":1000,"month_usd":5},"premium":{}}`)
	if err != nil || got["user"] != (Limits{DayTokens: 1000, MonthUSD: 5}) || got["premium"] != (Limits{}) {
		t.Fatalf("%+v %v", got, err)
	}
	if got, err := ParseRoleLimits(" "); err != nil || len(got) != 0 {
		t.Fatalf("empty: %+v %v", got, err)
	}
	for raw, want := range map[string]string{
		`[1]`:                            "KOWAI_BUDGETS",
		`{"user":{"day_toknes":1}}`:      "unknown field",
		`{"user":{"day_usd":-1}}`:        "negative",
		`{"user":{"month_tokens":"10"}}`: "KOWAI_BUDGETS",
	} {
		if _, err := ParseRoleLimits(raw); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", raw, err, want)
		}
	}
}

func TestMergeIsTheMoreGenerous(t *testing.T) {
	a := Limits{DayTokens: 100, DayUSD: 1, MonthTokens: 0, MonthUSD: 10}
	b := Limits{DayTokens: 50, DayUSD: 2, MonthTokens: 500, MonthUSD: 0}
	if got := a.merge(b); got != (Limits{DayTokens: 100, DayUSD: 2, MonthTokens: 0, MonthUSD: 0}) {
		t.Fatalf("merge = %+v", got)
	}
}

// clock is a settable clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// setup makes a user on db with roles, and an Enforcer with counter (nil: in
// process) that reads limits on every check.
func setup(t *testing.T, db *persistence.DB, roles []string, limits map[string]Limits, counter func(Ledger) Counter, c *clock) (*Enforcer, string) {
	t.Helper()
	u, err := persistence.NewUserStore(db).Create(t.Context(), persistence.User{Email: rand.Text() + "@example.com", Roles: roles})
	if err != nil {
		t.Fatal(err)
	}
	ledger := persistence.NewUsageStore(db)
	cfg := Config{Roles: limits, Users: persistence.NewUserStore(db), Ledger: ledger, Metrics: prometheus.NewRegistry(), Now: c.now, LimitsTTL: -1}
	if counter != nil {
		cfg.Counter = counter(ledger)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e, u.ID
}

// Limits and spending per day and month, on both counters and both databases:
// the call crossing a limit is kept, the next refused with a message naming the
// limit; a new day restores the daily budget but not a monthly one; a fresh
// counter (another node, a restarted one) starts from the ledger.
func TestEnforcer(t *testing.T) {
	counters := map[string]func(*testing.T) func(Ledger) Counter{
		"memory": func(*testing.T) func(Ledger) Counter { return nil },
		"redis": func(t *testing.T) func(Ledger) Counter {
			rdb := testenv.Redis(t)
			prefix := "kowai-test:budgets:" + rand.Text() + ":"
			return func(l Ledger) Counter { return NewRedis(rdb, l, prefix) }
		},
	}
	for name, counter := range counters {
		t.Run(name, func(t *testing.T) {
			persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
				ctx := context.Background()
				c := &clock{t: time.Date(2026, 3, 30, 22, 0, 0, 0, time.UTC)}
				limits := map[string]Limits{"user": {DayTokens: 100, MonthTokens: 200}, "premium": {DayTokens: 1000}}
				mk := counter(t)
				e, uid := setup(t, db, []string{"user"}, limits, mk, c)
				charge := func(e *Enforcer, tokens int64) {
					t.Helper()
					if err := e.Charge(ctx, Charge{UserID: uid, AgentID: "a1", ConversationID: "c1", Model: "openai:m", PromptTokens: tokens - 10, CompletionTokens: 10, CostUSD: 0.01}); err != nil {
						t.Fatal(err)
					}
				}
				for range 2 {
					if err := e.Check(ctx, uid); err != nil {
						t.Fatal(err)
					}
					charge(e, 60)
				}
				err := e.Check(ctx, uid)
				var ex *Exceeded
				if !errors.As(err, &ex) || !errors.Is(err, lm.ErrBudgetExceeded) || ex.Period != "day" || ex.Measure != "tokens" ||
					!strings.Contains(ex.PublicMessage(), "daily token budget is used up (120 of 100 tokens); it renews at 2026-03-31T00:00:00Z") {
					t.Fatalf("over the daily limit: %v", err)
				}
				if n := testutil.ToFloat64(e.refusals.WithLabelValues("day", "tokens")); n != 1 {
					t.Fatalf("refusals = %v", n)
				}
				// Another node (a fresh counter) sees the same spending, from the ledger or Redis.
				other, err := New(Config{Roles: limits, Users: persistence.NewUserStore(db), Ledger: persistence.NewUsageStore(db), Counter: counterOf(mk, db), Now: c.now})
				if err != nil {
					t.Fatal(err)
				}
				if err := other.Check(ctx, uid); !errors.Is(err, lm.ErrBudgetExceeded) {
					t.Fatalf("another node: %v", err)
				}
				// The next day the daily budget is back; the monthly one keeps counting.
				c.t = c.t.Add(3 * time.Hour)
				if err := e.Check(ctx, uid); err != nil {
					t.Fatalf("next day: %v", err)
				}
				charge(e, 60)
				charge(e, 30)
				if err := e.Check(ctx, uid); !errors.As(err, &ex) || ex.Period != "month" || ex.Resets != time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC) {
					t.Fatalf("over the monthly limit: %v", err)
				}
				s, err := e.Spent(ctx, uid)
				if err != nil || s.DayTokens != 90 || s.MonthTokens != 210 || s.MonthUSD < 0.0399 || s.MonthUSD > 0.0401 {
					t.Fatalf("spent %+v %v", s, err)
				}
				// An override replaces the roles' limits; its removal restores them.
				if err := e.SetOverride(ctx, uid, Limits{MonthTokens: 10000}); err != nil {
					t.Fatal(err)
				}
				if err := e.Check(ctx, uid); err != nil {
					t.Fatalf("with the override: %v", err)
				}
				if err := e.DeleteOverride(ctx, uid); err != nil {
					t.Fatal(err)
				}
				if err := e.Check(ctx, uid); !errors.Is(err, lm.ErrBudgetExceeded) {
					t.Fatalf("override removed: %v", err)
				}
				r, err := e.Report(ctx, uid)
				if err != nil || r.Today.Tokens != 90 || r.ThisMonth.Tokens != 210 || len(r.ThisMonth.ByAgentModel) != 1 ||
					r.ThisMonth.ByAgentModel[0].Calls != 4 || r.ThisMonth.ByAgentModel[0].PromptTokens != 170 || r.Limits.DayTokens != 100 {
					t.Fatalf("report %+v %v", r, err)
				}
			})
		})
	}
}

// counterOf is a fresh counter of the kind mk makes (in process when nil).
func counterOf(mk func(Ledger) Counter, db *persistence.DB) Counter {
	l := persistence.NewUsageStore(db)
	if mk == nil {
		return NewMemory(l)
	}
	return mk(l)
}

// A user holding several roles gets the most generous limit per measure; a
// role without limits, or no limits at all, makes the user unlimited.
func TestLimitsByRole(t *testing.T) {
	db := persisttest.SQLite(t)
	ctx := context.Background()
	c := &clock{t: time.Now()}
	limits := map[string]Limits{"user": {DayTokens: 100, MonthUSD: 1}, "premium": {DayTokens: 1000, MonthUSD: 0.5}}
	for _, tc := range []struct {
		roles []string
		want  Limits
	}{
		{[]string{"user"}, Limits{DayTokens: 100, MonthUSD: 1}},
		{[]string{"user", "premium"}, Limits{DayTokens: 1000, MonthUSD: 1}},
		{[]string{"user", "admin"}, Limits{}},
		{nil, Limits{}},
	} {
		e, uid := setup(t, db, tc.roles, limits, nil, c)
		got, override, err := e.Limits(ctx, uid)
		if err != nil || override || got != tc.want {
			t.Errorf("roles %v: %+v %v %v, want %+v", tc.roles, got, override, err, tc.want)
		}
	}
}

// A Redis counter whose keys are missing (flushed, expired, a new prefix)
// starts from the ledger, then counts on top of it.
func TestRedisSeedsFromLedger(t *testing.T) {
	db := persisttest.SQLite(t)
	rdb := testenv.Redis(t)
	ctx := context.Background()
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	c := &clock{t: now}
	e, uid := setup(t, db, []string{"user"}, nil, nil, c)
	if err := e.Charge(ctx, Charge{UserID: uid, PromptTokens: 30, CompletionTokens: 10, CostUSD: 0.5}); err != nil {
		t.Fatal(err)
	}
	// A row of last month counts in neither period.
	if err := persistence.NewUsageStore(db).Record(ctx, persistence.UsageEntry{UserID: uid, Model: "m", PromptTokens: 1000, CreatedAt: now.AddDate(0, -1, 0)}); err != nil {
		t.Fatal(err)
	}
	r := NewRedis(rdb, persistence.NewUsageStore(db), "kowai-test:budgets:"+rand.Text()+":")
	if err := r.Add(ctx, uid, now, 5, 0.25); err != nil {
		t.Fatal(err)
	}
	s, err := r.Spent(ctx, uid, now)
	if err != nil || s != (Spent{DayTokens: 45, DayUSD: 0.75, MonthTokens: 45, MonthUSD: 0.75}) {
		t.Fatalf("spent %+v %v", s, err)
	}
}

// Concurrent calls of one user at a budget of K calls: each reserves its estimate
// in the same atomic step as the check, so at most K run, on one node (in-process
// counter) and on two nodes sharing Redis; the settled spending is exactly K calls.
// Without the reservation, every call would pass its check before any is charged.
func TestReserveIsAtomic(t *testing.T) {
	const (
		n, k  = 24, 5
		call  = 100 // tokens per call, estimated and used
		nodes = 2
	)
	for _, tc := range []struct {
		name  string
		nodes int
		mk    func(*testing.T) func(Ledger) Counter
	}{
		{"memory", 1, func(*testing.T) func(Ledger) Counter { return nil }},
		{"redis", nodes, func(t *testing.T) func(Ledger) Counter {
			rdb := testenv.Redis(t)
			prefix := "kowai-test:budgets:" + rand.Text() + ":"
			return func(l Ledger) Counter { return NewRedis(rdb, l, prefix) }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := persisttest.SQLite(t)
			c := &clock{t: time.Date(2026, 3, 30, 12, 0, 0, 0, time.UTC)}
			mk := tc.mk(t)
			first, uid := setup(t, db, []string{"user"}, map[string]Limits{"user": {DayTokens: k * call}}, mk, c)
			enforcers := []*Enforcer{first}
			for range tc.nodes - 1 {
				cfg := first.cfg
				if mk != nil {
					cfg.Counter = mk(cfg.Ledger)
				}
				cfg.Metrics = prometheus.NewRegistry()
				e, err := New(cfg)
				if err != nil {
					t.Fatal(err)
				}
				enforcers = append(enforcers, e)
			}
			var (
				mu              sync.Mutex
				passed, refused int
				start           = make(chan struct{})
				wg              sync.WaitGroup
			)
			for i := range n {
				e := enforcers[i%len(enforcers)]
				wg.Go(func() {
					<-start
					r, err := e.Reserve(t.Context(), uid, call, 0)
					mu.Lock()
					defer mu.Unlock()
					switch {
					case errors.Is(err, lm.ErrBudgetExceeded):
						refused++
						return
					case err != nil:
						t.Error(err)
						return
					}
					passed++
					if err := r.Settle(t.Context(), Charge{PromptTokens: call - 10, CompletionTokens: 10}); err != nil {
						t.Error(err)
					}
				})
			}
			close(start)
			wg.Wait()
			if passed != k || refused != n-k {
				t.Fatalf("%d calls passed and %d were refused at a budget of %d calls; want %d and %d", passed, refused, k, k, n-k)
			}
			s, err := first.Spent(t.Context(), uid)
			if err != nil || s.DayTokens != k*call {
				t.Fatalf("spent %+v, %v; want %d tokens", s, err, k*call)
			}
			// A released reservation gives its estimate back.
			second, uid2 := setup(t, db, []string{"user"}, map[string]Limits{"user": {DayTokens: call}}, mk, c)
			r, err := second.Reserve(t.Context(), uid2, call, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := second.Reserve(t.Context(), uid2, call, 0); !errors.Is(err, lm.ErrBudgetExceeded) {
				t.Fatalf("a second call while the first holds the budget: %v", err)
			}
			if err := r.Release(t.Context()); err != nil {
				t.Fatal(err)
			}
			if _, err := second.Reserve(t.Context(), uid2, call, 0); err != nil {
				t.Fatalf("after the release: %v", err)
			}
		})
	}
}
