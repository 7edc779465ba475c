package persistence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/doug-martin/goqu/v9"
	"github.com/google/uuid"
)

// Message is one entry of a conversation's log. Seq numbers the entries of a
// conversation from 1; (ConversationID, Seq) and (ConversationID, IdempotencyKey) are
// unique, so a second writer of the same position fails with ErrDuplicate.
type Message struct {
	// ID is a UUIDv7; Insert and the Writer fill it in when empty.
	ID             string
	ConversationID string
	Seq            int64
	// Role is "user", "assistant", "system" or "tool".
	Role    string
	Content string
	// Metadata is a JSON object, or nil.
	Metadata json.RawMessage
	// Variant is the agent variant that answered ("" for none).
	Variant string
	// IdempotencyKey is empty for none.
	IdempotencyKey string
	// CreatedAt defaults to now.
	CreatedAt time.Time
}

// Direction orders a page of messages by seq.
type Direction int

const (
	// Forward pages from the oldest message towards the newest.
	Forward Direction = iota
	// Backward pages from the newest message towards the oldest.
	Backward
)

// Messages reads and writes conversation logs. Appends on hot paths go through the
// group-commit Writer; Insert is for single, unbatched writes.
type Messages interface {
	// Insert appends one message; a taken seq or idempotency key is ErrDuplicate.
	Insert(ctx context.Context, m Message) (Message, error)
	// Get returns the message with this ID, or ErrNotFound.
	Get(ctx context.Context, id string) (Message, error)
	// GetByIdempotencyKey returns the message of conversationID with this key, or ErrNotFound.
	GetByIdempotencyKey(ctx context.Context, conversationID, key string) (Message, error)
	// ListByConversation pages a conversation's messages by seq in the given direction.
	ListByConversation(ctx context.Context, conversationID string, dir Direction, req PageRequest) (Page[Message], error)
	// Tail returns the last n messages of a conversation, oldest first.
	Tail(ctx context.Context, conversationID string, n int) ([]Message, error)
	// LastSeq returns the highest seq of a conversation, 0 when it has no messages.
	LastSeq(ctx context.Context, conversationID string) (int64, error)
}

// MessageStore implements Messages on a DB.
type MessageStore struct{ db *DB }

var _ Messages = (*MessageStore)(nil)

// NewMessageStore returns the message repository of db.
func NewMessageStore(db *DB) *MessageStore { return &MessageStore{db: db} }

var messageCols = []string{"id", "conversation_id", "seq", "role", "content", "metadata", "idempotency_key", "created_at", "variant"}

// messagesInsert is the Insert of msgs, with IDs and times filled in. It is shared by
// MessageStore.Insert and the Writer so both store messages identically; the column
// types read the same in both dialects, so the dialect does not change the rows.
func messagesInsert(_ string, msgs []Message) Insert {
	rows := make([][]any, len(msgs))
	for i, m := range msgs {
		m = m.withDefaults()
		var metadata, key any
		if len(m.Metadata) > 0 {
			metadata = string(m.Metadata)
		}
		if m.IdempotencyKey != "" {
			key = m.IdempotencyKey
		}
		rows[i] = []any{m.ID, m.ConversationID, m.Seq, m.Role, m.Content, metadata, key, utc(m.CreatedAt), m.Variant}
	}
	return Insert{Table: "messages", Cols: slices.Clone(messageCols), Rows: rows}
}

func (m Message) withDefaults() Message {
	if m.ID == "" {
		m.ID = newID()
	}
	if m.CreatedAt.IsZero() {
		m.CreatedAt = time.Now()
	}
	m.CreatedAt = utc(m.CreatedAt)
	return m
}

// Insert implements Messages.
func (s *MessageStore) Insert(ctx context.Context, m Message) (Message, error) {
	m = m.withDefaults()
	in := messagesInsert(s.db.Dialect, []Message{m})
	cols := make([]any, len(in.Cols))
	for i, c := range in.Cols {
		cols[i] = c
	}
	q := s.db.Goqu.Insert(in.Table).Prepared(true).Cols(cols...).Vals(in.Rows[0])
	if _, err := q.Executor().ExecContext(ctx); err != nil {
		return Message{}, wrap(err, "insert message %d of conversation %s", m.Seq, m.ConversationID)
	}
	return m, nil
}

func (s *MessageStore) selectMessages() *goqu.SelectDataset {
	cols := make([]any, len(messageCols))
	for i, c := range messageCols {
		cols[i] = c
	}
	return s.db.Goqu.From("messages").Prepared(true).Select(cols...)
}

func scanMessage(r scanner) (Message, error) {
	var (
		m        Message
		metadata []byte
		key      *string
	)
	if err := r.Scan(&m.ID, &m.ConversationID, &m.Seq, &m.Role, &m.Content, &metadata, &key, &m.CreatedAt, &m.Variant); err != nil {
		return Message{}, err
	}
	if len(metadata) > 0 {
		m.Metadata = json.RawMessage(metadata)
	}
	if key != nil {
		m.IdempotencyKey = *key
	}
	return m, nil
}

func (s *MessageStore) getWhere(ctx context.Context, what string, where ...goqu.Expression) (Message, error) {
	m, err := first(ctx, s.selectMessages().Where(where...), scanMessage)
	if err != nil {
		return Message{}, fmt.Errorf("get message %s: %w", what, err)
	}
	return m, nil
}

// Get implements Messages.
func (s *MessageStore) Get(ctx context.Context, id string) (Message, error) {
	return s.getWhere(ctx, id, goqu.C("id").Eq(id))
}

// GetByIdempotencyKey implements Messages.
func (s *MessageStore) GetByIdempotencyKey(ctx context.Context, conversationID, key string) (Message, error) {
	return s.getWhere(ctx, "with idempotency key in conversation "+conversationID,
		goqu.C("conversation_id").Eq(conversationID), goqu.C("idempotency_key").Eq(key))
}

// ListByConversation implements Messages. Its cursor is the seq of the last message
// returned, so pages stay stable while messages are appended.
func (s *MessageStore) ListByConversation(ctx context.Context, conversationID string, dir Direction, req PageRequest) (Page[Message], error) {
	q := s.selectMessages().Where(goqu.C("conversation_id").Eq(conversationID))
	c, ok, err := decodeCursor(req.Cursor)
	if err != nil {
		return Page[Message]{}, fmt.Errorf("list messages of %s: %w", conversationID, err)
	}
	if ok {
		seq, err := parseIntKey(c.Key)
		if err != nil {
			return Page[Message]{}, fmt.Errorf("list messages of %s: %w", conversationID, err)
		}
		if dir == Backward {
			q = q.Where(goqu.C("seq").Lt(seq))
		} else {
			q = q.Where(goqu.C("seq").Gt(seq))
		}
	}
	if dir == Backward {
		q = q.Order(goqu.C("seq").Desc())
	} else {
		q = q.Order(goqu.C("seq").Asc())
	}
	ms, err := scanAll(ctx, q.Limit(uint(req.limit()+1)), scanMessage)
	if err != nil {
		return Page[Message]{}, wrap(err, "list messages of %s", conversationID)
	}
	return pageOf(ms, req, func(m Message) (string, string) {
		return strconv.FormatInt(m.Seq, 10), m.ID
	}), nil
}

// Tail implements Messages.
func (s *MessageStore) Tail(ctx context.Context, conversationID string, n int) ([]Message, error) {
	if n <= 0 {
		return nil, nil
	}
	q := s.selectMessages().Where(goqu.C("conversation_id").Eq(conversationID)).
		Order(goqu.C("seq").Desc()).Limit(uint(n))
	ms, err := scanAll(ctx, q, scanMessage)
	if err != nil {
		return nil, wrap(err, "tail of conversation %s", conversationID)
	}
	slices.Reverse(ms)
	return ms, nil
}

// LastSeq implements Messages.
func (s *MessageStore) LastSeq(ctx context.Context, conversationID string) (int64, error) {
	q := s.db.Goqu.From("messages").Prepared(true).Select("seq").
		Where(goqu.C("conversation_id").Eq(conversationID)).Order(goqu.C("seq").Desc())
	var seq int64
	if err := scanOne(ctx, q, &seq); err != nil {
		if err = classify(err); errors.Is(err, ErrNotFound) {
			return 0, nil
		}
		return 0, wrap(err, "last seq of conversation %s", conversationID)
	}
	return seq, nil
}

// newID returns a fresh UUIDv7, whose time prefix keeps inserts in index order.
func newID() string {
	return uuid.Must(uuid.NewV7()).String()
}
