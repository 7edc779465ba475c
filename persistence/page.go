package persistence

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"time"

	"github.com/doug-martin/goqu/v9"
	"github.com/doug-martin/goqu/v9/exp"
)

// Page sizes for list methods.
const (
	// DefaultPageLimit is the page size when PageRequest.Limit is zero or negative.
	DefaultPageLimit = 50
	// MaxPageLimit caps PageRequest.Limit.
	MaxPageLimit = 200
)

// PageRequest asks for one page of a list: at most Limit items (DefaultPageLimit when
// unset, never more than MaxPageLimit) after Cursor (empty for the first page).
type PageRequest struct {
	Limit  int
	Cursor string
}

// Page is one page of a list. NextCursor is empty on the last page.
type Page[T any] struct {
	Items      []T
	NextCursor string
}

func (p PageRequest) limit() int {
	switch {
	case p.Limit <= 0:
		return DefaultPageLimit
	case p.Limit > MaxPageLimit:
		return MaxPageLimit
	}
	return p.Limit
}

// cursor is the position after the last item of a page: its sort key and its ID, the
// tie-breaker that makes the order total. It travels as opaque base64url JSON.
type cursor struct {
	Key string `json:"k"`
	ID  string `json:"i"`
}

func encodeCursor(key, id string) string {
	b, err := json.Marshal(cursor{Key: key, ID: id})
	if err != nil {
		// Marshalling two strings cannot fail.
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor returns the zero cursor for "" (the first page).
func decodeCursor(s string) (cursor, bool, error) {
	if s == "" {
		return cursor{}, false, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return cursor{}, false, ErrInvalidCursor
	}
	var c cursor
	if err := json.Unmarshal(b, &c); err != nil || c.ID == "" {
		return cursor{}, false, ErrInvalidCursor
	}
	return c, true, nil
}

func timeKey(t time.Time) string { return utc(t).Format(time.RFC3339Nano) }

func parseTimeKey(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, ErrInvalidCursor
	}
	return t.UTC(), nil
}

func parseIntKey(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, ErrInvalidCursor
	}
	return n, nil
}

// keyset pages q by (col, id) in the given direction starting after the cursor in req,
// with parse turning the cursor's key into a column value. It fetches one row more than
// the limit so the caller can tell whether another page follows.
func keyset(q *goqu.SelectDataset, req PageRequest, col string, desc bool, parse func(string) (any, error)) (*goqu.SelectDataset, error) {
	c, ok, err := decodeCursor(req.Cursor)
	if err != nil {
		return nil, err
	}
	colExp, idExp := goqu.C(col), goqu.C("id")
	if ok {
		key, err := parse(c.Key)
		if err != nil {
			return nil, err
		}
		q = q.Where(after(colExp, idExp, col == "id", key, c.ID, desc))
	}
	if desc {
		q = q.Order(colExp.Desc(), idExp.Desc())
	} else {
		q = q.Order(colExp.Asc(), idExp.Asc())
	}
	return q.Limit(uint(req.limit() + 1)), nil
}

// after is the condition "past the cursor (key, id)" in the order (col, id). It is
// written col <= key AND (col < key OR id < id') (mirrored ascending) rather than the
// equivalent col < key OR (col = key AND id < id'): SQLite seeks an index on (...,
// col, id) only for a bound on col that is not inside an OR, and otherwise reads the
// index from the first page's start on every page. MariaDB seeks both forms.
func after(colExp, idExp exp.IdentifierExpression, byID bool, key any, id string, desc bool) exp.Expression {
	switch {
	case byID && desc:
		return idExp.Lt(key)
	case byID:
		return idExp.Gt(key)
	case desc:
		return goqu.And(colExp.Lte(key), goqu.Or(colExp.Lt(key), idExp.Lt(id)))
	default:
		return goqu.And(colExp.Gte(key), goqu.Or(colExp.Gt(key), idExp.Gt(id)))
	}
}

// pageOf trims the extra row fetched by keyset and derives the next cursor from the last
// item kept; key returns an item's sort key and ID.
func pageOf[T any](items []T, req PageRequest, key func(T) (string, string)) Page[T] {
	limit := req.limit()
	if len(items) <= limit {
		return Page[T]{Items: items}
	}
	items = items[:limit]
	k, id := key(items[limit-1])
	return Page[T]{Items: items, NextCursor: encodeCursor(k, id)}
}

func timeParser(s string) (any, error) {
	t, err := parseTimeKey(s)
	if err != nil {
		return nil, err
	}
	return t, nil
}

func stringParser(s string) (any, error) { return s, nil }
