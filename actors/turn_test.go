package actors

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
	"github.com/kowai/kowai/signatures/lm"
)

// appendsFailAfter fails every AppendMessages once ready is closed, so the
// failure comes while the agent runs.
type appendsFailAfter struct {
	LogWriter
	ready <-chan struct{}
}

func (f *appendsFailAfter) AppendMessages(ctx context.Context, _ ...persistence.Message) error {
	select {
	case <-f.ready:
	case <-ctx.Done():
		return ctx.Err()
	}
	return fmt.Errorf("injected: %w", persistence.ErrUnavailable)
}

// The user's message commits while the agent starts on it: the model is
// called before the message is durable (here the write fails only once the
// model was called). When the message cannot be stored, the turn answers
// unavailable, the model call is cancelled, and the log holds nothing of the
// turn. Before the overlap, the write came first and this turn timed out.
func TestUserMessageCommitsWhileTheAgentStarts(t *testing.T) {
	called, cancelled := make(chan struct{}), make(chan struct{})
	var calledOnce, cancelledOnce sync.Once
	model := lm.Func{ID: "test:blocking", Fn: func(ctx context.Context, _ *lm.Request) (*lm.Response, error) {
		calledOnce.Do(func() { close(called) })
		<-ctx.Done()
		cancelledOnce.Do(func() { close(cancelled) })
		return nil, ctx.Err()
	}}
	h := newHarness(t, persisttest.SQLite(t), harnessOptions{model: model, deps: func(d *Deps) {
		d.Writer = &appendsFailAfter{LogWriter: d.Writer, ready: called}
	}})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := h.send(ctx, conv1, 0, "hello", "k1"); !errors.Is(err, actorpb.ErrUnavailable) {
		t.Fatalf("turn whose message could not be stored: %v, want unavailable", err)
	}
	select {
	case <-cancelled:
	case <-ctx.Done():
		t.Fatal("the model call went on after the user's message failed to commit")
	}
	if msgs := h.logOf(conv1); len(msgs) != 0 {
		t.Fatalf("log %+v, want nothing of the failed turn", msgs)
	}
}
