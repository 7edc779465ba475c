package lm

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// BreakerState is a circuit breaker's state.
type BreakerState int

// Circuit breaker states, in the order of the kowai_llm_circuit_state gauge.
const (
	// BreakerClosed lets every call through.
	BreakerClosed BreakerState = iota
	// BreakerHalfOpen lets one probe call through after the cool-down.
	BreakerHalfOpen
	// BreakerOpen rejects calls with ErrCircuitOpen until the cool-down ends.
	BreakerOpen
)

// String returns "closed", "half-open" or "open".
func (s BreakerState) String() string {
	return [...]string{"closed", "half-open", "open"}[s]
}

// BreakerPolicy tunes a circuit breaker.
type BreakerPolicy struct {
	// Threshold is the number of consecutive failures that opens the
	// circuit (default 5).
	Threshold int
	// Cooldown is how long the circuit stays open before a probe (default
	// 30s).
	Cooldown time.Duration
}

func (p BreakerPolicy) withDefaults() BreakerPolicy {
	if p.Threshold <= 0 {
		p.Threshold = 5
	}
	if p.Cooldown <= 0 {
		p.Cooldown = 30 * time.Second
	}
	return p
}

// Breaker is a circuit breaker around one provider. Only failures that say
// the provider is unhealthy count (Retryable errors: 429, 5xx, timeouts); a
// bad request or a cancelled caller neither trips nor resets it. After
// Threshold consecutive failures it opens and rejects calls with
// ErrCircuitOpen; after Cooldown one probe call goes through (half-open):
// success closes it, failure opens it for another cool-down.
type Breaker struct {
	next   LM
	policy BreakerPolicy
	opts   options

	mu       sync.Mutex
	state    BreakerState
	failures int
	openedAt time.Time
	probing  bool
}

// NewBreaker wraps next; it uses WithClock, WithLogger and WithMetrics.
func NewBreaker(next LM, policy BreakerPolicy, opts ...Option) *Breaker {
	b := &Breaker{next: next, policy: policy.withDefaults(), opts: buildOptions(opts)}
	b.opts.metrics.circuitState(next.Name(), BreakerClosed)
	return b
}

// Name returns the wrapped model's name.
func (b *Breaker) Name() string { return b.next.Name() }

// State returns the current state; an open circuit whose cool-down has
// passed reports half-open.
func (b *Breaker) State() BreakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == BreakerOpen && !b.opts.now().Before(b.openedAt.Add(b.policy.Cooldown)) {
		return BreakerHalfOpen
	}
	return b.state
}

// Generate calls the wrapped model unless the circuit is open.
func (b *Breaker) Generate(ctx context.Context, req *Request) (*Response, error) {
	probe, err := b.admit()
	if err != nil {
		return nil, err
	}
	resp, err := b.next.Generate(ctx, req)
	b.record(probe, err)
	return resp, err
}

func (b *Breaker) admit() (probe bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case BreakerClosed:
		return false, nil
	case BreakerOpen:
		until := b.openedAt.Add(b.policy.Cooldown)
		if b.opts.now().Before(until) {
			return false, fmt.Errorf("%s: %w until %s", b.Name(), ErrCircuitOpen, until.Format(time.RFC3339))
		}
		b.setState(BreakerHalfOpen)
	}
	if b.probing {
		return false, fmt.Errorf("%s: %w (probe in flight)", b.Name(), ErrCircuitOpen)
	}
	b.probing = true
	return true, nil
}

func (b *Breaker) record(probe bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if probe {
		b.probing = false
	}
	switch {
	case err == nil:
		b.failures = 0
		if b.state != BreakerClosed {
			b.setState(BreakerClosed)
		}
	case Retryable(err):
		b.failures++
		if probe || b.failures >= b.policy.Threshold {
			b.openedAt = b.opts.now()
			b.setState(BreakerOpen)
		}
	}
	// A probe that failed for a reason saying nothing about the provider's
	// health (a bad request) leaves the circuit half-open for the next call.
}

func (b *Breaker) setState(s BreakerState) {
	if b.state == s {
		return
	}
	b.opts.logger.Warn("llm circuit state changed", "model", b.Name(), "from", b.state.String(), "to", s.String(), "failures", b.failures)
	b.state = s
	b.opts.metrics.circuitState(b.Name(), s)
}
