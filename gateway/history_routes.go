package gateway

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/persistence"
)

// maxCursorBytes bounds the opaque cursor; the ones this API hands out are
// well under 200 bytes.
const maxCursorBytes = 1024

// maxCommentChars bounds a feedback comment.
const maxCommentChars = 2000

// pageQuery documents the paging parameters of every list.
func pageQuery() []Param {
	return []Param{
		{Name: "limit", Type: "integer", Description: "page size, 1 to 200 (default 50)"},
		{Name: "cursor", Description: "next_cursor of the previous page; omit for the first page"},
	}
}

// pageRequest reads limit and cursor. A limit outside 1..200 is refused
// rather than clamped, so a client never silently gets less than it asked.
func pageRequest(c *fiber.Ctx) (persistence.PageRequest, error) {
	var req persistence.PageRequest
	var fields []FieldError
	if raw := c.Query("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > persistence.MaxPageLimit {
			fields = append(fields, FieldError{Field: "limit", Message: "must be an integer from 1 to 200"})
		}
		req.Limit = n
	}
	if cur := c.Query("cursor"); len(cur) > maxCursorBytes {
		fields = append(fields, FieldError{Field: "cursor", Message: "is not a cursor this API returned"})
	} else {
		// The query string aliases a buffer Fiber reuses after the request.
		req.Cursor = strings.Clone(cur)
	}
	if len(fields) > 0 {
		return req, Validation(fields...)
	}
	return req, nil
}

// listProblem turns a repository's list error into a problem: a forged or
// stale cursor is the client's fault.
func listProblem(err error) error {
	if errors.Is(err, persistence.ErrInvalidCursor) {
		return Validation(FieldError{Field: "cursor", Message: "is not a cursor this API returned"})
	}
	return err
}

// pathID reads a UUID path parameter, lower-cased as IDs are stored.
// Anything else, encoded path tricks included, is a 400 naming the field.
func pathID(c *fiber.Ctx, name string) (string, error) {
	id := c.Params(name)
	if !isUUID(id) {
		return "", Validation(FieldError{Field: name, Message: "must be a UUID"})
	}
	return strings.ToLower(id), nil
}

// historyMessage is one message of GET /api/v1/chat/history.
type historyMessage struct {
	ID        string    `json:"id"`
	Seq       int64     `json:"seq"`
	Role      string    `json:"role" doc:"user, assistant, system or tool"`
	Content   string    `json:"content"`
	CreatedAt time.Time `json:"created_at"`
}

// historyPage is the body of GET /api/v1/chat/history.
type historyPage struct {
	Messages   []historyMessage `json:"messages" doc:"oldest first"`
	NextCursor string           `json:"next_cursor" doc:"empty on the last page"`
}

// conversationView is one conversation of GET /api/v1/chat/conversations.
type conversationView struct {
	ID        string    `json:"id"`
	AgentID   string    `json:"agent_id"`
	Title     string    `json:"title"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// conversationsPage is the body of GET /api/v1/chat/conversations.
type conversationsPage struct {
	Conversations []conversationView `json:"conversations" doc:"most recently updated first"`
	NextCursor    string             `json:"next_cursor" doc:"empty on the last page"`
}

// feedbackRequest is the body of POST /api/v1/chat/feedback.
type feedbackRequest struct {
	MessageID string `json:"message_id" doc:"an assistant message of one of your conversations"`
	Rating    int    `json:"rating" doc:"1 (good) or -1 (bad)"`
	Comment   string `json:"comment,omitempty" doc:"at most 2000 characters"`
}

// Validate implements Validator.
func (r feedbackRequest) Validate() []FieldError {
	var f []FieldError
	if !isUUID(r.MessageID) {
		f = append(f, FieldError{Field: "message_id", Message: "must be a UUID"})
	}
	if r.Rating != 1 && r.Rating != -1 {
		f = append(f, FieldError{Field: "rating", Message: "must be 1 or -1"})
	}
	if utf8.RuneCountInString(r.Comment) > maxCommentChars || strings.ContainsRune(r.Comment, 0) {
		f = append(f, FieldError{Field: "comment", Message: "must be at most 2000 characters without NUL"})
	}
	return f
}

// feedbackView is the body answering POST /api/v1/chat/feedback.
type feedbackView struct {
	ID        string    `json:"id"`
	MessageID string    `json:"message_id"`
	Rating    int       `json:"rating"`
	Comment   string    `json:"comment"`
	CreatedAt time.Time `json:"created_at"`
}

// historyRoutes serves the chat queries and feedback straight from the
// database: they change no actor state.
type historyRoutes struct {
	stores Stores
}

// errNoConversation is the one answer for a conversation that does not exist
// and one the caller may not see, so IDs cannot be probed.
func errNoConversation() *Error { return NewError(http.StatusNotFound, "no such conversation") }

// readableConversation loads a conversation p may read, or 404.
func (h historyRoutes) readableConversation(c *fiber.Ctx, p auth.Principal, id string) (persistence.Conversation, error) {
	conv, err := h.stores.Conversations.Get(c.UserContext(), id)
	switch {
	case errors.Is(err, persistence.ErrNotFound):
		return conv, errNoConversation()
	case err != nil:
		return conv, err
	case !p.CanRead(conv.OwnerID):
		return conv, errNoConversation()
	}
	return conv, nil
}

func (h historyRoutes) history(c *fiber.Ctx) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	id := c.Query("conversation_id")
	if !isUUID(id) {
		return Validation(FieldError{Field: "conversation_id", Message: "is required and must be a UUID"})
	}
	req, err := pageRequest(c)
	if err != nil {
		return err
	}
	conv, err := h.readableConversation(c, p, strings.ToLower(id))
	if err != nil {
		return err
	}
	page, err := h.stores.Messages.ListByConversation(c.UserContext(), conv.ID, persistence.Forward, req)
	if err != nil {
		return listProblem(err)
	}
	out := historyPage{Messages: make([]historyMessage, len(page.Items)), NextCursor: page.NextCursor}
	for i, m := range page.Items {
		out.Messages[i] = historyMessage{ID: m.ID, Seq: m.Seq, Role: m.Role, Content: m.Content, CreatedAt: m.CreatedAt.UTC()}
	}
	return c.JSON(out)
}

func (h historyRoutes) conversations(c *fiber.Ctx) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	req, err := pageRequest(c)
	if err != nil {
		return err
	}
	page, err := h.stores.Conversations.ListByOwner(c.UserContext(), p.UserID, req)
	if err != nil {
		return listProblem(err)
	}
	out := conversationsPage{Conversations: make([]conversationView, len(page.Items)), NextCursor: page.NextCursor}
	for i, cv := range page.Items {
		out.Conversations[i] = conversationView{ID: cv.ID, AgentID: cv.AgentID, Title: cv.Title,
			CreatedAt: cv.CreatedAt.UTC(), UpdatedAt: cv.UpdatedAt.UTC()}
	}
	return c.JSON(out)
}

// feedback rates a message. Only the conversation's owner may rate, even a
// moderator who can read it; a message the caller cannot write to is a 404
// like one that does not exist.
func (h historyRoutes) feedback(c *fiber.Ctx) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	req, err := Decode[feedbackRequest](c)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	notFound := NewError(http.StatusNotFound, "no such message")
	msg, err := h.stores.Messages.Get(ctx, strings.ToLower(req.MessageID))
	if errors.Is(err, persistence.ErrNotFound) {
		return notFound
	}
	if err != nil {
		return err
	}
	conv, err := h.stores.Conversations.Get(ctx, msg.ConversationID)
	if errors.Is(err, persistence.ErrNotFound) || err == nil && !p.CanWrite(conv.OwnerID) {
		return notFound
	}
	if err != nil {
		return err
	}
	if msg.Role != "assistant" {
		return Validation(FieldError{Field: "message_id", Message: "must be an assistant message"})
	}
	fb, err := h.stores.Feedback.Create(ctx, persistence.Feedback{MessageID: msg.ID, UserID: p.UserID, Rating: req.Rating, Comment: req.Comment})
	switch {
	case errors.Is(err, persistence.ErrDuplicate):
		return NewError(http.StatusConflict, "you have already rated this message")
	case errors.Is(err, persistence.ErrConflict):
		// The message or user was deleted since it was read.
		return notFound
	case err != nil:
		return err
	}
	return c.Status(http.StatusCreated).JSON(feedbackView{ID: fb.ID, MessageID: fb.MessageID, Rating: fb.Rating, Comment: fb.Comment, CreatedAt: fb.CreatedAt.UTC()})
}

// mountHistory registers the chat queries and feedback.
func (s *Server) mountHistory(h historyRoutes, authed fiber.Handler, rl rateLimits) {
	read, write := auth.RequirePermission(auth.PermChatRead), auth.RequirePermission(auth.PermChatWrite)
	s.Route(fiber.MethodGet, "/api/v1/chat/history", Op{Summary: "A page of a conversation's messages (yours; moderators and admins may read any)", Tag: "Chat", Auth: true,
		Query:    append([]Param{{Name: "conversation_id", Required: true, Description: "the conversation's ID"}}, pageQuery()...),
		Response: historyPage{}, Errors: []int{http.StatusBadRequest, http.StatusNotFound}},
		authed, rl.user("chat.history"), read, h.history)
	s.Route(fiber.MethodGet, "/api/v1/chat/conversations", Op{Summary: "A page of your conversations", Tag: "Chat", Auth: true,
		Query: pageQuery(), Response: conversationsPage{}, Errors: []int{http.StatusBadRequest}},
		authed, rl.user("chat.conversations"), read, h.conversations)
	s.Route(fiber.MethodPost, "/api/v1/chat/feedback", Op{Summary: "Rate an assistant message of one of your conversations", Tag: "Chat", Auth: true,
		Request: feedbackRequest{}, Response: feedbackView{}, Status: http.StatusCreated, Errors: []int{http.StatusNotFound, http.StatusConflict}},
		authed, rl.user("chat.feedback"), write, h.feedback)
}
