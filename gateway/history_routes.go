package gateway

import (
	"context"
	"errors"
	"log/slog"
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
	Variant   string    `json:"variant" doc:"the agent's A/B variant that answered (or failed); empty for none and on user messages"`
	CreatedAt time.Time `json:"created_at"`
}

// historyPage is the body of GET /api/v1/chat/history.
type historyPage struct {
	Messages   []historyMessage `json:"messages" doc:"oldest first, or newest first with order=desc"`
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

// maxTitleChars bounds a conversation's title.
const maxTitleChars = 200

// renameConversationRequest is the body of PATCH /api/v1/chat/conversations/{id}.
type renameConversationRequest struct {
	Title string `json:"title" doc:"1 to 200 characters of one line of visible text"`
}

// Validate implements Validator.
func (r renameConversationRequest) Validate() []FieldError {
	return checkName("title", r.Title, maxTitleChars, true)
}

// cancelTurnRequest is the optional body of POST /api/v1/chat/conversations/{id}/cancel.
type cancelTurnRequest struct {
	TurnID string `json:"turn_id,omitempty" doc:"the Idempotency-Key the turn was sent with; omitted cancels the running turn and every queued one"`
}

// Validate implements Validator.
func (r cancelTurnRequest) Validate() []FieldError {
	if len(r.TurnID) > 200 {
		return []FieldError{{Field: "turn_id", Message: "at most 200 bytes"}}
	}
	return nil
}

// cancelTurnView is the body answering POST /api/v1/chat/conversations/{id}/cancel.
type cancelTurnView struct {
	Canceled bool `json:"canceled" doc:"whether a running or queued turn was cancelled"`
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
	// conversations renames and deletes through the session grains.
	commands ConversationBackend
	// rated, optional, tells an agent that one of its replies was rated (its
	// canary's decision counts ratings).
	rated func(ctx context.Context, agentID string) error
	log   *slog.Logger
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
	dir := persistence.Forward
	switch c.Query("order") {
	case "", "asc":
	case "desc":
		dir = persistence.Backward
	default:
		return Validation(FieldError{Field: "order", Message: "must be asc or desc"})
	}
	conv, err := h.readableConversation(c, p, strings.ToLower(id))
	if err != nil {
		return err
	}
	page, err := h.stores.Messages.ListByConversation(c.UserContext(), conv.ID, dir, req)
	if err != nil {
		return listProblem(err)
	}
	out := historyPage{Messages: make([]historyMessage, len(page.Items)), NextCursor: page.NextCursor}
	for i, m := range page.Items {
		out.Messages[i] = historyMessage{ID: m.ID, Seq: m.Seq, Role: m.Role, Content: m.Content, Variant: m.Variant, CreatedAt: m.CreatedAt.UTC()}
	}
	return c.JSON(out)
}

func viewConversation(cv persistence.Conversation) conversationView {
	return conversationView{ID: cv.ID, AgentID: cv.AgentID, Title: cv.Title, CreatedAt: cv.CreatedAt.UTC(), UpdatedAt: cv.UpdatedAt.UTC()}
}

// conversation serves GET /api/v1/chat/conversations/{id}: the owner, or a
// reader of any conversation.
func (h historyRoutes) conversation(c *fiber.Ctx) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	conv, err := h.readableConversation(c, p, id)
	if err != nil {
		return err
	}
	return c.JSON(viewConversation(conv))
}

// cancel serves POST /api/v1/chat/conversations/{id}/cancel. The session grain
// checks ownership: anyone but the owner gets the 404 of a missing one.
func (h historyRoutes) cancel(c *fiber.Ctx) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	var req cancelTurnRequest
	if len(c.Body()) > 0 {
		if req, err = Decode[cancelTurnRequest](c); err != nil {
			return err
		}
	}
	canceled, err := h.commands.CancelTurn(c.UserContext(), p.UserID, id, req.TurnID)
	if err != nil {
		return conversationProblem(err)
	}
	return c.JSON(cancelTurnView{Canceled: canceled})
}

// rename serves PATCH /api/v1/chat/conversations/{id}. The session grain
// checks ownership: anyone but the owner gets the 404 of a missing one.
func (h historyRoutes) rename(c *fiber.Ctx) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	req, err := Decode[renameConversationRequest](c)
	if err != nil {
		return err
	}
	if err := h.commands.RenameConversation(c.UserContext(), p.UserID, id, strings.TrimSpace(req.Title)); err != nil {
		return conversationProblem(err)
	}
	conv, err := h.stores.Conversations.Get(c.UserContext(), id)
	if errors.Is(err, persistence.ErrNotFound) {
		return errNoConversation()
	}
	if err != nil {
		return err
	}
	return c.JSON(viewConversation(conv))
}

// remove serves DELETE /api/v1/chat/conversations/{id}.
func (h historyRoutes) remove(c *fiber.Ctx) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	if err := h.commands.DeleteConversation(c.UserContext(), p.UserID, id); err != nil {
		return conversationProblem(err)
	}
	return c.SendStatus(http.StatusNoContent)
}

// conversationProblem gives a refused rename or delete the one 404 of the
// conversation routes, whatever the backend's wording.
func conversationProblem(err error) error {
	var e *Error
	if errors.As(err, &e) && e.Status == http.StatusNotFound {
		return errNoConversation()
	}
	return err
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
		out.Conversations[i] = viewConversation(cv)
	}
	return c.JSON(out)
}

// feedback rates a message. Only the conversation's owner may rate, even a
// moderator who can read it; a message the caller cannot write to is a 404
// like one that does not exist. Rating a message again replaces the rating
// and comment (200); the first rating is a 201.
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
	fb, created, err := h.stores.Feedback.Put(ctx, persistence.Feedback{MessageID: msg.ID, UserID: p.UserID, Rating: req.Rating, Comment: req.Comment})
	switch {
	case errors.Is(err, persistence.ErrConflict), errors.Is(err, persistence.ErrNotFound):
		// The message or user was deleted since it was read.
		return notFound
	case err != nil:
		return err
	}
	if h.rated != nil && conv.AgentID != "" {
		// The rating is stored: a canary that misses it now counts it when its
		// agent next activates.
		if err := h.rated(ctx, conv.AgentID); err != nil {
			h.log.WarnContext(ctx, "agent not told of a rating", "agent_id", conv.AgentID, "message_id", msg.ID, "error", err)
		}
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return c.Status(status).JSON(feedbackView{ID: fb.ID, MessageID: fb.MessageID, Rating: fb.Rating, Comment: fb.Comment, CreatedAt: fb.CreatedAt.UTC()})
}

// mountHistory registers the chat queries and feedback.
func (s *Server) mountHistory(h historyRoutes, authed fiber.Handler, rl rateLimits) {
	read, write := auth.RequirePermission(auth.PermChatRead), auth.RequirePermission(auth.PermChatWrite)
	s.Route(fiber.MethodGet, "/api/v1/chat/history", Op{Summary: "A page of a conversation's messages (yours; moderators and admins may read any)", Tag: "Chat", Auth: true,
		Query: append([]Param{{Name: "conversation_id", Required: true, Description: "the conversation's ID"},
			{Name: "order", Description: "asc (oldest first, the default) or desc (newest first, for paging upward); the cursor pages on in the same order"}},
			pageQuery()...),
		Response: historyPage{}, Errors: []int{http.StatusBadRequest, http.StatusNotFound}},
		authed, rl.user("chat.history"), read, h.history)
	s.Route(fiber.MethodGet, "/api/v1/chat/conversations", Op{Summary: "A page of your conversations", Tag: "Chat", Auth: true,
		Query: pageQuery(), Response: conversationsPage{}, Errors: []int{http.StatusBadRequest}},
		authed, rl.user("chat.conversations"), read, h.conversations)
	s.Route(fiber.MethodGet, "/api/v1/chat/conversations/:id", Op{Summary: "One conversation (yours; moderators and admins may read any)", Tag: "Chat", Auth: true,
		Response: conversationView{}, Errors: []int{http.StatusBadRequest, http.StatusNotFound}},
		authed, rl.user("chat.conversation"), read, h.conversation)
	s.Route(fiber.MethodPatch, "/api/v1/chat/conversations/:id", Op{Summary: "Rename one of your conversations", Tag: "Chat", Auth: true,
		Request: renameConversationRequest{}, Response: conversationView{}, Errors: []int{http.StatusNotFound, http.StatusServiceUnavailable}},
		authed, rl.user("chat.conversation.rename"), write, h.rename)
	s.Route(fiber.MethodDelete, "/api/v1/chat/conversations/:id", Op{Summary: "Delete one of your conversations with its messages and feedback; its ID is never used again", Tag: "Chat", Auth: true,
		Status: http.StatusNoContent, Errors: []int{http.StatusBadRequest, http.StatusNotFound, http.StatusServiceUnavailable}},
		authed, rl.user("chat.conversation.delete"), write, h.remove)
	s.Route(fiber.MethodPost, "/api/v1/chat/conversations/:id/cancel", Op{Summary: "Cancel the running turn of one of your conversations (or the one sent with turn_id) and drop its queued ones; a cancelled turn answers 409 and keeps the user's message", Tag: "Chat", Auth: true,
		Request: cancelTurnRequest{}, Response: cancelTurnView{}, Errors: []int{http.StatusBadRequest, http.StatusNotFound, http.StatusServiceUnavailable}},
		authed, rl.user("chat.conversation.cancel"), write, h.cancel)
	s.Route(fiber.MethodPost, "/api/v1/chat/feedback", Op{Summary: "Rate an assistant message of one of your conversations (201); rating it again replaces your rating and comment (200)", Tag: "Chat", Auth: true,
		Request: feedbackRequest{}, Response: feedbackView{}, Status: http.StatusCreated, Errors: []int{http.StatusNotFound}},
		authed, rl.user("chat.feedback"), write, h.feedback)
}
