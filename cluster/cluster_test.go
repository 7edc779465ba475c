package cluster

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/kowai/kowai/actors"
	"github.com/kowai/kowai/actors/actorpb"
)

func kind(name string) *pcluster.Kind {
	return pcluster.NewKind(name, actor.PropsFromFunc(func(actor.Context) {}))
}

func TestConfigValidation(t *testing.T) {
	cases := []struct {
		name  string
		cfg   Config
		field string // "" means valid
	}{
		{"zero config is a local node", Config{}, ""},
		{"wildcard remoting address", Config{Addr: "0.0.0.0:0"}, "Addr"},
		{"ipv6 wildcard remoting address", Config{Addr: "[::]:7000"}, "Addr"},
		{"hostless remoting address", Config{Addr: ":7000"}, "Addr"},
		{"bad port", Config{Addr: "127.0.0.1:99999"}, "Addr"},
		{"automanaged without peers", Config{Provider: ProviderAutomanaged}, "Peers"},
		{"automanaged on the wildcard", Config{Provider: ProviderAutomanaged, Peers: []string{"a:1"}, MembershipAddr: "0.0.0.0:6330"}, "MembershipAddr"},
		{"automanaged bad peer", Config{Provider: ProviderAutomanaged, Peers: []string{"nohost"}}, "Peers"},
		{"automanaged", Config{Provider: ProviderAutomanaged, Peers: []string{"127.0.0.1:6330", "127.0.0.1:6331"}, TLS: testTLS(t)}, ""},
		{"automanaged without TLS", Config{Provider: ProviderAutomanaged, Peers: []string{"127.0.0.1:6330"}}, "mutual TLS"},
		{"automanaged insecure", Config{Provider: ProviderAutomanaged, Peers: []string{"127.0.0.1:6330"}, Insecure: true}, ""},
		{"etcd without endpoints", Config{Provider: ProviderEtcd, TLS: testTLS(t)}, "EtcdEndpoints"},
		{"etcd", Config{Provider: ProviderEtcd, EtcdEndpoints: []string{"127.0.0.1:2379"}, TLS: testTLS(t)}, ""},
		{"etcd without TLS", Config{Provider: ProviderEtcd, EtcdEndpoints: []string{"127.0.0.1:2379"}}, "mutual TLS"},
		{"local with TLS", Config{TLS: testTLS(t)}, ""},
		{"k8s is not built in", Config{Provider: ProviderK8s}, "k8s"},
		{"unknown provider", Config{Provider: "consul"}, "Provider"},
		{"duplicate kind", Config{Kinds: []*pcluster.Kind{kind("a"), kind("a")}}, "Kinds"},
		{"nil kind", Config{Kinds: []*pcluster.Kind{nil}}, "Kinds"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("New: err = %v, want ErrConfig naming %s", err, tc.field)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Name != DefaultName || cfg.Provider != ProviderLocal || cfg.Addr != DefaultAddr ||
		cfg.MembershipAddr != DefaultMembershipAddr || cfg.RequestTimeout != DefaultRequestTimeout ||
		cfg.LeaveTimeout != DefaultLeaveTimeout || cfg.WatchdogGrace != DefaultWatchdogGrace ||
		cfg.WatchdogInterval != DefaultWatchdogInterval || cfg.Logger == nil || cfg.LocalGroup == nil {
		t.Fatalf("defaults = %+v", cfg)
	}
}

func TestMetricsRegistration(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := New(Config{Metrics: reg, Kinds: []*pcluster.Kind{kind("session")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Metrics: reg}); err == nil {
		t.Fatal("a second node on the same registry registered its metrics twice")
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
	}
	// Histograms and request counters appear with their first call; these exist at once.
	for _, want := range []string{"kowai_cluster_members", "kowai_actor_activations_total"} {
		if !names[want] {
			t.Errorf("metric %s not registered; have %v", want, names)
		}
	}
}

func TestWatchdog(t *testing.T) {
	t0 := time.Unix(1000, 0)
	type obs struct {
		at              time.Duration
		blocked, member bool
		want            error
	}
	cases := []struct {
		name string
		obs  []obs
	}{
		{"healthy", []obs{{0, false, true, nil}, {time.Hour, false, true, nil}}},
		{"missing within grace", []obs{{0, false, false, nil}, {10 * time.Second, false, false, nil}}},
		{"missing beyond grace", []obs{{0, false, false, nil}, {11 * time.Second, false, false, ErrNotMember}}},
		{"recovery resets the streak", []obs{{0, false, false, nil}, {9 * time.Second, false, true, nil}, {15 * time.Second, false, false, nil}, {24 * time.Second, false, false, nil}}},
		{"blocked beyond grace", []obs{{0, true, true, nil}, {11 * time.Second, true, true, ErrBlocked}}},
		{"blocked wins over missing", []obs{{0, false, false, nil}, {11 * time.Second, true, false, ErrBlocked}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := watchdog{grace: 10 * time.Second}
			for i, o := range tc.obs {
				err := w.observe(t0.Add(o.at), o.blocked, o.member)
				if !errors.Is(err, o.want) || (o.want == nil) != (err == nil) {
					t.Fatalf("observation %d: err = %v, want %v", i, err, o.want)
				}
			}
		})
	}
}

func TestCheckProto(t *testing.T) {
	type wrapped struct{ *actorpb.ErrorReply }
	var nilReply *actorpb.ErrorReply
	cases := []struct {
		name string
		msg  proto.Message
		ok   bool
	}{
		{"generated message", &actorpb.ErrorReply{}, true},
		{"well-known type", wrapperspb.String("x"), true},
		{"nil interface", nil, false},
		{"typed nil", nilReply, false},
		{"Go struct embedding a message", wrapped{&actorpb.ErrorReply{}}, false},
		{"dynamic message", dynamicpb.NewMessage((&actorpb.ErrorReply{}).ProtoReflect().Descriptor()), false},
	}
	for _, tc := range cases {
		err := checkProto(tc.msg)
		if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrNotProtobuf)) {
			t.Errorf("%s: err = %v", tc.name, err)
		}
	}
}

func TestClientBeforeStart(t *testing.T) {
	n, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Client().Call(t.Context(), "k", "i", wrapperspb.String("q")); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if err := n.Stop(t.Context()); err != nil {
		t.Fatalf("Stop before Start: %v", err)
	}
	if info := n.Info(); info.Self.ID != "" || len(info.Members) != 0 {
		t.Fatalf("info before start = %+v", info)
	}
}

func TestInflightWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var f inflight
		if err := f.wait(t.Context()); err != nil {
			t.Fatalf("idle wait: %v", err)
		}
		f.add(1)
		f.add(1)
		go func() {
			time.Sleep(time.Second)
			f.add(-1)
			time.Sleep(time.Second)
			f.add(-1)
		}()
		start := time.Now()
		if err := f.wait(t.Context()); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 2*time.Second {
			t.Fatalf("waited %s, want until the last call ended (2s)", d)
		}

		f.add(1)
		ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
		defer cancel()
		if err := f.wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("wait past deadline: %v", err)
		}
		f.add(-1)
	})
}

func TestActivationsRegistry(t *testing.T) {
	var counted []string
	a := newActivations(func(k string) { counted = append(counted, k) })
	a.instrument(kind("session"))
	a.instrument(kind("agent"))
	p1, p2 := actor.NewPID("n", "s1"), actor.NewPID("n", "s2")
	a.add("session", p1)
	a.add("session", p1) // a restart re-delivers Started
	a.add("session", p2)
	a.remove("session", p1)
	got := a.counts()
	if got["session"] != 1 || got["agent"] != 0 || len(got) != 2 {
		t.Fatalf("counts = %v", got)
	}
	if len(counted) != 2 {
		t.Fatalf("activations counted %v, want two (restart not counted)", counted)
	}
}

// A grain's refusal (an actorpb.ErrorReply) is counted as refused, not ok, and reaches
// the caller unchanged, where actorpb.As turns it into an *actorpb.Error.
func TestClassifyRefusal(t *testing.T) {
	refusal := actorpb.NewError(actorpb.Code_CODE_BUSY, "corr-1", "a reply is still running")
	reply, outcome, err := classify(t.Context(), nil, refusal, nil)
	if err != nil || outcome != "refused" || reply != refusal {
		t.Fatalf("classify(refusal) = %v, %q, %v; want the reply, refused, nil", reply, outcome, err)
	}
	if _, err := actorpb.As[*actorpb.TurnResult](reply, err); !errors.Is(err, actorpb.ErrBusy) {
		t.Fatalf("actorpb.As(refusal) = %v, want ErrBusy", err)
	}
	ok := &actorpb.Ack{}
	if reply, outcome, err := classify(t.Context(), nil, ok, nil); err != nil || outcome != "ok" || reply != ok {
		t.Fatalf("classify(ack) = %v, %q, %v", reply, outcome, err)
	}
}

func TestWorkflowRunKindMatchesActors(t *testing.T) {
	if WorkflowRunKind != actors.KindWorkflowRun {
		t.Fatalf("cluster.WorkflowRunKind %q != actors.KindWorkflowRun %q", WorkflowRunKind, actors.KindWorkflowRun)
	}
}
