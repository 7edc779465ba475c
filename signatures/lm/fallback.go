package lm

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
)

// Fallback tries a chain of models in order and returns the first success.
// It moves on after any error except a cancelled or expired caller context,
// an exhausted budget, or a failure after streamed text reached the caller.
// Response.Model names the model that answered.
type Fallback struct {
	chain []LM
	opts  options
}

// NewFallback wraps chain (the primary first); it uses WithLogger and
// WithMetrics. It panics on an empty chain, a programming error.
func NewFallback(chain []LM, opts ...Option) *Fallback {
	if len(chain) == 0 {
		panic("lm: NewFallback needs at least one model")
	}
	return &Fallback{chain: chain, opts: buildOptions(opts)}
}

// Name returns the primary model's name.
func (f *Fallback) Name() string { return f.chain[0].Name() }

// Generate tries each model in turn.
func (f *Fallback) Generate(ctx context.Context, req *Request) (*Response, error) {
	attemptReq := *req
	var streamed atomic.Bool
	if req.Stream != nil {
		attemptReq.Stream = func(ctx context.Context, chunk []byte) error {
			streamed.Store(true)
			return req.Stream(ctx, chunk)
		}
	}
	var errs []error
	for i, m := range f.chain {
		resp, err := m.Generate(ctx, &attemptReq)
		if err == nil {
			return resp, nil
		}
		errs = append(errs, err)
		last := i == len(f.chain)-1
		if last || ctx.Err() != nil || errors.Is(err, ErrBudgetExceeded) || streamed.Load() {
			break
		}
		next := f.chain[i+1].Name()
		f.opts.logger.Warn("llm falling back", "from", m.Name(), "to", next, "kind", Kind(err), "error", err)
		f.opts.metrics.fallback(m.Name(), next)
	}
	if len(errs) == 1 {
		return nil, errs[0]
	}
	return nil, fmt.Errorf("all %d models of the fallback chain failed: %w", len(errs), errors.Join(errs...))
}
