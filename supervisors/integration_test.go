package supervisors

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// These tests run a real local actor system inside a synctest bubble, so the
// backoff timers run on virtual time and synctest.Wait is the point at which
// every actor has processed everything it can.

// failWith makes the worker panic with reason.
type failWith struct{ reason any }

// ping makes the worker log that it is alive.
type ping struct{}

// journal records what the actors saw, in order.
type journal struct {
	mu      sync.Mutex
	entries []string
}

func (j *journal) add(entry string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.entries = append(j.entries, entry)
}

// since returns the entries from index from on, and the current length.
func (j *journal) since(from int) ([]string, int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.entries[from:]), len(j.entries)
}

// worker is the supervised child, standing in for a model-call worker.
type worker struct{ j *journal }

func (w *worker) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		w.j.add("worker started")
	case *actor.Stopped:
		w.j.add("worker stopped")
	case ping:
		w.j.add("worker ping")
	case failWith:
		panic(msg.reason)
	}
}

// owner stands in for an agent grain: it spawns one worker and forwards work
// to it. Its props carry the Strategy under test.
type owner struct {
	j      *journal
	worker *actor.PID
}

func (o *owner) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		o.j.add("owner started")
		o.worker = ctx.Spawn(actor.PropsFromProducer(func() actor.Actor { return &worker{j: o.j} }))
	case *actor.Restarting:
		o.j.add("owner restarting")
	case *actor.Terminated:
		o.j.add("owner saw worker terminate")
	case ping, failWith:
		ctx.Send(o.worker, msg)
	}
}

// answeringOwner answers for the message a failed worker dropped, then lets
// the strategy decide, as an agent grain must for its requester.
type answeringOwner struct {
	owner
	strategy *Strategy
}

func (o *answeringOwner) HandleFailure(system *actor.ActorSystem, sup actor.Supervisor, child *actor.PID, rs *actor.RestartStatistics, reason, message any) {
	o.j.add(fmt.Sprintf("owner answered for %T after a %s", message, Classify(reason)))
	o.strategy.HandleFailure(system, sup, child, rs, reason, message)
}

func newOwner(j *journal, _ *Strategy) actor.Actor { return &owner{j: j} }

func newAnsweringOwner(j *journal, s *Strategy) actor.Actor {
	return &answeringOwner{owner: owner{j: j}, strategy: s}
}

// liveSystem is an actor system with one owner supervised by the root's
// default strategy and one worker supervised by a Strategy.
type liveSystem struct {
	t      *testing.T
	system *actor.ActorSystem
	owner  *actor.PID
	j      *journal
	seen   int
	reg    *prometheus.Registry
}

var errFenced = errors.New("snapshot version conflict")

func startLiveSystem(t *testing.T, produce func(*journal, *Strategy) actor.Actor, backoff Backoff, budget RestartBudget) *liveSystem {
	t.Helper()
	reg := prometheus.NewRegistry()
	metrics, err := NewMetrics(reg)
	if err != nil {
		t.Fatalf("NewMetrics: %v", err)
	}
	strategy, err := NewStrategy(Options{
		ActorKind:   "agent-worker",
		Metrics:     metrics,
		Classifiers: []Classifier{Match(KindConflict, errFenced)},
		Backoff:     backoff,
		Budget:      budget,
	})
	if err != nil {
		t.Fatalf("NewStrategy: %v", err)
	}
	system := actor.NewActorSystem(actor.WithLoggerFactory(discardLogger))
	t.Cleanup(system.Shutdown)
	j := &journal{}
	props := actor.PropsFromProducer(func() actor.Actor { return produce(j, strategy) }, actor.WithSupervisor(strategy))
	s := &liveSystem{t: t, system: system, owner: system.Root.Spawn(props), j: j, reg: reg}
	s.expect("owner started", "worker started")
	return s
}

// send delivers msg to the worker through its owner.
func (s *liveSystem) send(msg any) { s.system.Root.Send(s.owner, msg) }

// expect waits until every actor is idle and checks that the journal grew
// by exactly want since the last call.
func (s *liveSystem) expect(want ...string) {
	s.t.Helper()
	synctest.Wait()
	got, n := s.j.since(s.seen)
	s.seen = n
	if !slices.Equal(got, want) {
		s.t.Fatalf("actors did %q, want %q", got, want)
	}
}

func (s *liveSystem) expectMetrics(want string) {
	s.t.Helper()
	if err := testutil.GatherAndCompare(s.reg, strings.NewReader(want),
		"kowai_actor_restarts_total", "kowai_actor_stops_total", "kowai_actor_escalations_total"); err != nil {
		s.t.Error(err)
	}
}

func TestLiveRestartAfterDelayKeepsQueuedMessages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := startLiveSystem(t, newOwner, Backoff{Initial: time.Second, Jitter: JitterNone}, RestartBudget{})

		s.send(failWith{NewFailure(KindModelError, errors.New("503 from provider"))})
		s.send(ping{})
		s.expect() // suspended: the ping waits in the mailbox

		time.Sleep(time.Second - time.Nanosecond)
		s.expect()
		time.Sleep(time.Nanosecond)
		s.expect("worker started", "worker ping")

		// A second failure backs off twice as long.
		s.send(failWith{"nil pointer in a tool"})
		time.Sleep(2*time.Second - time.Nanosecond)
		s.expect()
		time.Sleep(time.Nanosecond)
		s.expect("worker started")

		s.expectMetrics(`
# HELP kowai_actor_restarts_total Actor restarts scheduled by a supervisor, by actor kind and failure kind.
# TYPE kowai_actor_restarts_total counter
kowai_actor_restarts_total{kind="agent-worker",reason="model_error"} 1
kowai_actor_restarts_total{kind="agent-worker",reason="panic"} 1
`)
	})
}

func TestLiveFencingConflictStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := startLiveSystem(t, newOwner, Backoff{}, RestartBudget{})

		s.send(failWith{errFenced})
		s.expect("worker stopped", "owner saw worker terminate")
		// The ping goes to dead letters, and long past any backoff the fenced
		// worker has not come back. (The sleep also lets the dead-letter
		// throttle's timer expire, which the bubble needs to end.)
		s.send(ping{})
		time.Sleep(time.Hour)
		s.expect()

		s.expectMetrics(`
# HELP kowai_actor_stops_total Actors stopped by a supervisor after a failure, by actor kind and failure kind.
# TYPE kowai_actor_stops_total counter
kowai_actor_stops_total{kind="agent-worker",reason="conflict"} 1
`)
	})
}

func TestLiveBudgetExhaustionEscalates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := startLiveSystem(t, newOwner,
			Backoff{Initial: time.Second, Jitter: JitterNone},
			RestartBudget{MaxRestarts: 2, Window: time.Minute})
		timeout := NewFailure(KindTimeout, errors.New("model call ran past 30s"))

		s.send(failWith{timeout})
		time.Sleep(time.Second)
		s.expect("worker started")
		s.send(failWith{timeout})
		time.Sleep(2 * time.Second)
		s.expect("worker started")

		// The third failure within the window escalates: the owner fails,
		// and the root's default strategy restarts it, which stops the
		// suspended worker and spawns a fresh one.
		s.send(failWith{timeout})
		s.expect("owner restarting", "worker stopped", "owner saw worker terminate", "owner started", "worker started")

		// The new worker works at once.
		s.send(ping{})
		s.expect("worker ping")

		s.expectMetrics(`
# HELP kowai_actor_escalations_total Actor failures escalated to the supervisor's own supervisor, by actor kind and failure kind.
# TYPE kowai_actor_escalations_total counter
kowai_actor_escalations_total{kind="agent-worker",reason="timeout"} 1
# HELP kowai_actor_restarts_total Actor restarts scheduled by a supervisor, by actor kind and failure kind.
# TYPE kowai_actor_restarts_total counter
kowai_actor_restarts_total{kind="agent-worker",reason="timeout"} 2
`)
	})
}

func TestLiveOwnerAnswersForFailedWorker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := startLiveSystem(t, newAnsweringOwner, Backoff{Initial: time.Second, Jitter: JitterNone}, RestartBudget{})

		s.send(failWith{NewFailure(KindModelError, errors.New("503 from provider"))})
		s.expect("owner answered for supervisors.failWith after a model_error")
		time.Sleep(time.Second)
		s.expect("worker started")
	})
}
