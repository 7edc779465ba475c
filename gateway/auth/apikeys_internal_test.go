package auth

import (
	"context"
	"testing"
	"time"
)

// touchStore is an APIKeyStore that only records last uses.
type touchStore struct {
	APIKeyStore
	writes int
}

func (s *touchStore) TouchAPIKeys(_ context.Context, used map[string]time.Time) error {
	s.writes += len(used)
	return nil
}

// noUsers is a UserLookup that is never asked.
type noUsers struct{ UserLookup }

// TestAPIKeyTouchedForgetsIdleKeys: the per-key record of the last use
// written keeps only keys in recent use. It grew by one entry per key ever
// used, revoked and deleted keys included, for the life of the node.
func TestAPIKeyTouchedForgetsIdleKeys(t *testing.T) {
	now := time.Now()
	store := &touchStore{}
	k, err := NewAPIKeys(APIKeysConfig{Store: store, Users: noUsers{}, Clock: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b", "c"} {
		k.used(id, now)
	}
	if err := k.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * k.cfg.TouchEvery)
	k.used("c", now)
	if err := k.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	k.mu.Lock()
	n := len(k.touched)
	k.mu.Unlock()
	if n != 1 || store.writes != 4 {
		t.Fatalf("after two intervals with only key c in use: %d keys remembered, %d writes; want 1 and 4", n, store.writes)
	}
	// Forgetting must not make a key in use write more than once per interval.
	k.used("c", now.Add(time.Second))
	if err := k.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if store.writes != 4 {
		t.Fatalf("a second use within the interval wrote again: %d writes, want 4", store.writes)
	}
}
