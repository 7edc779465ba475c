package persistence

import (
	"context"
	"fmt"
	"time"

	"github.com/doug-martin/goqu/v9"
)

// Feedback is a user's rating of one assistant message: +1 or -1, with an optional comment.
type Feedback struct {
	ID        string
	MessageID string
	UserID    string
	Rating    int
	Comment   string
	CreatedAt time.Time
}

// FeedbackStore implements FeedbackWriter on a DB.
type FeedbackStore struct{ db *DB }

// FeedbackWriter records feedback.
type FeedbackWriter interface {
	// Create stores f. A second rating of one message by one user is ErrDuplicate; a
	// rating other than 1 or -1 is rejected; a missing message or user is ErrConflict.
	Create(ctx context.Context, f Feedback) (Feedback, error)
}

var _ FeedbackWriter = (*FeedbackStore)(nil)

// NewFeedbackStore returns the feedback repository of db.
func NewFeedbackStore(db *DB) *FeedbackStore { return &FeedbackStore{db: db} }

// Create implements FeedbackWriter.
func (s *FeedbackStore) Create(ctx context.Context, f Feedback) (Feedback, error) {
	if f.Rating != 1 && f.Rating != -1 {
		return Feedback{}, fmt.Errorf("create feedback: rating must be 1 or -1, not %d", f.Rating)
	}
	if f.ID == "" {
		f.ID = newID()
	}
	if f.CreatedAt.IsZero() {
		f.CreatedAt = time.Now()
	}
	f.CreatedAt = utc(f.CreatedAt)
	q := s.db.Goqu.Insert("feedback").Prepared(true).Rows(goqu.Record{
		"id": f.ID, "message_id": f.MessageID, "user_id": f.UserID, "rating": f.Rating,
		"comment": f.Comment, "created_at": f.CreatedAt,
	})
	if _, err := q.Executor().ExecContext(ctx); err != nil {
		return Feedback{}, wrap(err, "create feedback on message %s", f.MessageID)
	}
	return f, nil
}
