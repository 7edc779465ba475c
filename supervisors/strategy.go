package supervisors

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

var (
	// ErrInvalidOptions means Options, a Backoff or a RestartBudget holds an
	// unusable value.
	ErrInvalidOptions = errors.New("supervisors: invalid options")
	// ErrRestartBudgetExhausted marks the failure a Strategy escalates when a
	// child used up its RestartBudget. The escalated reason is a Failure of
	// the child's failure kind whose error wraps both this sentinel and the
	// child's own reason.
	ErrRestartBudgetExhausted = errors.New("supervisors: restart budget exhausted")
)

// Options configures a Strategy. ActorKind and Metrics are required; every
// other zero field takes its default.
type Options struct {
	// ActorKind names the supervised children in logs and in the "kind"
	// metric label, e.g. "agent-worker".
	ActorKind string
	// Metrics counts decisions; share one per registry among strategies.
	Metrics *Metrics
	// Logger receives one line per decision; discarded if nil.
	Logger *slog.Logger
	// Classifiers recognise the caller's own errors (see Classify).
	Classifiers []Classifier
	// Decider is the policy; DefaultDecider if nil.
	Decider Decider
	// Backoff spaces out restarts.
	Backoff Backoff
	// Budget bounds restarts before the failure escalates.
	Budget RestartBudget
}

// Strategy is an actor.SupervisorStrategy that classifies each failure,
// asks its Decider what to do, and restarts with exponential backoff within
// a restart budget. It supervises each failing child on its own, like
// protoactor's one-for-one strategy. It is immutable and may be shared by
// any number of supervisors.
//
// The failure history lives in the child's actor.RestartStatistics, which
// protoactor keeps with the child and hands to the strategy on the
// supervisor's goroutine, so the Strategy keeps no per-child state. Its
// timestamps come from the time package (virtualised by testing/synctest).
type Strategy struct {
	actorKind   string
	metrics     *Metrics
	log         *slog.Logger
	classifiers []Classifier
	decide      Decider
	backoff     Backoff
	budget      RestartBudget
}

var _ actor.SupervisorStrategy = (*Strategy)(nil)

// NewStrategy validates opts and returns a Strategy. Errors wrap
// ErrInvalidOptions.
func NewStrategy(opts Options) (*Strategy, error) {
	if opts.ActorKind == "" {
		return nil, fmt.Errorf("%w: ActorKind is required", ErrInvalidOptions)
	}
	if opts.Metrics == nil {
		return nil, fmt.Errorf("%w: Metrics is required", ErrInvalidOptions)
	}
	if err := opts.Backoff.Validate(); err != nil {
		return nil, err
	}
	if err := opts.Budget.Validate(); err != nil {
		return nil, err
	}
	s := &Strategy{
		actorKind:   opts.ActorKind,
		metrics:     opts.Metrics,
		log:         opts.Logger,
		classifiers: slices.Clone(opts.Classifiers),
		decide:      opts.Decider,
		backoff:     opts.Backoff.withDefaults(),
		budget:      opts.Budget.withDefaults(),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "supervisor")
	if s.decide == nil {
		s.decide = DefaultDecider
	}
	if total := s.restartDelays(); total >= s.budget.Window {
		return nil, fmt.Errorf("%w: %d restarts take at least %s of backoff, not less than the %s restart window", ErrInvalidOptions, s.budget.MaxRestarts, total, s.budget.Window)
	}
	return s, nil
}

// restartDelays sums the un-jittered delays of a full budget of restarts,
// stopping early once it reaches the window.
func (s *Strategy) restartDelays() time.Duration {
	var total time.Duration
	for attempt := 1; attempt <= s.budget.MaxRestarts && total < s.budget.Window; attempt++ {
		total += s.backoff.ceiling(attempt)
	}
	return total
}

// HandleFailure implements actor.SupervisorStrategy. protoactor calls it on
// the supervisor's goroutine while the child's mailbox is suspended.
//
// A restart is delayed by the backoff: the child stays suspended, keeping
// the messages that arrive meanwhile, until a timer restarts it. If the
// supervisor stops first, the child stops with it and the late restart goes
// to dead letters. An escalated child stays suspended until its supervisor
// is restarted or stopped, which stops the child too.
func (s *Strategy) HandleFailure(system *actor.ActorSystem, supervisor actor.Supervisor, child *actor.PID, rs *actor.RestartStatistics, reason, message any) {
	kind := Classify(reason, s.classifiers...)
	attrs := []any{
		"kind", s.actorKind,
		"reason", kind.String(),
		"child", child.GetAddress() + "/" + child.GetId(),
		"cause", reason,
		"message_type", fmt.Sprintf("%T", message),
	}
	switch directive := s.decide(kind); directive {
	case actor.RestartDirective:
		s.restart(system, supervisor, child, rs, kind, reason, message, attrs)
	case actor.ResumeDirective:
		s.log.Info("supervisor resuming child", attrs...)
		publish(system, child, reason, directive)
		supervisor.ResumeChildren(child)
	case actor.StopDirective:
		s.log.Warn("supervisor stopping child", attrs...)
		s.metrics.stops.WithLabelValues(s.actorKind, kind.String()).Inc()
		publish(system, child, reason, directive)
		supervisor.StopChildren(child)
	default:
		// EscalateDirective, and any directive this strategy does not know:
		// the supervisor's own supervisor is better placed to decide.
		s.escalate(supervisor, kind, reason, message, attrs)
	}
}

func (s *Strategy) restart(system *actor.ActorSystem, supervisor actor.Supervisor, child *actor.PID, rs *actor.RestartStatistics, kind Kind, reason, message any, attrs []any) {
	// Forget a history that lies wholly outside the window, so the backoff
	// starts small again and the statistics stay short.
	if rs.NumberOfFailures(s.budget.Window) == 0 {
		rs.Reset()
	}
	rs.Fail()
	failures := rs.NumberOfFailures(s.budget.Window)
	if failures > s.budget.MaxRestarts {
		rs.Reset()
		err := fmt.Errorf("%w: child %s failed %d times within %s: %w",
			ErrRestartBudgetExhausted, child.GetId(), failures, s.budget.Window, asError(reason))
		s.escalate(supervisor, kind, NewFailure(kind, err), message, append(attrs, "failures", failures))
		return
	}
	delay := s.backoff.Delay(failures)
	s.log.Warn("supervisor restarting child", append(attrs, "failures", failures, "delay", delay)...)
	s.metrics.restarts.WithLabelValues(s.actorKind, kind.String()).Inc()
	publish(system, child, reason, actor.RestartDirective)
	if delay <= 0 {
		supervisor.RestartChildren(child)
		return
	}
	// RestartChildren only sends a system message, so it is safe to call
	// from the timer's goroutine.
	time.AfterFunc(delay, func() { supervisor.RestartChildren(child) })
}

// escalate fails the supervisor itself with reason. Like protoactor's own
// strategies it publishes no SupervisorEvent: the next supervisor up does.
func (s *Strategy) escalate(supervisor actor.Supervisor, kind Kind, reason, message any, attrs []any) {
	s.log.Error("supervisor escalating failure", attrs...)
	s.metrics.escalations.WithLabelValues(s.actorKind, kind.String()).Inc()
	supervisor.EscalateFailure(reason, message)
}

// publish tells the actor system's event stream about a decision, as
// protoactor's own strategies do, so existing subscribers keep working.
func publish(system *actor.ActorSystem, child *actor.PID, reason any, directive actor.Directive) {
	system.EventStream.Publish(&actor.SupervisorEvent{Child: child, Reason: reason, Directive: directive})
}
