package lm

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics holds the Prometheus collectors of model calls. A nil *Metrics
// counts nothing, so layers need no checks.
type Metrics struct {
	duration  *prometheus.HistogramVec
	tokens    *prometheus.CounterVec
	cost      *prometheus.CounterVec
	hits      *prometheus.CounterVec
	misses    *prometheus.CounterVec
	errors    *prometheus.CounterVec
	retries   *prometheus.CounterVec
	fallbacks *prometheus.CounterVec
	circuit   *prometheus.GaugeVec
}

// NewMetrics creates the collectors and registers them on reg:
//
//	kowai_llm_request_duration_seconds{provider,model}  histogram of provider calls
//	kowai_llm_tokens_total{provider,model,kind}         kind = prompt | completion | cached
//	kowai_llm_cost_usd_total{provider,model}
//	kowai_llm_cache_hits_total{model}, kowai_llm_cache_misses_total{model}
//	kowai_llm_errors_total{provider,kind}               kind as returned by Kind
//	kowai_llm_retries_total{provider,kind}
//	kowai_llm_fallbacks_total{from,to}
//	kowai_llm_circuit_state{provider,model}             0 closed, 1 half-open, 2 open
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kowai_llm_request_duration_seconds",
			Help:    "Duration of language model provider calls.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"provider", "model"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kowai_llm_tokens_total",
			Help: "Tokens used by language model calls, by kind (prompt, completion, cached).",
		}, []string{"provider", "model", "kind"}),
		cost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kowai_llm_cost_usd_total",
			Help: "Cost of language model calls in US dollars, from the price table.",
		}, []string{"provider", "model"}),
		hits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kowai_llm_cache_hits_total",
			Help: "Model calls answered from the response cache.",
		}, []string{"model"}),
		misses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kowai_llm_cache_misses_total",
			Help: "Cacheable model calls not found in the response cache.",
		}, []string{"model"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kowai_llm_errors_total",
			Help: "Failed provider calls, by error kind.",
		}, []string{"provider", "kind"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kowai_llm_retries_total",
			Help: "Retried model calls, by the kind of error that caused the retry.",
		}, []string{"provider", "kind"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kowai_llm_fallbacks_total",
			Help: "Calls handed from one model to the next of the fallback chain.",
		}, []string{"from", "to"}),
		circuit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kowai_llm_circuit_state",
			Help: "Circuit breaker state per model: 0 closed, 1 half-open, 2 open.",
		}, []string{"provider", "model"}),
	}
	for _, c := range []prometheus.Collector{m.duration, m.tokens, m.cost, m.hits, m.misses, m.errors, m.retries, m.fallbacks, m.circuit} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("lm: register metrics: %w", err)
		}
	}
	return m, nil
}

// splitName splits "provider:model"; a name without a colon is all model.
func splitName(name string) (provider, model string) {
	if p, m, ok := strings.Cut(name, ":"); ok {
		return p, m
	}
	return "", name
}

func (m *Metrics) observeCall(name string, resp *Response, err error, seconds float64) {
	if m == nil {
		return
	}
	p, model := splitName(name)
	m.duration.WithLabelValues(p, model).Observe(seconds)
	if err != nil {
		m.errors.WithLabelValues(p, Kind(err)).Inc()
		return
	}
	u := resp.Usage
	m.tokens.WithLabelValues(p, model, "prompt").Add(float64(u.PromptTokens))
	m.tokens.WithLabelValues(p, model, "completion").Add(float64(u.CompletionTokens))
	m.tokens.WithLabelValues(p, model, "cached").Add(float64(u.CachedTokens))
	m.cost.WithLabelValues(p, model).Add(u.CostUSD)
}

func (m *Metrics) cacheResult(name string, hit bool) {
	if m == nil {
		return
	}
	if hit {
		m.hits.WithLabelValues(name).Inc()
	} else {
		m.misses.WithLabelValues(name).Inc()
	}
}

func (m *Metrics) retry(name string, err error) {
	if m == nil {
		return
	}
	p, _ := splitName(name)
	m.retries.WithLabelValues(p, Kind(err)).Inc()
}

func (m *Metrics) fallback(from, to string) {
	if m == nil {
		return
	}
	m.fallbacks.WithLabelValues(from, to).Inc()
}

func (m *Metrics) circuitState(name string, s BreakerState) {
	if m == nil {
		return
	}
	p, model := splitName(name)
	m.circuit.WithLabelValues(p, model).Set(float64(s))
}

// Instrumented records every call of an LM in Metrics: latency, tokens,
// cost, errors. New puts it right around each provider so the figures are
// those of real provider calls.
type Instrumented struct {
	next    LM
	metrics *Metrics
	now     func() time.Time
}

// NewInstrumented wraps next; it uses WithMetrics and WithClock.
func NewInstrumented(next LM, opts ...Option) *Instrumented {
	o := buildOptions(opts)
	return &Instrumented{next: next, metrics: o.metrics, now: o.now}
}

// Name returns the wrapped model's name.
func (i *Instrumented) Name() string { return i.next.Name() }

// Generate calls the wrapped model and records the outcome.
func (i *Instrumented) Generate(ctx context.Context, req *Request) (*Response, error) {
	start := i.now()
	resp, err := i.next.Generate(ctx, req)
	i.metrics.observeCall(i.next.Name(), resp, err, i.now().Sub(start).Seconds())
	return resp, err
}
