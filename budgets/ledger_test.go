package budgets

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kowai/kowai/internal/testenv"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
)

// gatedWriter hands writes to a real group-commit writer, counting them; the first
// waits until open is closed.
type gatedWriter struct {
	w     *persistence.Writer
	open  chan struct{}
	first sync.Once

	mu      sync.Mutex
	submits int
}

func (g *gatedWriter) Submit(ctx context.Context, op persistence.Op) error {
	g.mu.Lock()
	g.submits++
	g.mu.Unlock()
	g.first.Do(func() { <-g.open })
	return g.w.Submit(ctx, op)
}

func (g *gatedWriter) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.submits
}

// ledgerEnforcer is an Enforcer on db that writes the ledger through a gatedWriter,
// and a user.
func ledgerEnforcer(t *testing.T, db *persistence.DB) (*Enforcer, *gatedWriter, func() string) {
	t.Helper()
	w := persistence.NewWriter(db, persistence.WriterOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	g := &gatedWriter{w: w, open: make(chan struct{})}
	users := persistence.NewUserStore(db)
	e, err := New(Config{Users: users, Ledger: persistence.NewUsageStore(db), Writer: g, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	newUser := func() string {
		u, err := users.Create(t.Context(), persistence.User{Email: rand.Text() + "@example.com"})
		if err != nil {
			t.Fatal(err)
		}
		return u.ID
	}
	return e, g, newUser
}

// The calls charged while a ledger write commits go to the ledger together, in the
// next write: five calls cost two writes, and every call is counted.
func TestChargesWhileALedgerWriteCommitsShareTheNext(t *testing.T) {
	db := persisttest.SQLite(t)
	e, g, newUser := ledgerEnforcer(t, db)
	uid := newUser()
	charge := func() {
		if err := e.Charge(t.Context(), Charge{UserID: uid, AgentID: "a", Model: "m", PromptTokens: 10, CompletionTokens: 1, CostUSD: 0.25}); err != nil {
			t.Fatal(err)
		}
	}
	charge()
	testenv.Eventually(t, 5*time.Second, func() error {
		if n := g.count(); n != 1 {
			return fmt.Errorf("ledger writes = %d, want 1", n)
		}
		return nil
	})
	for range 4 {
		charge()
	}
	close(g.open)
	e.Wait()
	if n := g.count(); n != 2 {
		t.Fatalf("ledger writes = %d, want 2", n)
	}
	lines, err := persistence.NewUsageStore(db).ByAgentModel(t.Context(), uid, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := []persistence.UsageLine{{AgentID: "a", Model: "m", UsageTotal: persistence.UsageTotal{Tokens: 55, CostUSD: 1.25}, PromptTokens: 50, CompletionTokens: 5, Calls: 5}}
	if !slices.Equal(lines, want) {
		t.Fatalf("usage = %+v, want %+v", lines, want)
	}
}

// A ledger write that fails for one user's calls (the user is gone) still records
// the other users' calls of the same write.
func TestALedgerWriteFailingForOneUserKeepsTheOthers(t *testing.T) {
	db := persisttest.SQLite(t)
	e, g, newUser := ledgerEnforcer(t, db)
	first, kept := newUser(), newUser()
	if err := e.Charge(t.Context(), Charge{UserID: first, Model: "m", PromptTokens: 1}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		if n := g.count(); n != 1 {
			return fmt.Errorf("ledger writes = %d, want 1", n)
		}
		return nil
	})
	for _, uid := range []string{kept, "00000000-0000-7000-8000-00000000dead"} {
		if err := e.Charge(t.Context(), Charge{UserID: uid, Model: "m", PromptTokens: 7}); err != nil {
			t.Fatal(err)
		}
	}
	close(g.open)
	e.Wait()
	ledger := persistence.NewUsageStore(db)
	for uid, want := range map[string]int64{first: 1, kept: 7} {
		if got, err := ledger.Total(t.Context(), uid, time.Now().Add(-time.Hour)); err != nil || got.Tokens != want {
			t.Errorf("usage of %s = %+v, %v; want %d tokens", uid, got, err, want)
		}
	}
}
