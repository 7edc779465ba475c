package budgets

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kowai/kowai/internal/promreg"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/signatures/lm"
)

// Limits are spending limits; zero is no limit on that measure.
type Limits struct {
	DayTokens   int64   `json:"day_tokens"`
	DayUSD      float64 `json:"day_usd"`
	MonthTokens int64   `json:"month_tokens"`
	MonthUSD    float64 `json:"month_usd"`
}

// valid reports why l cannot be a limit.
func (l Limits) valid() error {
	if l.DayTokens < 0 || l.DayUSD < 0 || l.MonthTokens < 0 || l.MonthUSD < 0 {
		return errors.New("limits must not be negative (0 is no limit)")
	}
	return nil
}

// merge is the more generous of l and o per measure (0, no limit, wins).
func (l Limits) merge(o Limits) Limits {
	gen := func(a, b int64) int64 {
		if a == 0 || b == 0 {
			return 0
		}
		return max(a, b)
	}
	genf := func(a, b float64) float64 {
		if a == 0 || b == 0 {
			return 0
		}
		return max(a, b)
	}
	return Limits{gen(l.DayTokens, o.DayTokens), genf(l.DayUSD, o.DayUSD), gen(l.MonthTokens, o.MonthTokens), genf(l.MonthUSD, o.MonthUSD)}
}

// ParseRoleLimits reads KOWAI_BUDGETS: a JSON object from role name to
// Limits, e.g. {"user":{"day_tokens":200000,"month_usd":5}}. Empty input is
// no limits for anyone.
func ParseRoleLimits(raw string) (map[string]Limits, error) {
	if len(bytes.TrimSpace([]byte(raw))) == 0 {
		return map[string]Limits{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	dec.DisallowUnknownFields()
	out := map[string]Limits{}
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("KOWAI_BUDGETS: %v (want {\"role\":{\"day_tokens\":N,\"day_usd\":N,\"month_tokens\":N,\"month_usd\":N}})", err)
	}
	for role, l := range out {
		if err := l.valid(); err != nil {
			return nil, fmt.Errorf("KOWAI_BUDGETS: role %q: %w", role, err)
		}
	}
	return out, nil
}

// Spent is what a user spent in the current day and month.
type Spent struct {
	DayTokens   int64
	DayUSD      float64
	MonthTokens int64
	MonthUSD    float64
}

// Counter keeps each user's spending in the current day and month.
type Counter interface {
	// Spent returns the user's spending in the day and month of now.
	Spent(ctx context.Context, userID string, now time.Time) (Spent, error)
	// Add adds one call's tokens and cost to the day and month of now (negative
	// amounts take back part of a reservation).
	Add(ctx context.Context, userID string, now time.Time, tokens int64, usd float64) error
	// Reserve is Spent, a check against l and, when no limit of l is reached,
	// Add of tokens and usd, as one atomic step: of concurrent calls that see the
	// budget open, each counts the others' reservations. ok reports whether it
	// reserved; spent is what the user had spent before.
	Reserve(ctx context.Context, userID string, now time.Time, l Limits, tokens int64, usd float64) (spent Spent, ok bool, err error)
}

// Ledger is the usage ledger and the admins' overrides (a
// *persistence.UsageStore).
type Ledger interface {
	Record(ctx context.Context, e persistence.UsageEntry) error
	Total(ctx context.Context, userID string, since time.Time) (persistence.UsageTotal, error)
	ByAgentModel(ctx context.Context, userID string, since time.Time) ([]persistence.UsageLine, error)
	Budget(ctx context.Context, userID string) (persistence.UserBudget, error)
	SetBudget(ctx context.Context, b persistence.UserBudget) error
	DeleteBudget(ctx context.Context, userID string) error
}

// Users gives a user's roles.
type Users interface {
	Get(ctx context.Context, id string) (persistence.User, error)
}

// Exceeded is the error of a call refused because a limit is reached. It
// matches lm.ErrBudgetExceeded.
type Exceeded struct {
	// Period is "day" or "month"; Measure is "tokens" or "usd".
	Period, Measure string
	Spent, Limit    float64
	// Resets is when the period ends (UTC).
	Resets time.Time
}

// Error implements error.
func (e *Exceeded) Error() string { return "budgets: " + e.PublicMessage() }

// Is makes an *Exceeded match lm.ErrBudgetExceeded.
func (e *Exceeded) Is(target error) bool { return target == lm.ErrBudgetExceeded }

// PublicMessage is what the user is told.
func (e *Exceeded) PublicMessage() string {
	what := map[string]string{"day": "daily", "month": "monthly"}[e.Period]
	if e.Measure == "tokens" {
		return fmt.Sprintf("your %s token budget is used up (%d of %d tokens); it renews at %s",
			what, int64(e.Spent), int64(e.Limit), e.Resets.Format(time.RFC3339))
	}
	return fmt.Sprintf("your %s spending budget is used up ($%.4f of $%.4f); it renews at %s",
		what, e.Spent, e.Limit, e.Resets.Format(time.RFC3339))
}

// Config configures an Enforcer.
type Config struct {
	// Roles are the limits by role (KOWAI_BUDGETS); a role missing here has
	// no limits.
	Roles map[string]Limits
	// Users gives users' roles; Ledger records usage and holds overrides.
	Users  Users
	Ledger Ledger
	// Counter keeps spending; nil means NewMemory(Ledger).
	Counter Counter
	// Writer, optional, writes the ledger in its group commits (a
	// *persistence.Writer) in the background, so a reply does not wait for a
	// commit of its own, one write at a time for all the calls charged while the
	// previous one committed; without it each call is written before Charge
	// returns.
	Writer interface {
		Submit(ctx context.Context, op persistence.Op) error
	}
	// Metrics registers kowai_budget_refusals_total; nil leaves it unregistered.
	Metrics prometheus.Registerer
	Logger  *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// LimitsTTL is how long a node reuses a user's limits before reading them
	// again (default 2s; negative: never reuse). An override set through this
	// Enforcer applies on its node at once, on the others within LimitsTTL.
	LimitsTTL time.Duration
}

// ledgerTimeout bounds a background ledger write.
const ledgerTimeout = 30 * time.Second

// Enforcer checks and charges users' budgets. It is safe for concurrent use.
type Enforcer struct {
	cfg      Config
	refusals *prometheus.CounterVec
	// pending are the ledger writes in the background (with Config.Writer).
	pending sync.WaitGroup

	mu     sync.Mutex
	limits map[string]cachedLimits

	// chargesMu guards charges and flushing.
	chargesMu sync.Mutex
	// charges are the calls to record that no ledger write has taken yet.
	charges []persistence.UsageEntry
	// flushing is set while a goroutine writes charges to the ledger.
	flushing bool
}

// cachedLimits are a user's limits as read at some time.
type cachedLimits struct {
	limits Limits
	at     time.Time
}

// New returns an Enforcer.
func New(cfg Config) (*Enforcer, error) {
	if cfg.Users == nil || cfg.Ledger == nil {
		return nil, errors.New("budgets: Users and Ledger are required")
	}
	if cfg.Counter == nil {
		cfg.Counter = NewMemory(cfg.Ledger)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.LimitsTTL == 0 {
		cfg.LimitsTTL = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Enforcer{cfg: cfg, limits: map[string]cachedLimits{}, refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kowai_budget_refusals_total",
		Help: "Model calls refused because the user's budget was used up, by period (day, month) and measure (tokens, usd).",
	}, []string{"period", "measure"})}
	if cfg.Metrics != nil {
		refusals, err := promreg.Register(cfg.Metrics, e.refusals)
		if err != nil {
			return nil, fmt.Errorf("budgets: %w", err)
		}
		e.refusals = refusals
	}
	return e, nil
}

// Limits returns the user's limits, and whether they are an admin's override.
func (e *Enforcer) Limits(ctx context.Context, userID string) (Limits, bool, error) {
	return e.readLimits(ctx, userID)
}

// cachedOrRead returns the user's limits, reusing a read younger than LimitsTTL.
func (e *Enforcer) cachedOrRead(ctx context.Context, userID string) (Limits, error) {
	now := e.cfg.Now()
	e.mu.Lock()
	c, ok := e.limits[userID]
	e.mu.Unlock()
	if ok && now.Sub(c.at) < e.cfg.LimitsTTL {
		return c.limits, nil
	}
	l, _, err := e.readLimits(ctx, userID)
	if err != nil {
		return Limits{}, err
	}
	if e.cfg.LimitsTTL > 0 {
		e.mu.Lock()
		if len(e.limits) >= maxCachedUsers {
			clear(e.limits)
		}
		e.limits[userID] = cachedLimits{limits: l, at: now}
		e.mu.Unlock()
	}
	return l, nil
}

// maxCachedUsers bounds the limits cache; it is emptied when full.
const maxCachedUsers = 10000

// forget drops the user's cached limits.
func (e *Enforcer) forget(userID string) {
	e.mu.Lock()
	delete(e.limits, userID)
	e.mu.Unlock()
}

// readLimits reads the user's limits from the ledger's overrides and the
// user's roles.
func (e *Enforcer) readLimits(ctx context.Context, userID string) (Limits, bool, error) {
	b, err := e.cfg.Ledger.Budget(ctx, userID)
	switch {
	case err == nil:
		return Limits{b.DayTokens, b.DayUSD, b.MonthTokens, b.MonthUSD}, true, nil
	case !errors.Is(err, persistence.ErrNotFound):
		return Limits{}, false, fmt.Errorf("budgets: limits of %s: %w", userID, err)
	}
	u, err := e.cfg.Users.Get(ctx, userID)
	if err != nil {
		return Limits{}, false, fmt.Errorf("budgets: roles of %s: %w", userID, err)
	}
	var out Limits
	for i, r := range u.Roles {
		l, ok := e.cfg.Roles[r]
		if !ok {
			// A role without limits makes the user unlimited.
			return Limits{}, false, nil
		}
		if i == 0 {
			out = l
		} else {
			out = out.merge(l)
		}
	}
	return out, false, nil
}

// Spent returns the user's spending in the current day and month.
func (e *Enforcer) Spent(ctx context.Context, userID string) (Spent, error) {
	return e.cfg.Counter.Spent(ctx, userID, e.cfg.Now())
}

// Check returns an *Exceeded error when the user has reached a limit. A user
// without limits costs no counter read.
func (e *Enforcer) Check(ctx context.Context, userID string) error {
	if userID == "" {
		return nil
	}
	l, err := e.cachedOrRead(ctx, userID)
	if err != nil {
		return err
	}
	if l == (Limits{}) {
		return nil
	}
	now := e.cfg.Now().UTC()
	s, err := e.cfg.Counter.Spent(ctx, userID, now)
	if err != nil {
		return fmt.Errorf("budgets: spending of %s: %w", userID, err)
	}
	if ex := exceeded(s, l, now); ex != nil {
		e.refusals.WithLabelValues(ex.Period, ex.Measure).Inc()
		return ex
	}
	return nil
}

// exceeded is the first limit of l that s has reached at now, or nil.
func exceeded(s Spent, l Limits, now time.Time) *Exceeded {
	day, month := periodStarts(now)
	for _, c := range []struct {
		period, measure string
		spent, limit    float64
		resets          time.Time
	}{
		{"day", "tokens", float64(s.DayTokens), float64(l.DayTokens), day.AddDate(0, 0, 1)},
		{"day", "usd", s.DayUSD, l.DayUSD, day.AddDate(0, 0, 1)},
		{"month", "tokens", float64(s.MonthTokens), float64(l.MonthTokens), month.AddDate(0, 1, 0)},
		{"month", "usd", s.MonthUSD, l.MonthUSD, month.AddDate(0, 1, 0)},
	} {
		if c.limit > 0 && c.spent >= c.limit {
			return &Exceeded{Period: c.period, Measure: c.measure, Spent: c.spent, Limit: c.limit, Resets: c.resets}
		}
	}
	return nil
}

// Reservation is an estimate of one model call held against a user's budget
// while the call runs; Settle replaces it with the call's actual usage, Release
// takes it back when the call failed.
type Reservation struct {
	e      *Enforcer
	userID string
	// at is when it was reserved: the periods it counts in.
	at     time.Time
	tokens int64
	usd    float64
}

// Reserve checks the user's limits and, when none is reached, reserves the
// estimate (tokens, usd) of one call against them in the same atomic step, so
// concurrent calls, on this node or (with the Redis counter) any other, each
// see the others' reservations: with a budget of K calls, at most K run. It
// returns an *Exceeded error when a limit is reached. A user without limits
// costs no counter read; a call without a user is not reserved (nil, nil).
func (e *Enforcer) Reserve(ctx context.Context, userID string, tokens int64, usd float64) (*Reservation, error) {
	if userID == "" {
		return nil, nil
	}
	l, err := e.cachedOrRead(ctx, userID)
	if err != nil {
		return nil, err
	}
	now := e.cfg.Now().UTC()
	r := &Reservation{e: e, userID: userID, at: now}
	if l == (Limits{}) {
		return r, nil
	}
	s, ok, err := e.cfg.Counter.Reserve(ctx, userID, now, l, tokens, usd)
	if err != nil {
		return nil, fmt.Errorf("budgets: reserve for %s: %w", userID, err)
	}
	if !ok {
		ex := exceeded(s, l, now)
		if ex == nil {
			return nil, fmt.Errorf("budgets: reserve for %s refused with no limit reached", userID)
		}
		e.refusals.WithLabelValues(ex.Period, ex.Measure).Inc()
		return nil, ex
	}
	r.tokens, r.usd = tokens, usd
	return r, nil
}

// Settle replaces the reservation with the call's usage c (c.UserID is the
// reservation's) and records c in the ledger. A nil Reservation does nothing.
func (r *Reservation) Settle(ctx context.Context, c Charge) error {
	if r == nil {
		return nil
	}
	c.UserID = r.userID
	tokens := c.PromptTokens + c.CompletionTokens
	if err := r.e.cfg.Counter.Add(ctx, r.userID, r.at, tokens-r.tokens, c.CostUSD-r.usd); err != nil {
		return fmt.Errorf("budgets: count usage of %s: %w", r.userID, err)
	}
	r.tokens, r.usd = 0, 0
	return r.e.record(ctx, c)
}

// Release takes the reservation back: the call failed and costs nothing. A nil
// Reservation does nothing.
func (r *Reservation) Release(ctx context.Context) error {
	if r == nil || (r.tokens == 0 && r.usd == 0) {
		return nil
	}
	if err := r.e.cfg.Counter.Add(ctx, r.userID, r.at, -r.tokens, -r.usd); err != nil {
		return fmt.Errorf("budgets: release the reservation of %s: %w", r.userID, err)
	}
	r.tokens, r.usd = 0, 0
	return nil
}

// Charge is one model call to record. ConversationID names the call in logs only:
// the ledger sums calls by user, minute, agent and model.
type Charge struct {
	UserID, AgentID, ConversationID, Model string
	PromptTokens, CompletionTokens         int64
	CostUSD                                float64
}

// Charge adds the call to the user's counters and records it in the ledger.
// A call without a user is not recorded.
func (e *Enforcer) Charge(ctx context.Context, c Charge) error {
	if c.UserID == "" {
		return nil
	}
	now := e.cfg.Now().UTC()
	if err := e.cfg.Counter.Add(ctx, c.UserID, now, c.PromptTokens+c.CompletionTokens, c.CostUSD); err != nil {
		return fmt.Errorf("budgets: count usage of %s: %w", c.UserID, err)
	}
	return e.record(ctx, c)
}

// record writes c to the ledger (in the background with Config.Writer).
//
// In the background, one ledger write is in flight at a time: the calls charged
// while it commits go to the ledger together in the next one, as one UsageCharge
// (which the writer sums into a row per user, minute, agent and model). Under load
// the ledger so costs the group-commit writer one request per commit, not one per
// call, and a lone call is written at once.
func (e *Enforcer) record(ctx context.Context, c Charge) error {
	now := e.cfg.Now().UTC()
	entry := persistence.UsageEntry{UserID: c.UserID, AgentID: c.AgentID, Model: c.Model,
		PromptTokens: c.PromptTokens, CompletionTokens: c.CompletionTokens, CostUSD: c.CostUSD, CreatedAt: now}
	if e.cfg.Writer == nil {
		return e.cfg.Ledger.Record(ctx, entry)
	}
	e.chargesMu.Lock()
	e.charges = append(e.charges, entry)
	start := !e.flushing
	e.flushing = true
	e.chargesMu.Unlock()
	if start {
		e.pending.Go(e.flush)
	}
	return nil
}

// flush writes the pending charges to the ledger until none is left.
func (e *Enforcer) flush() {
	for {
		e.chargesMu.Lock()
		batch := e.charges
		e.charges = nil
		if len(batch) == 0 {
			e.flushing = false
			e.chargesMu.Unlock()
			return
		}
		e.chargesMu.Unlock()
		e.writeCharges(batch)
	}
}

// writeCharges writes batch to the ledger in one write. When that fails and batch
// holds several users' calls (one user unknown, say, erased meanwhile), each user's
// calls are written on their own, so that one user's failure loses no other's.
func (e *Enforcer) writeCharges(batch []persistence.UsageEntry) {
	ctx, cancel := context.WithTimeout(context.Background(), ledgerTimeout)
	defer cancel()
	err := e.cfg.Writer.Submit(ctx, persistence.UsageCharge(batch...))
	if err == nil {
		return
	}
	byUser := map[string][]persistence.UsageEntry{}
	for _, u := range batch {
		byUser[u.UserID] = append(byUser[u.UserID], u)
	}
	if len(byUser) == 1 || errors.Is(err, persistence.ErrClosed) {
		e.chargesLost(batch, err)
		return
	}
	var wg sync.WaitGroup
	for _, calls := range byUser {
		wg.Go(func() {
			if err := e.cfg.Writer.Submit(ctx, persistence.UsageCharge(calls...)); err != nil {
				e.chargesLost(calls, err)
			}
		})
	}
	wg.Wait()
}

// chargesLost logs the calls that the ledger did not take, by user.
func (e *Enforcer) chargesLost(calls []persistence.UsageEntry, err error) {
	var tokens int64
	var usd float64
	for _, c := range calls {
		tokens += c.PromptTokens + c.CompletionTokens
		usd += c.CostUSD
	}
	e.cfg.Logger.Error("usage not recorded in the ledger", "user_id", calls[0].UserID, "calls", len(calls),
		"tokens", tokens, "cost_usd", usd, "error", err)
}

// Wait returns once the ledger writes started so far are done (with
// Config.Writer; at once without). Call it before stopping the writer.
func (e *Enforcer) Wait() { e.pending.Wait() }

// periodStarts returns the starts of now's UTC day and month.
func periodStarts(now time.Time) (day, month time.Time) {
	now = now.UTC()
	return time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC),
		time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
}
