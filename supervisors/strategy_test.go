package supervisors

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// supervisorCall is one thing a Strategy asked of its supervisor.
type supervisorCall struct {
	op     string // restart, resume, stop or escalate
	at     time.Time
	reason any
}

// fakeSupervisor records what a Strategy asks of it. Restarts arrive on a
// timer's goroutine, hence the lock.
type fakeSupervisor struct {
	mu    sync.Mutex
	calls []supervisorCall
}

var _ actor.Supervisor = (*fakeSupervisor)(nil)

func (f *fakeSupervisor) record(op string, reason any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, supervisorCall{op: op, at: time.Now(), reason: reason})
}

func (f *fakeSupervisor) Children() []*actor.PID        { return nil }
func (f *fakeSupervisor) EscalateFailure(reason, _ any) { f.record("escalate", reason) }
func (f *fakeSupervisor) RestartChildren(...*actor.PID) { f.record("restart", nil) }
func (f *fakeSupervisor) StopChildren(...*actor.PID)    { f.record("stop", nil) }
func (f *fakeSupervisor) ResumeChildren(...*actor.PID)  { f.record("resume", nil) }

func (f *fakeSupervisor) snapshot() []supervisorCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]supervisorCall(nil), f.calls...)
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines decodes the JSON log lines written so far.
func (b *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(b.buf.Bytes()), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// harness drives a Strategy directly, as a supervisor's actor context would,
// against a fake supervisor, for one child.
type harness struct {
	t        *testing.T
	system   *actor.ActorSystem
	strategy *Strategy
	metrics  *Metrics
	sup      *fakeSupervisor
	child    *actor.PID
	rs       *actor.RestartStatistics
	logs     *syncBuffer
	events   *[]*actor.SupervisorEvent
}

const testActorKind = "test-worker"

// newHarness builds a Strategy from opts, filling in ActorKind, Metrics and
// Logger. Call it inside a synctest bubble.
func newHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	metrics, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatalf("NewMetrics: %v", err)
	}
	logs := &syncBuffer{}
	opts.ActorKind = testActorKind
	opts.Metrics = metrics
	opts.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	strategy, err := NewStrategy(opts)
	if err != nil {
		t.Fatalf("NewStrategy: %v", err)
	}
	system := actor.NewActorSystem(actor.WithLoggerFactory(discardLogger))
	t.Cleanup(system.Shutdown)
	var (
		mu     sync.Mutex
		events []*actor.SupervisorEvent
	)
	system.EventStream.Subscribe(func(evt any) {
		if e, ok := evt.(*actor.SupervisorEvent); ok {
			mu.Lock()
			defer mu.Unlock()
			events = append(events, e)
		}
	})
	return &harness{
		t: t, system: system, strategy: strategy, metrics: metrics,
		sup: &fakeSupervisor{}, child: actor.NewPID("nonhost", "parent/worker"),
		rs: actor.NewRestartStatistics(), logs: logs, events: &events,
	}
}

func discardLogger(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }

func (h *harness) fail(reason any) {
	h.strategy.HandleFailure(h.system, h.sup, h.child, h.rs, reason, "the failed message")
}

// expectRestartAfter asserts that the restart scheduled by the last failure
// happens exactly delay after now, and not a nanosecond earlier.
func (h *harness) expectRestartAfter(delay time.Duration) {
	h.t.Helper()
	start := time.Now()
	before := len(h.sup.snapshot())
	time.Sleep(delay - time.Nanosecond)
	synctest.Wait()
	if calls := h.sup.snapshot(); len(calls) != before {
		h.t.Fatalf("supervisor called %v before the %s delay was over", calls[before:], delay)
	}
	time.Sleep(time.Nanosecond)
	synctest.Wait()
	calls := h.sup.snapshot()
	if len(calls) != before+1 || calls[before].op != "restart" {
		h.t.Fatalf("after %s: supervisor calls %v, want exactly one restart", delay, calls[before:])
	}
	if got := calls[before].at.Sub(start); got != delay {
		h.t.Fatalf("restart after %s, want %s", got, delay)
	}
}

func (h *harness) count(vec *prometheus.CounterVec, reason Kind) float64 {
	return testutil.ToFloat64(vec.WithLabelValues(testActorKind, reason.String()))
}

func TestStrategyRestartBackoffGrowsAndCaps(t *testing.T) {
	// Initial 1s, cap 4s: un-jittered delays 1s, 2s, 4s, 4s, 4s.
	tests := []struct {
		name   string
		jitter Jitter
		rand   float64
		want   []time.Duration
	}{
		{"no jitter", JitterNone, 0.5, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second, 4 * time.Second}},
		{"full jitter", JitterFull, 0.25, []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, time.Second, time.Second}},
		{"equal jitter", JitterEqual, 0.5, []time.Duration{750 * time.Millisecond, 1500 * time.Millisecond, 3 * time.Second, 3 * time.Second, 3 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, Options{
					Backoff: Backoff{Initial: time.Second, Max: 4 * time.Second, Jitter: tt.jitter, Rand: fixedRand(tt.rand)},
					Budget:  RestartBudget{MaxRestarts: 10, Window: time.Hour},
				})
				for i, want := range tt.want {
					h.fail(NewFailure(KindModelError, errors.New("503")))
					h.expectRestartAfter(want)
					if got := h.rs.FailureCount(); got != i+1 {
						t.Fatalf("after failure %d: RestartStatistics count %d", i+1, got)
					}
				}
				if got := h.count(h.metrics.restarts, KindModelError); got != float64(len(tt.want)) {
					t.Errorf("restarts_total{reason=model_error} = %v, want %d", got, len(tt.want))
				}
			})
		})
	}
}

func TestStrategyBudgetExhaustionEscalates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Options{
			Backoff: Backoff{Initial: time.Second, Max: 10 * time.Second, Jitter: JitterNone},
			Budget:  RestartBudget{MaxRestarts: 3, Window: time.Minute},
		})
		cause := errors.New("provider unavailable")
		failure := NewFailure(KindModelError, cause)
		for _, delay := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
			h.fail(failure)
			h.expectRestartAfter(delay)
		}

		h.fail(failure)
		synctest.Wait()
		calls := h.sup.snapshot()
		call := calls[len(calls)-1]
		if len(calls) != 4 || call.op != "escalate" {
			t.Fatalf("4th failure within the window: calls %v, want 3 restarts and an escalation", calls)
		}
		err, ok := call.reason.(error)
		if !ok {
			t.Fatalf("escalated reason %T, want an error", call.reason)
		}
		if !errors.Is(err, ErrRestartBudgetExhausted) || !errors.Is(err, cause) {
			t.Errorf("escalated %v: want it to wrap ErrRestartBudgetExhausted and the cause", err)
		}
		if got := Classify(err); got != KindModelError {
			t.Errorf("escalated reason classifies as %s, want the child's kind model_error", got)
		}
		if got := h.count(h.metrics.restarts, KindModelError); got != 3 {
			t.Errorf("restarts_total = %v, want 3", got)
		}
		if got := h.count(h.metrics.escalations, KindModelError); got != 1 {
			t.Errorf("escalations_total = %v, want 1", got)
		}

		// The budget starts afresh: the next failure restarts after the
		// initial delay again.
		h.fail(failure)
		h.expectRestartAfter(time.Second)
	})
}

func TestStrategyBudgetWindowSlides(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Options{
			Backoff: Backoff{Initial: time.Second, Max: 10 * time.Second, Jitter: JitterNone},
			Budget:  RestartBudget{MaxRestarts: 2, Window: 10 * time.Second},
		})
		h.fail("boom")
		h.expectRestartAfter(time.Second)
		h.fail("boom")
		h.expectRestartAfter(2 * time.Second)
		// Both failures leave the window; a third is a first attempt again
		// and does not use up the budget.
		time.Sleep(10 * time.Second)
		h.fail("boom")
		h.expectRestartAfter(time.Second)
		if got := h.count(h.metrics.escalations, KindPanic); got != 0 {
			t.Errorf("escalations_total = %v, want 0", got)
		}
		if got := h.count(h.metrics.restarts, KindPanic); got != 3 {
			t.Errorf("restarts_total{reason=panic} = %v, want 3", got)
		}
	})
}

func TestStrategyDirectives(t *testing.T) {
	errFenced := errors.New("snapshot version conflict")
	errBudget := errors.New("token budget used up")
	classifiers := []Classifier{Match(KindConflict, errFenced), Match(KindBudgetExceeded, errBudget)}
	always := func(d actor.Directive) Decider { return func(Kind) actor.Directive { return d } }

	tests := []struct {
		name    string
		decider Decider
		reason  any
		kind    Kind
		op      string
		msg     string
		// counter is the counter that must read 1, nil when none counts.
		counter func(*Metrics) *prometheus.CounterVec
		// event is the directive published on the event stream, or -1.
		event actor.Directive
	}{
		{"conflict stops", nil, NewFailure(KindConflict, errFenced), KindConflict, "stop", "supervisor stopping child", stops, actor.StopDirective},
		{"classified conflict stops", nil, fmt.Errorf("append: %w", errFenced), KindConflict, "stop", "supervisor stopping child", stops, actor.StopDirective},
		{"budget exceeded stops", nil, fmt.Errorf("call: %w", errBudget), KindBudgetExceeded, "stop", "supervisor stopping child", stops, actor.StopDirective},
		{"model error restarts", nil, NewFailure(KindModelError, errors.New("503")), KindModelError, "restart", "supervisor restarting child", restarts, actor.RestartDirective},
		{"timeout restarts", nil, fmt.Errorf("call: %w", context.DeadlineExceeded), KindTimeout, "restart", "supervisor restarting child", restarts, actor.RestartDirective},
		{"panic restarts", nil, "boom", KindPanic, "restart", "supervisor restarting child", restarts, actor.RestartDirective},
		{"unknown restarts", nil, errors.New("odd"), KindUnknown, "restart", "supervisor restarting child", restarts, actor.RestartDirective},
		{"decider escalates", always(actor.EscalateDirective), NewFailure(KindModelError, nil), KindModelError, "escalate", "supervisor escalating failure", escalations, -1},
		{"unknown directive escalates", always(actor.Directive(42)), "boom", KindPanic, "escalate", "supervisor escalating failure", escalations, -1},
		{"decider resumes", always(actor.ResumeDirective), "boom", KindPanic, "resume", "supervisor resuming child", nil, actor.ResumeDirective},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, Options{Decider: tt.decider, Classifiers: classifiers})
				h.fail(tt.reason)
				time.Sleep(DefaultMaxBackoff) // let any delayed restart fire
				synctest.Wait()

				calls := h.sup.snapshot()
				if len(calls) != 1 || calls[0].op != tt.op {
					t.Fatalf("supervisor calls %v, want one %s", calls, tt.op)
				}
				if tt.op == "escalate" && calls[0].reason != tt.reason {
					t.Errorf("escalated reason %v, want the original %v", calls[0].reason, tt.reason)
				}

				for _, vec := range []func(*Metrics) *prometheus.CounterVec{restarts, stops, escalations} {
					want := 0
					if tt.counter != nil && vec(h.metrics) == tt.counter(h.metrics) {
						want = 1
					}
					if got := testutil.CollectAndCount(vec(h.metrics)); got != want {
						t.Errorf("%d series in a counter, want %d", got, want)
					}
				}
				if tt.counter != nil {
					if got := h.count(tt.counter(h.metrics), tt.kind); got != 1 {
						t.Errorf("counter{reason=%s} = %v, want 1", tt.kind, got)
					}
				}

				lines := h.logs.lines(t)
				if len(lines) != 1 {
					t.Fatalf("%d log lines, want 1: %v", len(lines), lines)
				}
				for key, want := range map[string]string{
					"msg": tt.msg, "kind": testActorKind, "reason": tt.kind.String(),
					"child": "nonhost/parent/worker", "component": "supervisor",
				} {
					if got := lines[0][key]; got != want {
						t.Errorf("log %s = %v, want %q", key, got, want)
					}
				}
				if _, ok := lines[0]["cause"]; !ok {
					t.Errorf("log line has no cause: %v", lines[0])
				}

				events := *h.events
				if tt.event < 0 {
					if len(events) != 0 {
						t.Errorf("published %d supervisor events, want none", len(events))
					}
					return
				}
				if len(events) != 1 || events[0].Directive != tt.event || events[0].Child != h.child {
					t.Errorf("published %v, want one %s event for the child", events, tt.event)
				}
			})
		})
	}
}

func restarts(m *Metrics) *prometheus.CounterVec    { return m.restarts }
func stops(m *Metrics) *prometheus.CounterVec       { return m.stops }
func escalations(m *Metrics) *prometheus.CounterVec { return m.escalations }

func TestNewStrategyValidation(t *testing.T) {
	metrics, err := NewMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts Options
		ok   bool
	}{
		{"defaults", Options{ActorKind: "w", Metrics: metrics}, true},
		{"no actor kind", Options{Metrics: metrics}, false},
		{"no metrics", Options{ActorKind: "w"}, false},
		{"bad backoff", Options{ActorKind: "w", Metrics: metrics, Backoff: Backoff{Multiplier: 0.1}}, false},
		{"bad budget", Options{ActorKind: "w", Metrics: metrics, Budget: RestartBudget{MaxRestarts: -2}}, false},
		// 1s + 2s + 4s of backoff cannot fit three restarts into 5s.
		{"window shorter than backoff", Options{ActorKind: "w", Metrics: metrics,
			Backoff: Backoff{Initial: time.Second, Max: time.Minute}, Budget: RestartBudget{MaxRestarts: 3, Window: 5 * time.Second}}, false},
		{"window just long enough", Options{ActorKind: "w", Metrics: metrics,
			Backoff: Backoff{Initial: time.Second, Max: time.Minute}, Budget: RestartBudget{MaxRestarts: 3, Window: 8 * time.Second}}, true},
		{"huge budget", Options{ActorKind: "w", Metrics: metrics, Budget: RestartBudget{MaxRestarts: 1 << 40}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewStrategy(tt.opts)
			if tt.ok != (err == nil) {
				t.Fatalf("NewStrategy() error = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidOptions) {
				t.Errorf("NewStrategy() = %v, want it to wrap ErrInvalidOptions", err)
			}
			if err == nil && s == nil {
				t.Error("NewStrategy() returned a nil Strategy without an error")
			}
		})
	}
}

func TestStrategyZeroDelayRestartsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Full jitter may draw 0: the restart must then happen within
		// HandleFailure, with no timer.
		h := newHarness(t, Options{Backoff: Backoff{Jitter: JitterFull, Rand: fixedRand(0)}})
		h.fail("boom")
		if calls := h.sup.snapshot(); len(calls) != 1 || calls[0].op != "restart" {
			t.Fatalf("supervisor calls %v, want one immediate restart", calls)
		}
	})
}

func TestStrategyEscalatesNonErrorPanicAsError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Options{
			Backoff: Backoff{Initial: time.Second, Jitter: JitterNone},
			Budget:  RestartBudget{MaxRestarts: 1, Window: time.Minute},
		})
		h.fail("boom")
		h.expectRestartAfter(time.Second)
		h.fail("boom")
		calls := h.sup.snapshot()
		last := calls[len(calls)-1]
		err, ok := last.reason.(error)
		if last.op != "escalate" || !ok {
			t.Fatalf("last call %s with %T, want an escalation with an error", last.op, last.reason)
		}
		if !errors.Is(err, ErrRestartBudgetExhausted) || Classify(err) != KindPanic {
			t.Errorf("escalated %v (%s), want ErrRestartBudgetExhausted of kind panic", err, Classify(err))
		}
		if want := "panic: boom"; !strings.Contains(err.Error(), want) {
			t.Errorf("escalated %q, want it to mention %q", err, want)
		}
	})
}
