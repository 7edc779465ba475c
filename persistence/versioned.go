package persistence

import (
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/doug-martin/goqu/v9"
)

// dueClaim describes a table whose rows nodes claim when due: rows carry a nullable
// due column (indexed) and a version, and a claim moves the due time past a lease with
// a compare-and-swap on the version, so each row goes to one claimer only.
type dueClaim[T any] struct {
	table, key, due string // the table, its key column and its due-time column
	what            string // what a row is, for errors ("workflow run")
	cols            []any
	scan            func(scanner) (T, error)
	id              func(T) string
	version         func(T) int64
	// set holds further columns the claim writes (the claim owner); may be nil.
	set goqu.Record
	// claimed mirrors the claim's update onto the returned row.
	claimed func(row *T, until, now time.Time)
}

// claimDue takes up to limit rows of c whose due time has passed at now, oldest due
// first, and claims each until now+lease. It reads the due index up to now only, so a
// round costs the same however many rows are not due.
func claimDue[T any](ctx context.Context, db *DB, c dueClaim[T], now time.Time, lease time.Duration, limit int) ([]T, error) {
	now = utc(now)
	q := db.Goqu.From(c.table).Prepared(true).Select(c.cols...).
		Where(goqu.C(c.due).Lte(now)).Order(goqu.C(c.due).Asc()).Limit(uint(max(1, limit)))
	due, err := scanAll(ctx, q, c.scan)
	if err != nil {
		return nil, wrap(err, "find due %ss", c.what)
	}
	until := now.Add(lease)
	claimed := due[:0]
	for _, row := range due {
		id, v := c.id(row), c.version(row)
		rec := goqu.Record{c.due: until, "version": v + 1, "updated_at": now}
		maps.Copy(rec, c.set)
		upd := db.Goqu.Update(c.table).Prepared(true).Set(rec).Where(goqu.C(c.key).Eq(id), goqu.C("version").Eq(v))
		n, err := rowsAffected(upd.Executor().ExecContext(ctx))
		if err != nil {
			return claimed, wrap(err, "claim %s %s", c.what, id)
		}
		if n == 1 {
			c.claimed(&row, until, now)
			claimed = append(claimed, row)
		}
	}
	return claimed, nil
}

// saveVersioned replaces the columns rec of the row id of table if its stored version
// is still expected; rec carries the new version, which must be greater. A row at
// another version is ErrConflict, a missing row ErrNotFound. what names the row for
// errors ("workflow run").
func saveVersioned(ctx context.Context, q runner, table, what, id string, rec goqu.Record, version, expected int64) error {
	if version <= expected {
		return fmt.Errorf("persistence: save %s %s: version %d must be greater than the expected %d", what, id, version, expected)
	}
	upd := q.Update(table).Prepared(true).Set(rec).Where(goqu.C("id").Eq(id), goqu.C("version").Eq(expected))
	n, err := rowsAffected(upd.Executor().ExecContext(ctx))
	if err != nil {
		return wrap(err, "save %s %s", what, id)
	}
	if n > 0 {
		return nil
	}
	var one int
	if err := scanOne(ctx, q.From(table).Prepared(true).Select(goqu.L("1")).Where(goqu.C("id").Eq(id)), &one); err != nil {
		return wrap(err, "save %s %s", what, id)
	}
	return fmt.Errorf("save %s %s: stored version is not %d: %w", what, id, expected, ErrConflict)
}
