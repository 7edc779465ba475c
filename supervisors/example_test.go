package supervisors_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/kowai/kowai/supervisors"
	"github.com/prometheus/client_golang/prometheus"
)

// errStale stands in for a persistence package's conflict sentinel.
var errStale = errors.New("stale snapshot version")

func ExampleNewStrategy() {
	metrics, err := supervisors.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		panic(err)
	}
	strategy, err := supervisors.NewStrategy(supervisors.Options{
		ActorKind:   "agent-worker",
		Metrics:     metrics,
		Logger:      slog.New(slog.DiscardHandler),
		Classifiers: []supervisors.Classifier{supervisors.Match(supervisors.KindConflict, errStale)},
	})
	if err != nil {
		panic(err)
	}

	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
	defer system.Shutdown()

	stopped := make(chan struct{})
	worker := actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(string); ok {
			panic(fmt.Errorf("save turn: %w", errStale))
		}
	})
	// The strategy supervises the children of the actor whose props carry it.
	agent := actor.PropsFromFunc(func(ctx actor.Context) {
		switch ctx.Message().(type) {
		case *actor.Started:
			ctx.Send(ctx.Spawn(worker), "save the turn")
		case *actor.Terminated:
			close(stopped)
		}
	}, actor.WithSupervisor(strategy))
	system.Root.Spawn(agent)

	<-stopped
	fmt.Println("the fenced-out worker was stopped, not restarted")
	// Output: the fenced-out worker was stopped, not restarted
}

func ExampleClassify() {
	errBudget := errors.New("token budget used up")
	classifiers := []supervisors.Classifier{supervisors.Match(supervisors.KindBudgetExceeded, errBudget)}

	for _, reason := range []any{
		supervisors.NewFailure(supervisors.KindModelError, errors.New("503")),
		fmt.Errorf("call: %w", errBudget),
		fmt.Errorf("call: %w", context.DeadlineExceeded),
		"index out of range",
		errors.New("something else"),
	} {
		kind := supervisors.Classify(reason, classifiers...)
		fmt.Println(kind, supervisors.DefaultDecider(kind))
	}
	// Output:
	// model_error RestartDirective
	// budget_exceeded StopDirective
	// timeout RestartDirective
	// panic RestartDirective
	// unknown RestartDirective
}

func ExampleBackoff_Delay() {
	b := supervisors.Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Jitter: supervisors.JitterNone}
	for attempt := 1; attempt <= 6; attempt++ {
		fmt.Println(attempt, b.Delay(attempt))
	}
	// Output:
	// 1 100ms
	// 2 200ms
	// 3 400ms
	// 4 800ms
	// 5 1s
	// 6 1s
}
