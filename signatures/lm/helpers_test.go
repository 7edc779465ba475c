package lm_test

import (
	"testing"

	"github.com/kowai/kowai/signatures/lm"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/tmc/langchaingo/llms"
)

func userReq(text string) *lm.Request {
	return &lm.Request{Messages: []llms.MessageContent{
		llms.TextParts(llms.ChatMessageTypeSystem, "You are terse."),
		llms.TextParts(llms.ChatMessageTypeHuman, text),
	}}
}

func newMetrics(t *testing.T) (*lm.Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := lm.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

// metric returns the value of the sample of name whose labels include
// labels (a counter, gauge or a histogram's count), or -1 when absent.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	samples:
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue samples
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return -1
}
