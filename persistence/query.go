package persistence

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/doug-martin/goqu/v9"
)

// runner builds and runs statements: a *goqu.Database or a *goqu.TxDatabase, so one
// helper serves both plain calls and the Writer's batch transactions.
type runner interface {
	From(from ...any) *goqu.SelectDataset
	Insert(table any) *goqu.InsertDataset
	Update(table any) *goqu.UpdateDataset
	Delete(table any) *goqu.DeleteDataset
}

var (
	_ runner = (*goqu.Database)(nil)
	_ runner = (*goqu.TxDatabase)(nil)
)

// scanOne runs q and scans its first row into dest; no row is sql.ErrNoRows.
func scanOne(ctx context.Context, q *goqu.SelectDataset, dest ...any) error {
	rows, err := q.Limit(1).Executor().QueryContext(ctx)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	return rows.Close()
}

// scanner is the Scan method shared by *sql.Row and *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// scanAll runs q and scans every row with scan.
func scanAll[T any](ctx context.Context, q *goqu.SelectDataset, scan func(scanner) (T, error)) ([]T, error) {
	rows, err := q.Executor().QueryContext(ctx)
	return scanRows(rows, err, scan)
}

// scanRows scans every row of a query's result (rows, err) with scan and closes rows.
func scanRows[T any](rows *sql.Rows, err error, scan func(scanner) (T, error)) ([]T, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, rows.Close()
}

// rowsAffected takes the result of an ExecContext and returns the rows it matched.
func rowsAffected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// expectRow checks the result of an UPDATE or DELETE of one row: no row matched is
// ErrNotFound.
func expectRow(res sql.Result, err error, what string) error {
	n, err := rowsAffected(res, err)
	if err != nil {
		return wrap(err, "%s", what)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return nil
}

// deleteByID deletes the row of table with this ID; no such row is ErrNotFound.
func (db *DB) deleteByID(ctx context.Context, table, id string) error {
	res, err := db.Goqu.Delete(table).Prepared(true).Where(goqu.C("id").Eq(id)).Executor().ExecContext(ctx)
	return expectRow(res, err, "delete from "+table+" "+id)
}

// inTx runs fn in a transaction and commits it, or rolls back when fn fails.
func (db *DB) inTx(ctx context.Context, fn func(tx *goqu.TxDatabase) error) error {
	tx, err := db.Goqu.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", classify(err))
	}
	if err := fn(tx); err != nil {
		if rbErr := tx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
			return errors.Join(err, fmt.Errorf("rollback: %w", classify(rbErr)))
		}
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", classify(err))
	}
	return nil
}

func isDuplicate(err error) bool { return errors.Is(err, ErrDuplicate) }
