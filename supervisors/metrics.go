package supervisors

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kowai/kowai/internal/promreg"
)

// Metrics counts supervision decisions. Create one per registry and pass it
// to every Strategy: the strategies of all actor kinds share its counters,
// told apart by the "kind" label. It is safe for concurrent use.
//
// Counters, each labelled kind (the supervised actor kind, from
// Options.ActorKind) and reason (the failure Kind):
//   - kowai_actor_restarts_total: restarts scheduled;
//   - kowai_actor_stops_total: children stopped;
//   - kowai_actor_escalations_total: failures escalated to the supervisor's
//     own supervisor, by the Decider or because the RestartBudget ran out.
type Metrics struct {
	restarts    *prometheus.CounterVec
	stops       *prometheus.CounterVec
	escalations *prometheus.CounterVec
}

// NewMetrics creates the counters and registers them with reg. If reg
// already holds identical counters (NewMetrics was called before with the
// same registry), those are reused, so two callers can never fail each
// other. A nil reg leaves the counters unregistered.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	labels := []string{"kind", "reason"}
	m := &Metrics{
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kowai_actor_restarts_total",
			Help: "Actor restarts scheduled by a supervisor, by actor kind and failure kind.",
		}, labels),
		stops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kowai_actor_stops_total",
			Help: "Actors stopped by a supervisor after a failure, by actor kind and failure kind.",
		}, labels),
		escalations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kowai_actor_escalations_total",
			Help: "Actor failures escalated to the supervisor's own supervisor, by actor kind and failure kind.",
		}, labels),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []**prometheus.CounterVec{&m.restarts, &m.stops, &m.escalations} {
		existing, err := register(reg, *c)
		if err != nil {
			return nil, err
		}
		*c = existing
	}
	return m, nil
}

// register registers c, or returns the identical collector already
// registered in its place.
func register(reg prometheus.Registerer, c *prometheus.CounterVec) (*prometheus.CounterVec, error) {
	c, err := promreg.Register(reg, c)
	if err != nil {
		return nil, fmt.Errorf("supervisors: %w", err)
	}
	return c, nil
}
