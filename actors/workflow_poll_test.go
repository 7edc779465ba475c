package actors

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"
)

func TestClaimLoopRoundsPerTick(t *testing.T) {
	errRound := errors.New("round failed")
	type result struct {
		n   int
		err error
	}
	tests := []struct {
		name      string
		full      int
		maxRounds int
		results   []result // the rounds before the last, which stops the loop
		wantTicks int      // ticks consumed when the last round runs
	}{
		{"a full batch claims again in the same tick", 2, 10, []result{{2, nil}, {2, nil}, {1, nil}}, 2},
		{"a short batch ends the tick", 2, 10, []result{{1, nil}, {1, nil}}, 3},
		{"maxRounds caps a tick", 1, 2, []result{{1, nil}, {1, nil}, {1, nil}}, 2},
		{"an error ends the tick", 1, 10, []result{{1, nil}, {0, errRound}, {1, nil}}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const buffered = 10
			ticks := make(chan time.Time, buffered)
			for range buffered {
				ticks <- time.Time{}
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			calls, gotTicks := 0, -1
			l := claimLoop{full: tc.full, maxRounds: tc.maxRounds, log: slog.New(slog.DiscardHandler), failMsg: "test round failed",
				round: func(context.Context) (int, error) {
					defer func() { calls++ }()
					if calls < len(tc.results) {
						return tc.results[calls].n, tc.results[calls].err
					}
					if gotTicks < 0 {
						gotTicks = buffered - len(ticks)
					}
					cancel()
					return 0, nil
				}}
			if err := l.loop(ctx, ticks); err != nil {
				t.Fatalf("loop: %v", err)
			}
			if gotTicks != tc.wantTicks {
				t.Errorf("ticks consumed by round %d = %d, want %d", len(tc.results)+1, gotTicks, tc.wantTicks)
			}
		})
	}
}
