package lm

import (
	"context"
	"fmt"
	"maps"
	"sync"
)

// Meter sums usage per model and in total. It is safe for concurrent use.
// One Meter per program run gives the run's usage; attach it to the run's
// context with ContextWithMeter.
type Meter struct {
	mu      sync.Mutex
	total   Usage
	byModel map[string]Usage
}

// NewMeter returns an empty Meter.
func NewMeter() *Meter { return &Meter{byModel: map[string]Usage{}} }

// Add records one call's usage against model.
func (m *Meter) Add(model string, u Usage) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.total = m.total.Add(u)
	m.byModel[model] = m.byModel[model].Add(u)
}

// Total returns the sum of everything recorded.
func (m *Meter) Total() Usage {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.total
}

// ByModel returns a copy of the per-model sums.
func (m *Meter) ByModel() map[string]Usage {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.byModel)
}

type metersKey struct{}

// ContextWithMeter returns a context whose model calls (through an
// Accounting layer, which New installs) are also recorded in m. Meters
// stack: a run's meter and a request's meter both see the call.
func ContextWithMeter(ctx context.Context, m *Meter) context.Context {
	prev, _ := ctx.Value(metersKey{}).([]*Meter)
	return context.WithValue(ctx, metersKey{}, append(prev[:len(prev):len(prev)], m))
}

type budgetsKey struct{}

// ContextWithBudget returns a context whose model calls (through an
// Accounting layer) are charged to b as well; a run can carry its own
// budget on top of the process-wide one.
func ContextWithBudget(ctx context.Context, b *Budget) context.Context {
	prev, _ := ctx.Value(budgetsKey{}).([]*Budget)
	return context.WithValue(ctx, budgetsKey{}, append(prev[:len(prev):len(prev)], b))
}

// Budget caps spending in US dollars and/or tokens (prompt + completion).
// Once either cap is reached, further calls fail with ErrBudgetExceeded; the
// call that crosses the line has already been paid for and is returned.
// Cache hits are free. It is safe for concurrent use.
type Budget struct {
	maxUSD    float64
	maxTokens int
	mu        sync.Mutex
	spent     Usage
}

// NewBudget returns a budget; a zero cap means no limit on that measure.
func NewBudget(maxUSD float64, maxTokens int) *Budget {
	return &Budget{maxUSD: maxUSD, maxTokens: maxTokens}
}

// Spent returns what has been charged so far.
func (b *Budget) Spent() Usage {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.spent
}

// Check returns an ErrBudgetExceeded error once a cap is reached.
func (b *Budget) Check() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.maxUSD > 0 && b.spent.CostUSD >= b.maxUSD {
		return fmt.Errorf("%w: spent $%.6f of the $%.6f limit over %d calls; raise the budget or start a new run", ErrBudgetExceeded, b.spent.CostUSD, b.maxUSD, b.spent.Calls)
	}
	if b.maxTokens > 0 && b.spent.TotalTokens() >= b.maxTokens {
		return fmt.Errorf("%w: used %d of the %d token limit over %d calls; raise the budget or start a new run", ErrBudgetExceeded, b.spent.TotalTokens(), b.maxTokens, b.spent.Calls)
	}
	return nil
}

// Charge adds u to the budget's spending.
func (b *Budget) Charge(u Usage) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.spent = b.spent.Add(u)
}

// Accounting is the outermost layer: it refuses calls once a budget is
// used up and records every response's usage in its Meter, its Budget and
// the meters and budgets of the call's context.
type Accounting struct {
	next   LM
	meter  *Meter
	budget *Budget
}

// NewAccounting wraps next; meter and budget may be nil.
func NewAccounting(next LM, meter *Meter, budget *Budget) *Accounting {
	return &Accounting{next: next, meter: meter, budget: budget}
}

// Name returns the wrapped model's name.
func (a *Accounting) Name() string { return a.next.Name() }

// Meter returns the layer's meter (nil when it has none).
func (a *Accounting) Meter() *Meter { return a.meter }

// Budget returns the layer's budget (nil when it has none).
func (a *Accounting) Budget() *Budget { return a.budget }

// Generate checks the budgets, calls the wrapped model and records usage.
func (a *Accounting) Generate(ctx context.Context, req *Request) (*Response, error) {
	budgets, _ := ctx.Value(budgetsKey{}).([]*Budget)
	if a.budget != nil {
		budgets = append(budgets[:len(budgets):len(budgets)], a.budget)
	}
	for _, b := range budgets {
		if err := b.Check(); err != nil {
			return nil, fmt.Errorf("%s: %w", a.Name(), err)
		}
	}
	resp, err := a.next.Generate(ctx, req)
	if err != nil {
		return nil, err
	}
	for _, b := range budgets {
		b.Charge(resp.Usage)
	}
	meters, _ := ctx.Value(metersKey{}).([]*Meter)
	if a.meter != nil {
		meters = append(meters[:len(meters):len(meters)], a.meter)
	}
	for _, m := range meters {
		m.Add(resp.Model, resp.Usage)
	}
	return resp, nil
}
