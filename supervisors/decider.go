package supervisors

import "github.com/asynkron/protoactor-go/actor"

// A Decider is the supervision policy: it maps a failure kind to what the
// supervisor does with the failing child. It must be safe for concurrent
// use; a pure function of the kind is.
//
// A Strategy applies the directives as follows:
//   - actor.RestartDirective: restart after a backoff delay, counted against
//     the RestartBudget; when the budget is used up the failure escalates.
//   - actor.ResumeDirective: the child keeps its state and goes on with its
//     next message; the failing message is dropped.
//   - actor.StopDirective: the child stops for good.
//   - actor.EscalateDirective: the supervisor fails itself with the same
//     reason, and its own supervisor decides.
type Decider func(kind Kind) actor.Directive

// DefaultDecider is the policy for kowai's actors:
//   - panic, model error, timeout and unknown failures restart with backoff,
//     because a fresh instance reloads its state and usually succeeds;
//   - a persistence conflict stops the child: it was fenced out by a newer
//     activation, and restarting it would only fight that activation;
//   - an exceeded spending budget stops the child: no restart can succeed
//     until someone raises the budget, so restarting would only spin.
//
// To change one kind, wrap it:
//
//	func(k supervisors.Kind) actor.Directive {
//		if k == supervisors.KindTimeout {
//			return actor.StopDirective
//		}
//		return supervisors.DefaultDecider(k)
//	}
func DefaultDecider(kind Kind) actor.Directive {
	switch kind {
	case KindConflict, KindBudgetExceeded:
		return actor.StopDirective
	default:
		return actor.RestartDirective
	}
}
