package supervisors

import (
	"errors"
	"strings"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetricsSharedRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	shared, err := NewMetrics(reg)
	if err != nil {
		t.Fatalf("NewMetrics: %v", err)
	}
	// A second NewMetrics on the same registry must not fail and must count
	// into the same series.
	again, err := NewMetrics(reg)
	if err != nil {
		t.Fatalf("second NewMetrics on one registry: %v", err)
	}

	system := actor.NewActorSystem(actor.WithLoggerFactory(discardLogger))
	t.Cleanup(system.Shutdown)
	conflict := NewFailure(KindConflict, errors.New("fenced"))
	for _, s := range []struct {
		kind    string
		metrics *Metrics
	}{
		{"agent-worker", shared},
		{"workflow-task", shared},
		{"agent-worker", again},
	} {
		strategy, err := NewStrategy(Options{ActorKind: s.kind, Metrics: s.metrics})
		if err != nil {
			t.Fatalf("NewStrategy(%s): %v", s.kind, err)
		}
		strategy.HandleFailure(system, &fakeSupervisor{}, actor.NewPID("nonhost", "c"), actor.NewRestartStatistics(), conflict, nil)
	}

	want := `
# HELP kowai_actor_stops_total Actors stopped by a supervisor after a failure, by actor kind and failure kind.
# TYPE kowai_actor_stops_total counter
kowai_actor_stops_total{kind="agent-worker",reason="conflict"} 2
kowai_actor_stops_total{kind="workflow-task",reason="conflict"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "kowai_actor_stops_total"); err != nil {
		t.Error(err)
	}
}

func TestMetricsRegistrationConflict(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "kowai_actor_stops_total", Help: "something else"}))
	if _, err := NewMetrics(reg); err == nil {
		t.Fatal("NewMetrics over a different collector of the same name succeeded, want an error")
	}
}
