package persistence_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
)

// ListByOwner's statements read the owner's (updated_at, id) index from the start or
// from the cursor, and sort nothing: a page costs the same wherever it is in the list.
func TestConversationListUsesItsIndex(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		ctx := t.Context()
		owners := make([]string, 10)
		for i := range owners {
			owners[i] = seedUser(t, db).ID
		}
		// Enough rows that a full scan is not the cheapest plan, in one statement.
		var (
			values []string
			args   []any
		)
		base := time.Now().UTC().Truncate(time.Microsecond)
		for i := range 500 {
			values = append(values, "(?, ?, ?, ?, ?, ?)")
			at := base.Add(time.Duration(i) * time.Second)
			args = append(args, fmt.Sprintf("c-%04d", i), owners[i%len(owners)], "agent", "t", at, at)
		}
		if _, err := db.SQL.ExecContext(ctx, "INSERT INTO conversations (id, owner_id, agent_id, title, created_at, updated_at) VALUES "+
			strings.Join(values, ", "), args...); err != nil {
			t.Fatal(err)
		}
		analyze, explain := "ANALYZE", "EXPLAIN QUERY PLAN "
		if db.Dialect == persistence.DialectMySQL {
			analyze, explain = "ANALYZE TABLE conversations", "EXPLAIN "
		}
		if _, err := db.SQL.ExecContext(ctx, analyze); err != nil {
			t.Fatal(err)
		}
		key := base.Add(250 * time.Second)
		for _, tc := range []struct {
			name, query string
			args        []any
			// seek is what the plan shows when the cursor bounds the index range.
			seek string
		}{
			{"first page", persistence.ConversationsByOwnerSQL, []any{owners[0], 51}, ""},
			{"after a cursor", persistence.ConversationsByOwnerAfterSQL, []any{owners[0], key, key, "c-0250", 51}, "updated_at<"},
		} {
			plan := queryPlan(t, db, explain+tc.query, tc.args...)
			switch db.Dialect {
			case persistence.DialectSQLite:
				if !strings.Contains(plan, "USING INDEX conversations_owner_updated") || strings.Contains(plan, "TEMP B-TREE") ||
					!strings.Contains(plan, tc.seek) {
					t.Errorf("%s: plan %q; want a search of conversations_owner_updated (%s) without a sort", tc.name, plan, tc.seek)
				}
			default:
				if !strings.Contains(plan, "key=conversations_owner_updated ") || strings.Contains(plan, "filesort") ||
					tc.seek != "" && !strings.Contains(plan, "type=range ") {
					t.Errorf("%s: plan %q; want conversations_owner_updated (a range after a cursor) without a filesort", tc.name, plan)
				}
			}
		}
	})
}

// queryPlan runs an EXPLAIN and returns its rows as "column=value" text.
func queryPlan(t *testing.T, db *persistence.DB, query string, args ...any) string {
	t.Helper()
	rows, err := db.SQL.QueryContext(t.Context(), query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			if s, ok := v.([]byte); ok {
				v = string(s)
			}
			fmt.Fprintf(&b, "%s=%v ", cols[i], v)
		}
		b.WriteString("; ")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// The merged touch of a batch's conversations (an UPDATE by a list of IDs) is a
// locking read: it must look the conversations up by the primary key. On a small
// table MariaDB chose a scan of the whole index, which locks every row it passes,
// and concurrent batches deadlocked on it.
func TestConversationTouchLocksByPrimaryKey(t *testing.T) {
	db := persisttest.MySQL(t)
	owner := seedUser(t, db).ID
	var ids []string
	for range 40 {
		ids = append(ids, seedConversation(t, db, owner).ID)
	}
	if _, err := db.SQL.ExecContext(t.Context(), "ANALYZE TABLE conversations"); err != nil {
		t.Fatal(err)
	}
	query, args, err := persistence.TouchSQL(ids[:30])
	if err != nil {
		t.Fatal(err)
	}
	plan := queryPlan(t, db, "EXPLAIN "+query, args...)
	if !strings.Contains(plan, "key=PRIMARY ") || strings.Contains(plan, "type=index ") || strings.Contains(plan, "type=ALL ") {
		t.Errorf("touch plan %q; want lookups on PRIMARY", plan)
	}
}
