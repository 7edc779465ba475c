package persistence_test

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/doug-martin/goqu/v9"

	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
)

// A parameterized statement is prepared once and then reused, on every store method
// and hand-written statement alike.
func TestStatementCacheReusesStatements(t *testing.T) {
	db := persisttest.SQLite(t)
	convs := persistence.NewConversationStore(db)
	c := seedConversation(t, db, seedUser(t, db).ID)
	if _, err := convs.Get(t.Context(), c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := convs.ListByOwner(t.Context(), c.OwnerID, persistence.PageRequest{}); err != nil {
		t.Fatal(err)
	}
	prepares, cached := persistence.StatementPrepares(db), persistence.CachedStatements(db)
	for range 5 {
		if got, err := convs.Get(t.Context(), c.ID); err != nil || got.ID != c.ID {
			t.Fatalf("Get = %+v, %v", got, err)
		}
		if page, err := convs.ListByOwner(t.Context(), c.OwnerID, persistence.PageRequest{}); err != nil || len(page.Items) != 1 {
			t.Fatalf("ListByOwner = %+v, %v", page, err)
		}
	}
	if got := persistence.StatementPrepares(db); got != prepares {
		t.Fatalf("%d statements prepared by 5 more runs of two cached ones", got-prepares)
	}
	if got := persistence.CachedStatements(db); got != cached || got == 0 {
		t.Fatalf("cache holds %d statements, %d before the repeated runs", got, cached)
	}
}

// The cache holds at most its bound; the statements it dropped still run.
func TestStatementCacheIsBounded(t *testing.T) {
	db := persisttest.SQLite(t)
	persistence.SetStatementCacheSize(db, 2)
	users := make([]persistence.User, 5)
	for i := range users {
		users[i] = seedUser(t, db)
	}
	// IN lists of several lengths: one statement text per length.
	for round := range 2 {
		for n := 1; n <= len(users); n++ {
			ids := make([]any, n)
			for i := range ids {
				ids[i] = users[i].ID
			}
			var count int
			_, err := db.Goqu.From("users").Prepared(true).Select(goqu.COUNT("*")).Where(goqu.C("id").In(ids...)).
				Executor().ScanValContext(t.Context(), &count)
			if err != nil || count != n {
				t.Fatalf("round %d: %d of %d users counted, %v", round, count, n, err)
			}
			if got := persistence.CachedStatements(db); got > 2 {
				t.Fatalf("cache holds %d statements, bound 2", got)
			}
		}
	}
}

// Statements evicted while other goroutines run them finish; none fails as closed.
func TestStatementCacheEvictionUnderConcurrentUse(t *testing.T) {
	db := persisttest.SQLite(t)
	persistence.SetStatementCacheSize(db, 1)
	owner := seedUser(t, db)
	convs := persistence.NewConversationStore(db)
	c := seedConversation(t, db, owner.ID)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Go(func() {
			for range 200 {
				var err error
				if g%2 == 0 {
					_, err = convs.Get(t.Context(), c.ID)
				} else {
					var page persistence.Page[persistence.Conversation]
					page, err = convs.ListByOwner(t.Context(), owner.ID, persistence.PageRequest{})
					if err == nil && len(page.Items) != 1 {
						err = fmt.Errorf("listed %d conversations, want 1", len(page.Items))
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A cached statement keeps working on the connection that replaces a broken one.
func TestStatementCacheSurvivesReconnect(t *testing.T) {
	db := persisttest.SQLite(t)
	convs := persistence.NewConversationStore(db)
	c := seedConversation(t, db, seedUser(t, db).ID)
	if _, err := convs.Get(t.Context(), c.ID); err != nil {
		t.Fatal(err)
	}
	prepares := persistence.StatementPrepares(db)
	// A temporary table lives as long as its connection: it tells a new one.
	if _, err := db.SQL.ExecContext(t.Context(), "CREATE TEMP TABLE connection_marker (x INTEGER)"); err != nil {
		t.Fatal(err)
	}
	conn, err := db.SQL.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// The pool discards a connection that reports itself bad.
	if err := conn.Raw(func(any) error { return driver.ErrBadConn }); !errors.Is(err, driver.ErrBadConn) {
		t.Fatalf("Raw = %v", err)
	}
	if err := conn.Close(); err != nil && !strings.Contains(err.Error(), "connection is already closed") {
		t.Fatal(err)
	}
	if got, err := convs.Get(t.Context(), c.ID); err != nil || got.ID != c.ID {
		t.Fatalf("Get after reconnecting = %+v, %v", got, err)
	}
	if _, err := db.SQL.ExecContext(t.Context(), "SELECT x FROM connection_marker"); err == nil {
		t.Fatal("the pool still uses the broken connection")
	}
	if got := persistence.StatementPrepares(db); got != prepares {
		t.Fatalf("the cache prepared %d statements again; the pool re-prepares on the new connection", got-prepares)
	}
}

// After Close, queries fail with the pool's error instead of using closed statements.
func TestStatementCacheClose(t *testing.T) {
	d, err := persistence.Open(t.Context(), persisttest.SQLiteURL(t), persistence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.SQL.ExecContext(t.Context(), "CREATE TABLE t (id TEXT)"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Goqu.Insert("t").Prepared(true).Rows(goqu.Record{"id": "a"}).Executor().ExecContext(t.Context()); err != nil {
		t.Fatal(err)
	}
	if persistence.CachedStatements(d) != 1 {
		t.Fatalf("cache holds %d statements, want 1", persistence.CachedStatements(d))
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if persistence.CachedStatements(d) != 0 {
		t.Fatalf("cache holds %d statements after Close", persistence.CachedStatements(d))
	}
	_, err = d.Goqu.Insert("t").Prepared(true).Rows(goqu.Record{"id": "b"}).Executor().ExecContext(t.Context())
	if err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("insert after Close = %v, want the pool's closed error", err)
	}
}
