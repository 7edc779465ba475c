package cluster

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of a grain call, the values of kowai_grain_requests_total's outcome label
// (its help text lists them too).
const (
	// outcomeOK: the grain answered with its normal reply.
	outcomeOK = "ok"
	// outcomeRefused: the grain answered with an actorpb.ErrorReply, refusing or failing
	// the request (busy, forbidden, not found, model failure, ...). One value for every
	// code keeps the label small; session turns are counted by code in
	// kowai_chat_turns_total.
	outcomeRefused     = "refused"
	outcomeTimeout     = "timeout"
	outcomeUnavailable = "unavailable"
	outcomeCanceled    = "canceled"
	// outcomeInvalid: the request, or the reply, is not a registered protobuf message.
	outcomeInvalid = "invalid"
)

type metrics struct {
	members     prometheus.Gauge
	activations *prometheus.CounterVec
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		members: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kowai_cluster_members",
			Help: "Members in this node's view of the cluster, itself included.",
		}),
		activations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kowai_actor_activations_total",
			Help: "Grain activations started on this node.",
		}, []string{"kind"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kowai_grain_requests_total",
			Help: "Grain calls made through this node's client, by outcome: ok (normal reply), " +
				"refused (the grain answered with an error reply: busy, forbidden, not found, model failure, ...), " +
				"timeout, unavailable (not delivered, or the grain's node left), canceled (by the caller), " +
				"invalid (not a registered protobuf message).",
		}, []string{"kind", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kowai_grain_request_duration_seconds",
			Help:    "Duration of grain calls made through this node's client.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"kind"}),
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.members, m.activations, m.requests, m.duration} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("register cluster metrics: %w", err)
	}
	return m, nil
}
