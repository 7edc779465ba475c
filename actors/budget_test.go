package actors

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/budgets"
	"github.com/kowai/kowai/persistence/persisttest"
	"github.com/kowai/kowai/signatures/lm"
)

// refuseAll is a BudgetGuard whose budgets are always used up.
type refuseAll struct{}

func (refuseAll) Reserve(context.Context, string, int64, float64) (*budgets.Reservation, error) {
	return nil, fmt.Errorf("test budget: %w", lm.ErrBudgetExceeded)
}

// Many replies refused by the budget at once: each worker that hits the budget
// stops, and a job is never handed to a stopping worker (its first workerReady,
// arriving after its failure, once made it look idle): every turn is answered
// with the budget's refusal, none with "the reply's worker stopped".
func TestBudgetRefusalsNeverLoseAJob(t *testing.T) {
	h := newHarness(t, persisttest.SQLite(t), harnessOptions{deps: func(d *Deps) { d.Budgets = refuseAll{} }})
	const n = 48
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, err := h.send(t.Context(), uuid.NewString(), 0, "hello", "")
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		var ge *actorpb.Error
		if !errors.As(err, &ge) || ge.Code != actorpb.Code_CODE_BUDGET_EXCEEDED {
			t.Fatalf("a refused turn answered %v, want the budget's refusal", err)
		}
	}
}
