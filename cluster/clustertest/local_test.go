package clustertest_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/cluster"
	"github.com/kowai/kowai/cluster/clusterpb"
	"github.com/kowai/kowai/cluster/clustertest"
	"github.com/kowai/kowai/cluster/clustertest/testpb"
)

func echo(ctx context.Context, t *testing.T, c cluster.GrainCaller, identity string, req *testpb.EchoRequest) (*testpb.EchoReply, error) {
	t.Helper()
	return actorpb.As[*testpb.EchoReply](c.Call(ctx, clustertest.EchoKind, identity, req))
}

// One local node serves every single-node behaviour of the client; starting a node
// costs about a second and stopping it three, so the cases share it.
func TestLocalNode(t *testing.T) {
	reg := prometheus.NewRegistry()
	nodes := clustertest.Start(t, clustertest.Options{Configure: func(_ int, cfg *cluster.Config) {
		cfg.Metrics = reg
		cfg.RequestTimeout = 400 * time.Millisecond
	}})
	n := nodes[0]
	c := n.Client()

	t.Run("reply carries headers", func(t *testing.T) {
		ctx := clusterpb.WithIdempotencyKey(clusterpb.WithCorrelationID(t.Context(), "corr-1"), "idem-1")
		got, err := echo(ctx, t, c, "a", &testpb.EchoRequest{Text: "hi"})
		if err != nil {
			t.Fatal(err)
		}
		if got.Text != "hi" || got.Identity != "a" || got.NodeAddress != n.Address() {
			t.Fatalf("reply = %v", got)
		}
		if got.CorrelationId != "corr-1" || got.IdempotencyKey != "idem-1" {
			t.Fatalf("headers not carried: %v", got)
		}
	})

	t.Run("error replies are refusals", func(t *testing.T) {
		cases := []struct {
			code actorpb.Code
			want error
		}{
			{actorpb.Code_CODE_NOT_FOUND, actorpb.ErrNotFound},
			{actorpb.Code_CODE_FORBIDDEN, actorpb.ErrForbidden},
			{actorpb.Code_CODE_BUSY, actorpb.ErrBusy},
			{actorpb.Code_CODE_MODEL_FAILURE, actorpb.ErrModelFailure},
			{actorpb.Code_CODE_INTERNAL, actorpb.ErrInternal},
		}
		okBefore := metricValue(t, reg, "kowai_grain_requests_total", "outcome", "ok")
		for _, tc := range cases {
			ctx := clusterpb.WithCorrelationID(t.Context(), "corr-err")
			_, err := echo(ctx, t, c, "errs", &testpb.EchoRequest{FailCode: tc.code, FailMessage: "nope"})
			if !errors.Is(err, tc.want) {
				t.Errorf("%s: err = %v, want %v", tc.code, err, tc.want)
			}
			var ae *actorpb.Error
			if !errors.As(err, &ae) || ae.Code != tc.code || ae.Message != "nope" || ae.CorrelationID != "corr-err" {
				t.Errorf("%s: grain error = %#v", tc.code, ae)
			}
		}
		// A refusal is not a successful call: the metric must tell them apart.
		if got := metricValue(t, reg, "kowai_grain_requests_total", "outcome", "refused"); got != float64(len(cases)) {
			t.Errorf("refused calls counted: %v, want %d", got, len(cases))
		}
		if got := metricValue(t, reg, "kowai_grain_requests_total", "outcome", "ok"); got != okBefore {
			t.Errorf("refusals counted as ok: %v ok calls, %v before", got, okBefore)
		}
	})

	t.Run("plain Go struct is rejected before sending", func(t *testing.T) {
		type wrapped struct{ *testpb.EchoRequest }
		before := served(t, c, "reject")
		_, err := c.Call(t.Context(), clustertest.EchoKind, "reject", wrapped{&testpb.EchoRequest{Text: "x"}})
		if !errors.Is(err, cluster.ErrNotProtobuf) {
			t.Fatalf("wrapped struct: err = %v, want ErrNotProtobuf", err)
		}
		var nilReq *testpb.EchoRequest
		if _, err := c.Call(t.Context(), clustertest.EchoKind, "reject", nilReq); !errors.Is(err, cluster.ErrNotProtobuf) {
			t.Fatalf("nil message: err = %v, want ErrNotProtobuf", err)
		}
		if after := served(t, c, "reject"); after != before+1 {
			t.Fatalf("grain served %d requests, want only the probe (%d)", after, before+1)
		}
	})

	t.Run("timed-out call is not re-sent", func(t *testing.T) {
		_, err := echo(t.Context(), t, c, "slow", &testpb.EchoRequest{DelayMs: 700})
		if !errors.Is(err, cluster.ErrTimeout) {
			t.Fatalf("err = %v, want ErrTimeout", err)
		}
		// The grain counted the slow request once; a re-send would make this 3.
		if got := served(t, c, "slow"); got != 2 {
			t.Fatalf("served = %d, want 2", got)
		}
	})

	t.Run("caller deadline and cancellation win", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := echo(ctx, t, c, "slow2", &testpb.EchoRequest{DelayMs: 350})
		if !errors.Is(err, cluster.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("deadline: err = %v", err)
		}
		if d := time.Since(start); d > 300*time.Millisecond {
			t.Fatalf("deadline of 100ms honoured after %s", d)
		}
		ctx, cancel = context.WithCancel(t.Context())
		time.AfterFunc(50*time.Millisecond, cancel)
		_, err = echo(ctx, t, c, "slow2", &testpb.EchoRequest{DelayMs: 350})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancel: err = %v", err)
		}
	})

	t.Run("unknown kind is unavailable", func(t *testing.T) {
		_, err := c.Call(t.Context(), "no-such-kind", "x", &testpb.EchoRequest{})
		if !errors.Is(err, cluster.ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
	})

	t.Run("info and metrics", func(t *testing.T) {
		for i := range 5 {
			if _, err := echo(t.Context(), t, c, "info-"+strconv.Itoa(i), &testpb.EchoRequest{}); err != nil {
				t.Fatal(err)
			}
		}
		info := n.Info()
		if len(info.Members) != 1 || info.Members[0].ID != n.ID() || info.Self.ID != n.ID() || info.Self.Address != n.Address() {
			t.Fatalf("info = %+v", info)
		}
		if got := info.Members[0].Kinds; len(got) != 1 || got[0] != clustertest.EchoKind {
			t.Fatalf("member kinds = %v", got)
		}
		acts := info.Activations[clustertest.EchoKind]
		if acts < 5 {
			t.Fatalf("activations = %d, want >= 5", acts)
		}
		if got := metricSum(t, reg, "kowai_actor_activations_total"); int(got) != acts {
			t.Fatalf("activations_total = %v, live activations %d (none passivated yet)", got, acts)
		}
		if got := metricSum(t, reg, "kowai_grain_requests_total"); got < 20 {
			t.Fatalf("grain requests counted: %v, want >= 20", got)
		}
		if got := metricSum(t, reg, "kowai_cluster_members"); got != 0 {
			t.Fatalf("members gauge = %v before Run, want 0 (Run maintains it)", got)
		}
	})
}

func served(t *testing.T, c cluster.GrainCaller, identity string) int64 {
	t.Helper()
	r, err := echo(t.Context(), t, c, identity, &testpb.EchoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return r.Served
}

// metricSum adds up every sample of the named counter or gauge family in reg.
func metricSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	return metricValue(t, reg, name, "", "")
}

// metricValue adds up the samples of the named counter or gauge family in
// reg whose label has the given value; an empty label matches every sample.
func metricValue(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if label == "" || slices.ContainsFunc(m.GetLabel(), func(lp *dto.LabelPair) bool {
				return lp.GetName() == label && lp.GetValue() == value
			}) {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return sum
}
