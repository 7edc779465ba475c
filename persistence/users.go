package persistence

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/doug-martin/goqu/v9"

	"github.com/kowai/kowai/internal/emailaddr"
)

// User is an account. Email is stored in its canonical form (emailaddr.Normalize) and
// compared byte for byte; Roles is a set of role names.
type User struct {
	ID           string
	Email        string
	Name         string
	PasswordHash string
	Roles        []string
	Disabled     bool
	// AppwriteID is the $id of the Appwrite account linked to the user, empty when none
	// is; it is unique.
	AppwriteID string
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Users stores accounts.
type Users interface {
	// Create stores u (ID and times filled in when empty); a taken email or Appwrite ID
	// is ErrDuplicate.
	Create(ctx context.Context, u User) (User, error)
	// Get returns the user with this ID, or ErrNotFound.
	Get(ctx context.Context, id string) (User, error)
	// GetByEmail returns the user with this email, or ErrNotFound. Both sides are in
	// canonical form (emailaddr.Normalize) and compared exactly: an accented variant
	// of an address is another address, whatever the database's collation thinks.
	GetByEmail(ctx context.Context, email string) (User, error)
	// List pages all users in creation order.
	List(ctx context.Context, req PageRequest) (Page[User], error)
	// UpdateRoles replaces the roles of a user, or returns ErrNotFound.
	UpdateRoles(ctx context.Context, id string, roles []string) error
	// SetDisabled disables or enables a user, or returns ErrNotFound.
	SetDisabled(ctx context.Context, id string, disabled bool) error
	// Delete removes a user and, by cascade, their sessions, conversations and agents.
	Delete(ctx context.Context, id string) error
	// Erase removes a user and everything that is theirs, and appends the audit entry
	// audit makes of the counts, in one transaction; see UserStore.Erase. No such user
	// is ErrNotFound.
	Erase(ctx context.Context, id string, audit func(Erasure) AuditEntry) (Erasure, error)
	// CountWithRole counts the enabled users holding role.
	CountWithRole(ctx context.Context, role string) (int, error)
}

// UserStore implements Users on a DB.
type UserStore struct{ db *DB }

var _ Users = (*UserStore)(nil)

// NewUserStore returns the user repository of db.
func NewUserStore(db *DB) *UserStore { return &UserStore{db: db} }

var userCols = []any{"id", "email", "name", "password_hash", "roles", "disabled", "appwrite_id", "created_at", "updated_at"}

// normalizeEmail is how emails are stored and looked up (emailaddr.Normalize), so
// uniqueness ignores case and compatibility forms and nothing else.
func normalizeEmail(email string) string { return emailaddr.Normalize(email) }

func encodeRoles(roles []string) (string, error) {
	if roles == nil {
		roles = []string{}
	}
	b, err := json.Marshal(roles)
	return string(b), err
}

// Create implements Users.
func (s *UserStore) Create(ctx context.Context, u User) (User, error) {
	if u.ID == "" {
		u.ID = newID()
	}
	u.Email = normalizeEmail(u.Email)
	if u.CreatedAt.IsZero() {
		u.CreatedAt = time.Now()
	}
	u.CreatedAt = utc(u.CreatedAt)
	u.UpdatedAt = u.CreatedAt
	if u.Roles == nil {
		u.Roles = []string{}
	}
	roles, err := encodeRoles(u.Roles)
	if err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	q := s.db.Goqu.Insert("users").Prepared(true).Rows(goqu.Record{
		"id": u.ID, "email": u.Email, "name": u.Name, "password_hash": u.PasswordHash, "roles": roles,
		"disabled": u.Disabled, "appwrite_id": nullString(u.AppwriteID), "created_at": u.CreatedAt, "updated_at": u.UpdatedAt,
	})
	if _, err := q.Executor().ExecContext(ctx); err != nil {
		return User{}, wrap(err, "create user %s", u.Email)
	}
	return u, nil
}

func (s *UserStore) selectUsers() *goqu.SelectDataset {
	return s.db.Goqu.From("users").Prepared(true).Select(userCols...)
}

func scanUser(r scanner) (User, error) {
	var (
		u          User
		roles      string
		appwriteID sql.NullString
	)
	if err := r.Scan(&u.ID, &u.Email, &u.Name, &u.PasswordHash, &roles, &u.Disabled, &appwriteID, &u.CreatedAt, &u.UpdatedAt); err != nil {
		return User{}, err
	}
	u.AppwriteID = appwriteID.String
	if err := json.Unmarshal([]byte(roles), &u.Roles); err != nil {
		return User{}, fmt.Errorf("user %s: roles column is not a JSON list: %w", u.ID, err)
	}
	return u, nil
}

func (s *UserStore) getWhere(ctx context.Context, what string, where goqu.Expression) (User, error) {
	u, err := first(ctx, s.selectUsers().Where(where), scanUser)
	if err != nil {
		return User{}, fmt.Errorf("get user %s: %w", what, err)
	}
	return u, nil
}

// Get implements Users.
func (s *UserStore) Get(ctx context.Context, id string) (User, error) {
	return s.getWhere(ctx, id, goqu.C("id").Eq(id))
}

// GetByEmail implements Users.
func (s *UserStore) GetByEmail(ctx context.Context, email string) (User, error) {
	email = normalizeEmail(email)
	return s.getWhere(ctx, email, goqu.C("email").Eq(email))
}

// List implements Users. IDs are UUIDv7, so ID order is creation order.
func (s *UserStore) List(ctx context.Context, req PageRequest) (Page[User], error) {
	q, err := keyset(s.selectUsers(), req, "id", false, stringParser)
	if err != nil {
		return Page[User]{}, fmt.Errorf("list users: %w", err)
	}
	us, err := scanAll(ctx, q, scanUser)
	if err != nil {
		return Page[User]{}, wrap(err, "list users")
	}
	return pageOf(us, req, func(u User) (string, string) { return u.ID, u.ID }), nil
}

// update sets fields of one user and reports ErrNotFound when there is no such user.
func (s *UserStore) update(ctx context.Context, id, what string, set goqu.Record) error {
	set["updated_at"] = utc(time.Now())
	res, err := s.db.Goqu.Update("users").Prepared(true).Set(set).Where(goqu.C("id").Eq(id)).Executor().ExecContext(ctx)
	return expectRow(res, err, what+" of user "+id)
}

// UpdateRoles implements Users.
func (s *UserStore) UpdateRoles(ctx context.Context, id string, roles []string) error {
	encoded, err := encodeRoles(roles)
	if err != nil {
		return fmt.Errorf("update roles of user %s: %w", id, err)
	}
	return s.update(ctx, id, "update roles", goqu.Record{"roles": encoded})
}

// SetDisabled implements Users.
func (s *UserStore) SetDisabled(ctx context.Context, id string, disabled bool) error {
	return s.update(ctx, id, "set disabled", goqu.Record{"disabled": disabled})
}

// Delete implements Users.
func (s *UserStore) Delete(ctx context.Context, id string) error {
	return s.db.deleteByID(ctx, "users", id)
}

// CountWithRole implements Users. It scans the users table, which is fine for the
// rare callers (first-start admin bootstrap, refusing to remove the last admin).
func (s *UserStore) CountWithRole(ctx context.Context, role string) (int, error) {
	// Roles are stored as a JSON list of strings, so a role appears quoted. JSON encoding
	// of the role escapes quotes; LIKE wildcards in it are escaped below.
	quoted, err := json.Marshal(role)
	if err != nil {
		return 0, fmt.Errorf("count users with role %s: %w", role, err)
	}
	pattern := "%" + likeEscaper.Replace(string(quoted)) + "%"
	q := s.db.Goqu.From("users").Prepared(true).Select(goqu.COUNT("*")).
		Where(goqu.C("disabled").Eq(false), goqu.L("roles LIKE ? ESCAPE '!'", pattern))
	var n int
	if err := scanOne(ctx, q, &n); err != nil {
		return 0, wrap(err, "count users with role %s", role)
	}
	return n, nil
}

// likeEscaper escapes LIKE wildcards with '!', an escape character that means the same
// in both dialects (a backslash does not).
var likeEscaper = strings.NewReplacer("!", "!!", "%", "!%", "_", "!_")

// NormalizeEmails rewrites every stored email that is not in canonical form
// (emailaddr.Normalize) and returns how many it changed. Migration 0003 brings ASCII
// addresses into that form in SQL; only addresses with other characters (say "ß", which
// case folding turns into "ss") can still differ, so only those rows are read, which
// keeps the call cheap enough to run on every start. A row whose canonical form belongs
// to another user already is left alone and reported in the error (wrapping
// ErrDuplicate) after the other rows are done: an operator must decide which account
// keeps the address.
func (s *UserStore) NormalizeEmails(ctx context.Context) (int, error) {
	nonASCII := goqu.L("LENGTH(email) <> CHAR_LENGTH(email)")
	if s.db.Dialect == DialectSQLite {
		nonASCII = goqu.L("LENGTH(CAST(email AS BLOB)) <> LENGTH(email)")
	}
	q := s.db.Goqu.From("users").Prepared(true).Select("id", "email").Where(nonASCII).Order(goqu.C("id").Asc())
	type row struct{ id, email string }
	rows, err := scanAll(ctx, q, func(sc scanner) (row, error) {
		var r row
		return r, sc.Scan(&r.id, &r.email)
	})
	if err != nil {
		return 0, wrap(err, "normalize emails")
	}
	var (
		changed int
		errs    []error
	)
	for _, r := range rows {
		norm := normalizeEmail(r.email)
		if norm == r.email {
			continue
		}
		if err := s.update(ctx, r.id, "normalize email", goqu.Record{"email": norm}); err != nil {
			errs = append(errs, err)
			continue
		}
		changed++
	}
	return changed, errors.Join(errs...)
}
