package persistence

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/doug-martin/goqu/v9"
)

// Conversation is a chat between a user and an agent; its messages are in Messages.
type Conversation struct {
	ID      string
	OwnerID string
	AgentID string
	Title   string
	// CreatedAt and UpdatedAt default to now; UpdatedAt follows the turns (Touch; the
	// session grain keeps it within a second of the last turn).
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Conversations stores conversations. Lists are ordered most recently updated first.
type Conversations interface {
	// Create stores c (ID and times filled in when empty) and returns it. The ID of a
	// deleted conversation is ErrGone, a taken one ErrDuplicate, a missing owner
	// ErrConflict and ErrNoOwner.
	Create(ctx context.Context, c Conversation) (Conversation, error)
	// Get returns the conversation with this ID, or ErrNotFound.
	Get(ctx context.Context, id string) (Conversation, error)
	// ListByOwner pages the conversations of one user.
	ListByOwner(ctx context.Context, ownerID string, req PageRequest) (Page[Conversation], error)
	// ListAll pages every conversation, for moderators.
	ListAll(ctx context.Context, req PageRequest) (Page[Conversation], error)
	// Touch sets UpdatedAt, or returns ErrNotFound.
	Touch(ctx context.Context, id string, at time.Time) error
	// UpdateTitle sets the title, or returns ErrNotFound.
	UpdateTitle(ctx context.Context, id, title string) error
	// Delete erases the conversation, its messages and their feedback, and every
	// snapshot under its ID, and leaves a tombstone so that Create never reuses the ID;
	// ErrNotFound when there is no such conversation.
	Delete(ctx context.Context, id string) error
}

// ConversationStore implements Conversations on a DB.
type ConversationStore struct{ db *DB }

var _ Conversations = (*ConversationStore)(nil)

// NewConversationStore returns the conversation repository of db.
func NewConversationStore(db *DB) *ConversationStore { return &ConversationStore{db: db} }

var conversationCols = []any{"id", "owner_id", "agent_id", "title", "created_at", "updated_at"}

// Create implements Conversations. The tombstone check and the insert share a
// transaction; a Delete of the same ID at the same moment is not expected, since both go
// through the conversation's one session grain.
func (s *ConversationStore) Create(ctx context.Context, c Conversation) (Conversation, error) {
	c = c.withDefaults()
	if err := s.db.inTx(ctx, func(tx *goqu.TxDatabase) error { return createConversation(ctx, tx, c) }); err != nil {
		return Conversation{}, err
	}
	return c, nil
}

// ConversationCreate is the Op that creates c as Conversations.Create does (ID and
// times filled in when empty, the same errors). A Writer applies it before the merged
// Inserts of its batch, so a new conversation's first messages, submitted in one Ops
// with it, commit in the same batch and are merged with the other messages, instead of
// the conversation paying a commit of its own.
func ConversationCreate(c Conversation) Op { return conversationCreate{c: c.withDefaults()} }

type conversationCreate struct{ c Conversation }

// Apply creates the conversation.
func (op conversationCreate) Apply(ctx context.Context, tx *goqu.TxDatabase) error {
	return createConversation(ctx, tx, op.c)
}

// leads implements leader: rows of the same batch may name the conversation.
func (conversationCreate) leads() {}

// statements implements statementer (MariaDB): the INSERT of the row unless the ID
// has a tombstone, which must insert one row. A tombstone (no row), a taken ID or a
// missing owner make the Writer run the batch again with Apply, which tells which.
func (op conversationCreate) statements() ([]stmt, error) {
	c := op.c
	return []stmt{{query: "INSERT INTO `conversations` (`id`, `owner_id`, `agent_id`, `title`, `created_at`, `updated_at`) " +
		"SELECT ?, ?, ?, ?, ?, ? FROM DUAL WHERE NOT EXISTS (SELECT 1 FROM `conversation_tombstones` WHERE `id` = ?)",
		args: []any{c.ID, c.OwnerID, c.AgentID, c.Title, c.CreatedAt, c.UpdatedAt, c.ID}, want: 1}}, nil
}

func (c Conversation) withDefaults() Conversation {
	if c.ID == "" {
		c.ID = newID()
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = time.Now()
	}
	if c.UpdatedAt.IsZero() {
		c.UpdatedAt = c.CreatedAt
	}
	c.CreatedAt, c.UpdatedAt = utc(c.CreatedAt), utc(c.UpdatedAt)
	return c
}

// createConversation checks that c's ID names no deleted conversation and inserts c.
func createConversation(ctx context.Context, tx *goqu.TxDatabase, c Conversation) error {
	var id string
	err := scanOne(ctx, tx.From("conversation_tombstones").Prepared(true).Select("id").Where(goqu.C("id").Eq(c.ID)), &id)
	switch err = classify(err); {
	case err == nil:
		return fmt.Errorf("create conversation %s: it was deleted: %w", c.ID, ErrGone)
	case !errors.Is(err, ErrNotFound):
		return wrap(err, "create conversation for %s", c.OwnerID)
	}
	q := tx.Insert("conversations").Prepared(true).Rows(goqu.Record{
		"id": c.ID, "owner_id": c.OwnerID, "agent_id": c.AgentID, "title": c.Title,
		"created_at": c.CreatedAt, "updated_at": c.UpdatedAt,
	})
	_, err = q.Executor().ExecContext(ctx)
	if err = classify(err); errors.Is(err, ErrConflict) {
		// The row's one foreign key is its owner's.
		return fmt.Errorf("create conversation for %s: %w: %w", c.OwnerID, ErrNoOwner, err)
	}
	return wrap(err, "create conversation for %s", c.OwnerID)
}

// Delete implements Conversations. Messages go by their foreign key's cascade, and
// feedback by its own on messages.
func (s *ConversationStore) Delete(ctx context.Context, id string) error {
	err := s.db.inTx(ctx, func(tx *goqu.TxDatabase) error {
		if _, err := tx.Delete("snapshots").Prepared(true).Where(goqu.C("identity").Eq(id)).Executor().ExecContext(ctx); err != nil {
			return err
		}
		res, err := tx.Delete("conversations").Prepared(true).Where(goqu.C("id").Eq(id)).Executor().ExecContext(ctx)
		if err := expectRow(res, err, "delete conversation "+id); err != nil {
			return err
		}
		_, err = tx.Insert("conversation_tombstones").Prepared(true).
			Rows(goqu.Record{"id": id, "deleted_at": utc(time.Now())}).Executor().ExecContext(ctx)
		return err
	})
	if err != nil {
		return wrap(err, "delete conversation %s", id)
	}
	return nil
}

func (s *ConversationStore) selectConversations() *goqu.SelectDataset {
	return s.db.Goqu.From("conversations").Prepared(true).Select(conversationCols...)
}

func scanConversation(r scanner) (Conversation, error) {
	var c Conversation
	err := r.Scan(&c.ID, &c.OwnerID, &c.AgentID, &c.Title, &c.CreatedAt, &c.UpdatedAt)
	return c, err
}

// Get implements Conversations.
func (s *ConversationStore) Get(ctx context.Context, id string) (Conversation, error) {
	c, err := first(ctx, s.selectConversations().Where(goqu.C("id").Eq(id)), scanConversation)
	if err != nil {
		return Conversation{}, fmt.Errorf("get conversation %s: %w", id, err)
	}
	return c, nil
}

// conversationsByOwnerSQL and conversationsByOwnerAfterSQL are ListByOwner's first
// page and the pages after a cursor, written out in the form keyset builds: the listing
// is the chat API's most frequent read, and building it with goqu cost as much CPU as
// running it on SQLite. Both read the (owner_id, updated_at, id) index backwards from
// the owner's newest conversation or from the cursor, and sort nothing
// (TestConversationListUsesItsIndex). Both dialects accept them as they are.
const (
	conversationsByOwnerSQL = `SELECT id, owner_id, agent_id, title, created_at, updated_at FROM conversations
WHERE owner_id = ? ORDER BY updated_at DESC, id DESC LIMIT ?`
	conversationsByOwnerAfterSQL = `SELECT id, owner_id, agent_id, title, created_at, updated_at FROM conversations
WHERE owner_id = ? AND updated_at <= ? AND (updated_at < ? OR id < ?) ORDER BY updated_at DESC, id DESC LIMIT ?`
)

// ListByOwner implements Conversations.
func (s *ConversationStore) ListByOwner(ctx context.Context, ownerID string, req PageRequest) (Page[Conversation], error) {
	c, ok, err := decodeCursor(req.Cursor)
	if err != nil {
		return Page[Conversation]{}, fmt.Errorf("list conversations: %w", err)
	}
	var rows *sql.Rows
	if ok {
		key, err := parseTimeKey(c.Key)
		if err != nil {
			return Page[Conversation]{}, fmt.Errorf("list conversations: %w", err)
		}
		rows, err = s.db.run.QueryContext(ctx, conversationsByOwnerAfterSQL, ownerID, key, key, c.ID, req.limit()+1)
	} else {
		rows, err = s.db.run.QueryContext(ctx, conversationsByOwnerSQL, ownerID, req.limit()+1)
	}
	cs, err := scanRows(rows, err, scanConversation)
	if err != nil {
		return Page[Conversation]{}, wrap(err, "list conversations of %s", ownerID)
	}
	return pageOf(cs, req, conversationKey), nil
}

func conversationKey(c Conversation) (string, string) { return timeKey(c.UpdatedAt), c.ID }

// ListAll implements Conversations.
func (s *ConversationStore) ListAll(ctx context.Context, req PageRequest) (Page[Conversation], error) {
	return s.list(ctx, s.selectConversations(), req)
}

// list pages by (updated_at, id) descending. A conversation touched while a client pages
// moves to the front, so it may be missed or seen twice; clients re-list from the start.
func (s *ConversationStore) list(ctx context.Context, q *goqu.SelectDataset, req PageRequest) (Page[Conversation], error) {
	q, err := keyset(q, req, "updated_at", true, timeParser)
	if err != nil {
		return Page[Conversation]{}, fmt.Errorf("list conversations: %w", err)
	}
	cs, err := scanAll(ctx, q, scanConversation)
	if err != nil {
		return Page[Conversation]{}, wrap(err, "list conversations")
	}
	return pageOf(cs, req, conversationKey), nil
}

func (s *ConversationStore) update(ctx context.Context, id, what string, set goqu.Record) error {
	res, err := s.db.Goqu.Update("conversations").Prepared(true).Set(set).Where(goqu.C("id").Eq(id)).Executor().ExecContext(ctx)
	return expectRow(res, err, what+" conversation "+id)
}

// Touch implements Conversations.
func (s *ConversationStore) Touch(ctx context.Context, id string, at time.Time) error {
	return s.update(ctx, id, "touch", goqu.Record{"updated_at": utc(at)})
}

// UpdateTitle implements Conversations.
func (s *ConversationStore) UpdateTitle(ctx context.Context, id, title string) error {
	return s.update(ctx, id, "retitle", goqu.Record{"title": title, "updated_at": utc(time.Now())})
}
