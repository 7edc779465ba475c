package auth

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"

	"golang.org/x/sync/singleflight"
)

// TestSharedLookupSurvivesFirstCallersCancel: the caller whose context
// started a shared lookup gives up; the others waiting on it still get the
// answer, and the lookup itself was not cancelled.
func TestSharedLookupSurvivesFirstCallersCancel(t *testing.T) {
	synctest.Test(t, testSharedLookup)
}

func testSharedLookup(t *testing.T) {
	var g singleflight.Group
	started, release := make(chan struct{}), make(chan struct{})
	lookup := func(ctx context.Context) (string, error) {
		close(started)
		<-release
		if err := ctx.Err(); err != nil {
			return "", err
		}
		return "answer", nil
	}
	firstCtx, cancelFirst := context.WithCancel(t.Context())
	first := make(chan error, 1)
	go func() {
		_, err := shared(firstCtx, &g, "k", lookup)
		first <- err
	}()
	<-started
	second := make(chan string, 1)
	go func() {
		v, err := shared(t.Context(), &g, "k", func(context.Context) (string, error) {
			return "", errors.New("a second lookup ran")
		})
		if err != nil {
			v = err.Error()
		}
		second <- v
	}()
	// Both callers now wait on the one lookup.
	synctest.Wait()
	cancelFirst()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("first caller: %v, want context.Canceled", err)
	}
	close(release)
	if v := <-second; v != "answer" {
		t.Fatalf("second caller got %q, want the shared answer", v)
	}
}
