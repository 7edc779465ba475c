package actors

import (
	"testing"
	"time"

	"github.com/kowai/kowai/agents"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
)

func testRegistry(t *testing.T) *agents.Registry {
	t.Helper()
	r, err := agents.NewRegistry(agents.Builtins(time.Now)...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestEnsureBuiltins(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		r := testRegistry(t)
		repo := persistence.NewAgentStore(db)
		for range 2 {
			if err := ensureBuiltins(t.Context(), repo, r); err != nil {
				t.Fatal(err)
			}
		}
		page, err := repo.ListVisible(t.Context(), "00000000-0000-7000-8000-000000000000", persistence.PageRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) != 4 {
			t.Fatalf("built-ins = %d, want 4", len(page.Items))
		}
		for _, a := range page.Items {
			if a.ID != agents.BuiltinID(a.Type) || a.OwnerID != "" || a.Version != 1 {
				t.Errorf("built-in %+v", a)
			}
			if _, _, err := r.Compile(specOf(a)); err != nil {
				t.Errorf("compile %s: %v", a.Type, err)
			}
		}
		if agents.DefaultAgentID() != agents.BuiltinID("chat") {
			t.Error("default agent is not the chat built-in")
		}
	})
}
