package promreg

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRegister(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := prometheus.CounterOpts{Name: "kowai_test_total", Help: "test"}
	first, err := Register(reg, prometheus.NewCounterVec(opts, []string{"a"}))
	if err != nil {
		t.Fatal(err)
	}
	second, err := Register(reg, prometheus.NewCounterVec(opts, []string{"a"}))
	if err != nil || second != first {
		t.Fatalf("second registration: %v, shared %v", err, second == first)
	}
	if _, err := Register(reg, prometheus.NewCounterVec(opts, []string{"b"})); err == nil {
		t.Fatal("a clashing collector was accepted")
	}
}
