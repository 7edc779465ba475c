package actors

import (
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kowai/kowai/internal/promreg"
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
//   - kowai_agent_queued_replies: replies waiting for a worker, summed over agents;
//   - kowai_agent_replies_total{agent_type, outcome}: replies agent workers ran, by
//     the agent's type and outcome (ok, canceled, timeout, failed);
//   - kowai_agent_reply_duration_seconds{agent_type}: a worker's time on one reply;
//   - kowai_agent_tokens_total{agent_type, kind} and kowai_agent_cost_usd_total{agent_type}:
//     the model usage of the replies that completed;
//   - kowai_agent_program_deploys_total{outcome, trigger}: compiled programs deployed
//     to agents as canaries, promoted and rolled back (outcome deployed, promoted,
//     rolled_back; trigger manual or automatic).
//
// The agent label is the agent's type (chat, react, ...), which the type registry
// bounds: never an agent's ID or name, which users choose.
type metrics struct {
	passivations *prometheus.CounterVec
	fenced       *prometheus.CounterVec
	loaded       *prometheus.GaugeVec
	turns        *prometheus.CounterVec
	turnDuration prometheus.Histogram
	queued       prometheus.Gauge
	replies      *prometheus.CounterVec
	replyTime    *prometheus.HistogramVec
	tokens       *prometheus.CounterVec
	cost         *prometheus.CounterVec
	deploys      *prometheus.CounterVec

	agentMu sync.RWMutex
	agents  map[string]*agentSeries
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
		replies: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kowai_agent_replies_total",
			Help: "Replies run by agent workers, by agent type and outcome (ok, canceled, timeout, failed)."}, []string{"agent_type", "outcome"}),
		replyTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kowai_agent_reply_duration_seconds",
			Help:    "Time an agent worker spent on one reply, model calls and tools included, by agent type.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 14)}, []string{"agent_type"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kowai_agent_tokens_total",
			Help: "Model tokens of completed agent replies, by agent type and kind (prompt, completion)."}, []string{"agent_type", "kind"}),
		cost: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kowai_agent_cost_usd_total",
			Help: "Model cost in US dollars of completed agent replies, by agent type."}, []string{"agent_type"}),
		deploys: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kowai_agent_program_deploys_total",
			Help: "Compiled programs deployed to agents as canaries, promoted and rolled back, by outcome " +
				"(deployed, promoted, rolled_back) and trigger (manual, automatic)."}, []string{"outcome", "trigger"}),
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
	if m.replies, err = register(reg, m.replies); err != nil {
		return nil, err
	}
	if m.replyTime, err = register(reg, m.replyTime); err != nil {
		return nil, err
	}
	if m.tokens, err = register(reg, m.tokens); err != nil {
		return nil, err
	}
	if m.cost, err = register(reg, m.cost); err != nil {
		return nil, err
	}
	if m.deploys, err = register(reg, m.deploys); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the identical collector a previous runtime on the
// same registry registered, so two runtimes (tests, benchmarks) never fail each other.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	c, err := promreg.Register(reg, c)
	if err != nil {
		return c, fmt.Errorf("actors: %w", err)
	}
	return c, nil
}

// agentSeries are the series of one agent type, resolved once: resolving label
// values hashes them on every call, and the set of agent types is small.
type agentSeries struct {
	replies                    map[string]prometheus.Counter // by outcome
	time                       prometheus.Observer
	prompt, completion, costUS prometheus.Counter
}

// agentOutcomes are the outcome label values of kowai_agent_replies_total.
var agentOutcomes = []string{"ok", "canceled", "timeout", "failed"}

// series returns agentType's series.
func (m *metrics) series(agentType string) *agentSeries {
	m.agentMu.RLock()
	s := m.agents[agentType]
	m.agentMu.RUnlock()
	if s != nil {
		return s
	}
	s = &agentSeries{replies: make(map[string]prometheus.Counter, len(agentOutcomes)), time: m.replyTime.WithLabelValues(agentType),
		prompt: m.tokens.WithLabelValues(agentType, "prompt"), completion: m.tokens.WithLabelValues(agentType, "completion"),
		costUS: m.cost.WithLabelValues(agentType)}
	for _, o := range agentOutcomes {
		s.replies[o] = m.replies.WithLabelValues(agentType, o)
	}
	m.agentMu.Lock()
	defer m.agentMu.Unlock()
	if m.agents == nil {
		m.agents = map[string]*agentSeries{}
	}
	m.agents[agentType] = s
	return s
}

// reply records one reply an agent worker ran for an agent of type agentType;
// usage counts only when the reply completed. outcome is one of agentOutcomes.
func (m *metrics) reply(agentType, outcome string, seconds float64, promptTokens, completionTokens int, costUSD float64) {
	s := m.series(agentType)
	s.replies[outcome].Inc()
	s.time.Observe(seconds)
	if outcome != "ok" {
		return
	}
	s.prompt.Add(float64(promptTokens))
	s.completion.Add(float64(completionTokens))
	s.costUS.Add(costUSD)
}
