package persistence_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/kowai/kowai/persistence"
)

// seedUser creates a user with the given roles and a unique email.
func seedUser(t *testing.T, db *persistence.DB, roles ...string) persistence.User {
	t.Helper()
	u, err := persistence.NewUserStore(db).Create(t.Context(), persistence.User{
		Email: fmt.Sprintf("user-%d@example.com", time.Now().UnixNano()), Name: "Test", PasswordHash: "hash", Roles: roles,
	})
	if err != nil {
		t.Fatalf("seed user: %v", err)
	}
	return u
}

// seedConversation creates a conversation owned by ownerID.
func seedConversation(t *testing.T, db *persistence.DB, ownerID string) persistence.Conversation {
	t.Helper()
	c, err := persistence.NewConversationStore(db).Create(t.Context(), persistence.Conversation{OwnerID: ownerID, Title: "t"})
	if err != nil {
		t.Fatalf("seed conversation: %v", err)
	}
	return c
}

// collectPages follows NextCursor from the first page to the last and returns every item.
func collectPages[T any](t *testing.T, limit int, list func(persistence.PageRequest) (persistence.Page[T], error)) []T {
	t.Helper()
	var all []T
	req := persistence.PageRequest{Limit: limit}
	for range 1000 {
		page, err := list(req)
		if err != nil {
			t.Fatalf("list page: %v", err)
		}
		if len(page.Items) > limit {
			t.Fatalf("page has %d items, limit %d", len(page.Items), limit)
		}
		all = append(all, page.Items...)
		if page.NextCursor == "" {
			return all
		}
		req.Cursor = page.NextCursor
	}
	t.Fatal("pagination did not end")
	return nil
}

// seedRun creates a running workflow run named "w" in store.
func seedRun(t *testing.T, store *persistence.WorkflowStore) persistence.WorkflowRun {
	t.Helper()
	r, err := store.CreateRun(t.Context(), persistence.WorkflowRun{Name: "w", Status: persistence.StatusRunning})
	if err != nil {
		t.Fatal(err)
	}
	return r
}
