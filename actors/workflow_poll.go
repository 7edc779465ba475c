package actors

import (
	"context"
	"log/slog"
	"time"
)

// claimLoop is the periodic claim loop shared by run recovery, the scheduler and the
// webhook notifier: every interval it calls round, which claims one batch and returns
// how many items it claimed. Within one tick it calls round again while the last round
// claimed at least full items (more may be due), for at most maxRounds rounds; an
// error ends the tick and is logged with failMsg. It returns nil when ctx ends.
type claimLoop struct {
	interval  time.Duration
	full      int
	maxRounds int
	log       *slog.Logger
	failMsg   string
	round     func(context.Context) (int, error)
}

func (l claimLoop) run(ctx context.Context) error {
	t := time.NewTicker(l.interval)
	defer t.Stop()
	return l.loop(ctx, t.C)
}

// loop runs the ticks that arrive on ticks until ctx ends.
func (l claimLoop) loop(ctx context.Context, ticks <-chan time.Time) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticks:
		}
		for range l.maxRounds {
			n, err := l.round(ctx)
			if err != nil {
				l.log.Warn(l.failMsg, "error", err)
			}
			if err != nil || n < l.full || ctx.Err() != nil {
				break
			}
		}
	}
}
