package gateway

import (
	"context"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/gateway/auth"
)

// MaxMessageBytes bounds one chat message's content.
const MaxMessageBytes = 32 << 10

// ChatTurn is one user message sent to a conversation.
type ChatTurn struct {
	UserID         string
	ConversationID string
	// AgentID is empty for the conversation's agent (or the default agent
	// when the conversation is new).
	AgentID        string
	Content        string
	IdempotencyKey string
	// MustExist refuses to create the conversation: the client named an ID that only
	// the gateway may choose for a new conversation (see newTurn).
	MustExist bool
	// Fresh says the gateway minted ConversationID for this turn (a random UUIDv7):
	// nothing is stored under it, so its session need not look.
	Fresh bool
	// FreshKey says the gateway minted IdempotencyKey for this turn just now (at
	// random): nothing is stored under it, so the turn need not look it up.
	FreshKey bool
	// Options override the agent's model settings for this turn; nil keeps them.
	Options *actorpb.ModelOptions
	// NoPremium says the caller lacks models:premium: the agent refuses the turn
	// when it (or the conversation's variant) runs a premium model.
	NoPremium bool
}

// Usage is the model usage of one turn as clients see it.
type Usage struct {
	PromptTokens     int     `json:"prompt_tokens"`
	CompletionTokens int     `json:"completion_tokens"`
	CostUSD          float64 `json:"cost_usd"`
	CacheHit         bool    `json:"cache_hit"`
}

// ChatReply is the stored answer to a turn.
type ChatReply struct {
	ConversationID string `json:"conversation_id"`
	MessageID      string `json:"message_id"`
	Response       string `json:"response"`
	Usage          Usage  `json:"usage"`
	// StopReason is the model's reason for ending the reply, when known.
	StopReason string `json:"-"`
}

// ChatBackend runs chat turns; the cluster-backed implementation sends them
// to session grains. onDelta, when not nil, receives the reply's tokens as
// they are produced, from one goroutine at a time. Errors a client should
// see are *Error values; anything else is a 500.
type ChatBackend interface {
	Send(ctx context.Context, turn ChatTurn, onDelta func(delta string)) (ChatReply, error)
}

// ConversationBackend changes a conversation as a whole; the cluster-backed
// implementation (ClusterChat) asks the conversation's session grain, which
// owns its state. Only the owner may; for anyone else, and for a
// conversation that does not exist, both answer the same 404 *Error.
type ConversationBackend interface {
	// RenameConversation sets the title of the conversation.
	RenameConversation(ctx context.Context, userID, conversationID, title string) error
	// DeleteConversation erases the conversation, its messages and their
	// feedback; its ID is never served again.
	DeleteConversation(ctx context.Context, userID, conversationID string) error
	// CancelTurn stops the conversation's running turn and drops its queued
	// ones (turnID, when set, picks the one turn sent with that idempotency
	// key); it reports whether any was cancelled. A cancelled turn answers
	// its sender 409 and the user's message stays in the history.
	CancelTurn(ctx context.Context, userID, conversationID, turnID string) (bool, error)
}

// sendMessageRequest is the body of POST /api/v1/chat/message.
type sendMessageRequest struct {
	Content        string `json:"content" doc:"the user's message, 1 to 32768 bytes"`
	ConversationID string `json:"conversation_id,omitempty" doc:"an existing conversation; omitted starts a new one"`
	AgentID        string `json:"agent_id,omitempty" doc:"the agent that answers a new conversation; default the built-in chat agent"`
}

// Validate implements Validator.
func (r sendMessageRequest) Validate() []FieldError {
	var f []FieldError
	f = append(f, checkContent("content", r.Content)...)
	if r.ConversationID != "" && !isUUID(r.ConversationID) {
		f = append(f, FieldError{Field: "conversation_id", Message: "must be a UUID"})
	}
	if r.AgentID != "" && !isUUID(r.AgentID) {
		f = append(f, FieldError{Field: "agent_id", Message: "must be a UUID"})
	}
	return f
}

func checkContent(field, content string) []FieldError {
	switch {
	case strings.TrimSpace(content) == "":
		return []FieldError{{Field: field, Message: "must not be empty"}}
	case len(content) > MaxMessageBytes:
		return []FieldError{{Field: field, Message: "must be at most 32768 bytes"}}
	case !utf8.ValidString(content) || strings.ContainsRune(content, 0):
		return []FieldError{{Field: field, Message: "must be valid UTF-8 text without NUL"}}
	}
	return nil
}

// isUUID accepts canonical lower- or upper-case UUIDs only, so IDs can never
// carry path tricks or SQL into a query.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	_, err := uuid.Parse(s)
	return err == nil
}

// idempotencyKey validates the Idempotency-Key header: optional, 1-128
// printable ASCII characters.
func idempotencyKey(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	if len(raw) > 128 || !saneRequestID.MatchString(raw) {
		return "", Validation(FieldError{Field: "Idempotency-Key", Message: "must be 1-128 characters of A-Z a-z 0-9 . _ : -"})
	}
	// Fiber's header strings alias a reused buffer; the key outlives the request.
	return strings.Clone(raw), nil
}

// mintedKeyPrefix starts the idempotency key the gateway gives a streamed
// turn sent without one.
const mintedKeyPrefix = "kowai-"

// newConversationSpace is the UUID namespace of conversation IDs derived
// from a user and an idempotency key.
var newConversationSpace = uuid.MustParse("4a8f3a52-6f0e-4d3b-9a57-0d3c2b7e9f11")

// principal returns the authenticated caller; routes that call it run after
// auth.RequireAuth.
func principal(c *fiber.Ctx) (auth.Principal, error) {
	p, ok := auth.PrincipalFrom(c)
	if !ok {
		return auth.Principal{}, NewError(http.StatusUnauthorized, "authentication required")
	}
	return p, nil
}

// newTurn completes a turn. A new conversation gets a fresh UUIDv7, or,
// when the turn has an idempotency key, an ID derived from the user and the
// key: a retry of the turn that started a conversation then reaches that
// conversation, whose session replays the stored answer, instead of
// starting a second one.
//
// Derived IDs are name-based (version 5) UUIDs, and they are reserved for
// the user they are derived for: a client may continue a conversation under
// such an ID, never create one by naming it, so nobody can take another
// user's derived ID before that user's first turn does. Any other ID a
// client names is created by its first turn, as before.
func newTurn(p auth.Principal, conversationID, agentID, content, key string) (ChatTurn, error) {
	userID := p.UserID
	mustExist, fresh := false, false
	switch {
	case conversationID != "":
		mustExist = uuid.MustParse(conversationID).Version() == 5
	case key != "":
		conversationID = uuid.NewSHA1(newConversationSpace, []byte(userID+"\x00"+key)).String()
	default:
		id, err := uuid.NewV7()
		if err != nil {
			return ChatTurn{}, err
		}
		conversationID, fresh = id.String(), true
	}
	return ChatTurn{UserID: userID, ConversationID: strings.ToLower(conversationID), AgentID: strings.ToLower(agentID),
		Content: content, IdempotencyKey: key, MustExist: mustExist, Fresh: fresh, NoPremium: !p.Can(auth.PermPremiumModels)}, nil
}

// postMessage serves POST /api/v1/chat/message: the reply as JSON, or,
// when the client accepts text/event-stream, as Server-Sent Events recorded
// in cs for resumption.
func postMessage(chat ChatBackend, cs *chatStreams) fiber.Handler {
	return func(c *fiber.Ctx) error {
		p, err := principal(c)
		if err != nil {
			return err
		}
		req, err := Decode[sendMessageRequest](c)
		if err != nil {
			return err
		}
		key, err := idempotencyKey(c.Get("Idempotency-Key"))
		if err != nil {
			return err
		}
		sse := wantsEventStream(c)
		minted := sse && key == ""
		if minted {
			// A streamed turn always has a key, told to the client in the
			// response's headers: retried with it on a survivor after its
			// node died, the turn continues the same stream (see streamTurn).
			key = cs.ids.mintKey(p.UserID)
		}
		turn, err := newTurn(p, req.ConversationID, req.AgentID, req.Content, key)
		if err != nil {
			return err
		}
		// A new conversation's ID derived from a key minted just now (random)
		// names nothing stored yet, as a minted UUIDv7 does; its retry, which
		// brings the key, is not fresh.
		turn.Fresh = turn.Fresh || (minted && req.ConversationID == "")
		turn.FreshKey = minted
		if sse {
			return cs.streamTurn(c, chat, turn)
		}
		reply, err := chat.Send(c.UserContext(), turn, nil)
		if err != nil {
			return err
		}
		return c.JSON(reply)
	}
}
