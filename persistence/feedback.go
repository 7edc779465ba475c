package persistence

import (
	"context"
	"errors"
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
	// Put stores f, or replaces the rating and comment of the user's earlier feedback on
	// the message (keeping its ID and creation time); created reports which. Errors are
	// Create's, without ErrDuplicate.
	Put(ctx context.Context, f Feedback) (stored Feedback, created bool, err error)
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

// Put implements FeedbackWriter: an insert, and on the unique (message, user) key an
// update of that row. Two Puts of one rating at once both succeed, the later winning.
func (s *FeedbackStore) Put(ctx context.Context, f Feedback) (Feedback, bool, error) {
	stored, err := s.Create(ctx, f)
	if !errors.Is(err, ErrDuplicate) {
		return stored, err == nil, err
	}
	where := []goqu.Expression{goqu.C("message_id").Eq(f.MessageID), goqu.C("user_id").Eq(f.UserID)}
	res, err := s.db.Goqu.Update("feedback").Prepared(true).Set(goqu.Record{"rating": f.Rating, "comment": f.Comment}).
		Where(where...).Executor().ExecContext(ctx)
	if err := expectRow(res, err, "update feedback on message "+f.MessageID); err != nil {
		return Feedback{}, false, err
	}
	q := s.db.Goqu.From("feedback").Prepared(true).Select("id", "message_id", "user_id", "rating", "comment", "created_at").Where(where...)
	var out Feedback
	if err := scanOne(ctx, q, &out.ID, &out.MessageID, &out.UserID, &out.Rating, &out.Comment, &out.CreatedAt); err != nil {
		return Feedback{}, false, wrap(err, "read feedback on message %s", f.MessageID)
	}
	return out, false, nil
}
