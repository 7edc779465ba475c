// Package supervisors is kowai's supervision policy: what happens to an actor
// that fails. It turns a failure into a Kind, asks a Decider (policy as code)
// what to do with that kind, and applies the answer as a protoactor
// actor.SupervisorStrategy: restart after an exponential backoff with jitter,
// resume, stop, or escalate to the next supervisor up. Every restart, stop and
// escalation is logged and counted.
//
// It supervises the children that do fallible work for kowai's grains, such
// as an agent's model-call workers and a workflow's task actors. A grain's
// own supervisor is protoactor's internal placement actor, so the strategy
// goes on the grain's props and governs the grain's children.
//
// # Failures and kinds
//
// protoactor reports a failure as the raw value an actor panicked with.
// Classify reduces it to one of the kinds KindPanic, KindModelError,
// KindTimeout, KindConflict (a fenced persistence write), KindBudgetExceeded
// or KindUnknown. An actor states the kind itself by panicking with a Failure:
//
//	if errors.Is(err, persistence.ErrConflict) {
//		panic(supervisors.NewFailure(supervisors.KindConflict, err))
//	}
//
// or the owner of a strategy registers Classifiers for the sentinels of
// packages this one does not import, so plain errors are recognised too:
//
//	classifiers := []supervisors.Classifier{
//		supervisors.Match(supervisors.KindConflict, persistence.ErrConflict),
//		supervisors.Match(supervisors.KindBudgetExceeded, lm.ErrBudgetExceeded),
//		supervisors.Match(supervisors.KindTimeout, lm.ErrTimeout),
//		supervisors.Match(supervisors.KindModelError, lm.ErrUnavailable, lm.ErrProvider),
//	}
//
// Errors with a Timeout() method, such as context.DeadlineExceeded, are
// timeouts without any classifier; runtime errors and non-error panic values
// are panics.
//
// # Deciding
//
// A Decider maps a kind to an actor.Directive. DefaultDecider restarts after
// panics, model errors, timeouts and unknown failures, and stops a child
// after a persistence conflict (a fenced-out activation must never come
// back) or an exceeded spending budget. Any other policy is a function.
//
// # Backoff and the restart budget
//
// Backoff computes capped exponential delays with equal, full or no jitter;
// its random source is injectable. A RestartBudget allows MaxRestarts
// restarts within a sliding Window; the next failure escalates, wrapped with
// ErrRestartBudgetExhausted. The budget counts in the child's
// actor.RestartStatistics, which protoactor keeps with the child, so a
// shared Strategy holds no per-child state. Its clock is the time package,
// which testing/synctest makes deterministic in tests.
//
// # Wiring a strategy
//
// Create one Metrics per registry and one Strategy per supervised actor
// kind, then give the strategy to the props of the parent:
//
//	metrics, err := supervisors.NewMetrics(registry)
//	if err != nil {
//		return err
//	}
//	strategy, err := supervisors.NewStrategy(supervisors.Options{
//		ActorKind:   "agent-worker",
//		Metrics:     metrics,
//		Logger:      logger,
//		Classifiers: classifiers,
//		Backoff:     supervisors.Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second},
//		Budget:      supervisors.RestartBudget{MaxRestarts: 5, Window: time.Minute},
//	})
//	if err != nil {
//		return err
//	}
//	props := actor.PropsFromProducer(newAgent, actor.WithSupervisor(strategy))
//
// Each child the agent spawns with ctx.Spawn is now supervised by strategy.
//
// # Reacting to a child's failure
//
// A restarted child drops the message it failed on, so nobody answers its
// requester. A parent that must answer (for example with a clear error to
// the session) implements actor.SupervisorStrategy itself; protoactor then
// calls the parent's HandleFailure, on the parent's own goroutine, instead of
// the props' strategy. It replies using the failed message and delegates the
// decision:
//
//	func (a *agent) HandleFailure(sys *actor.ActorSystem, sup actor.Supervisor, child *actor.PID,
//		rs *actor.RestartStatistics, reason, message any) {
//		a.failTurn(message, supervisors.Classify(reason, a.classifiers...))
//		a.strategy.HandleFailure(sys, sup, child, rs, reason, message)
//	}
//
// # Metrics and logs
//
// Metrics holds the counters kowai_actor_restarts_total,
// kowai_actor_stops_total and kowai_actor_escalations_total, labelled kind
// (Options.ActorKind) and reason (the failure Kind). Every decision is one
// log line with the attributes kind, reason, child and cause; restarts add
// failures and delay. Decisions other than escalation are also published on
// the actor system's event stream as *actor.SupervisorEvent, as protoactor's
// own strategies do.
package supervisors
