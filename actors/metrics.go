package actors

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the runtime's collectors:
//   - kowai_actor_passivations_total{kind}: grains passivated (idle or leave);
//   - kowai_actor_fenced_total{kind}: grains that stopped because a newer activation
//     won a write;
//   - kowai_actor_loaded{kind}: grains with state in memory on this node;
//   - kowai_chat_turns_total{outcome}: turns by outcome: ok, replayed, or the error
//     code in lower case (forbidden, not_found, conflict, unavailable, model_failure,
//     timeout, budget_exceeded, busy, canceled, invalid_argument, internal);
//   - kowai_chat_turn_duration_seconds: from the turn's start to its durable answer;
//   - kowai_agent_queued_replies: replies waiting for a worker, summed over agents.
type metrics struct {
	passivations *prometheus.CounterVec
	fenced       *prometheus.CounterVec
	loaded       *prometheus.GaugeVec
	turns        *prometheus.CounterVec
	turnDuration prometheus.Histogram
	queued       prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		passivations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kowai_actor_passivations_total",
			Help: "Grains passivated with a final snapshot, by kind."}, []string{"kind"}),
		fenced: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kowai_actor_fenced_total",
			Help: "Grains stopped because another activation of the same identity won a write, by kind."}, []string{"kind"}),
		loaded: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kowai_actor_loaded",
			Help: "Grains with their state loaded on this node, by kind."}, []string{"kind"}),
		turns: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kowai_chat_turns_total",
			Help: "Chat turns answered by sessions, by outcome: ok, replayed, or the error code in lower case " +
				"(forbidden, not_found, conflict, unavailable, model_failure, timeout, budget_exceeded, busy, canceled, " +
				"invalid_argument, internal)."}, []string{"outcome"}),
		turnDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "kowai_chat_turn_duration_seconds",
			Help:    "Time from a turn's start to its durable answer.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 14)}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kowai_agent_queued_replies",
			Help: "Reply requests waiting for a free agent worker on this node."}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.passivations, err = register(reg, m.passivations); err != nil {
		return nil, err
	}
	if m.fenced, err = register(reg, m.fenced); err != nil {
		return nil, err
	}
	if m.loaded, err = register(reg, m.loaded); err != nil {
		return nil, err
	}
	if m.turns, err = register(reg, m.turns); err != nil {
		return nil, err
	}
	if m.turnDuration, err = register(reg, m.turnDuration); err != nil {
		return nil, err
	}
	if m.queued, err = register(reg, m.queued); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the identical collector a previous runtime on the
// same registry registered, so two runtimes (tests, benchmarks) never fail each other.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var already prometheus.AlreadyRegisteredError
	if errors.As(err, &already) {
		if existing, ok := already.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("actors: register metrics: %w", err)
}
