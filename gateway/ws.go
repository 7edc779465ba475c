package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/gateway/ratelimit"
	"github.com/kowai/kowai/gateway/streams"
	"github.com/kowai/kowai/internal/logging"
)

// WebSocket limits. A connection whose client reads too slowly for its
// send queue is closed with ClosePolicyViolation rather than buffered
// without bound.
const (
	wsAuthTimeout  = 5 * time.Second
	wsPingInterval = 25 * time.Second
	wsPongWait     = 60 * time.Second
	wsWriteWait    = 10 * time.Second
	wsSendQueue    = 256
	wsMaxTurns     = 4
	// wsMaxSubscriptions bounds the workflow runs one connection follows.
	wsMaxSubscriptions = 16
	wsMaxFrameBytes    = 64 << 10
	// wsRecheckInterval is how often an idle connection's session is checked
	// again; every message frame checks it anyway.
	wsRecheckInterval = 30 * time.Second
)

// Close codes of kowai's own (the 4000-4999 range is the application's),
// sent when a connection's credentials stop being valid. The close reason
// says which case it is; the client reconnects with a fresh token or, before
// exp, re-authenticates in band with an auth frame.
const (
	// WSCloseTokenExpired ends a connection whose access token reached its
	// exp without an auth frame carrying a newer one.
	WSCloseTokenExpired = 4401
	// WSCloseRevoked ends a connection whose session was revoked (logout,
	// an admin's role change, reuse of a spent refresh token, anything else
	// that revokes it), whose account was disabled or deleted, or whose auth
	// frame carried another user's token.
	WSCloseRevoked = 4403
)

// closeError is a verdict that ends the connection with code and reason;
// the message frame it refused gets an error frame with status.
type closeError struct {
	code   int
	status int
	reason string
}

func (e *closeError) Error() string {
	return fmt.Sprintf("websocket: close %d: %s", e.code, e.reason)
}

// The verdicts on a connection's credentials that end it.
var (
	errWSTokenExpired    = &closeError{WSCloseTokenExpired, http.StatusUnauthorized, "token expired"}
	errWSSessionRevoked  = &closeError{WSCloseRevoked, http.StatusUnauthorized, "session revoked"}
	errWSAccountDisabled = &closeError{WSCloseRevoked, http.StatusForbidden, "account disabled"}
	errWSOtherUser       = &closeError{WSCloseRevoked, http.StatusForbidden, "the token belongs to another user"}
)

// Locals under which the pre-upgrade handler hands data to the connection;
// the WebSocket library copies only string-keyed locals.
const (
	wsLocalPrincipal = "kowai.ws.principal"
	wsLocalToken     = "kowai.ws.token"
	wsLocalRequestID = "kowai.ws.request_id"
)

// wsClientFrame is any frame a client sends.
//
// The frame tags feed the AsyncAPI document (asyncapi.go): each names the
// frame types a field belongs to, "!" marking it required there. Every
// field needs one, and the type field lists every frame type.
type wsClientFrame struct {
	Type           string `json:"type" frame:"auth!,message!,resume!,subscribe!,unsubscribe!"`
	Token          string `json:"token,omitempty" frame:"auth!" doc:"an access token or API key"`
	ID             string `json:"id,omitempty" frame:"auth,message,resume,subscribe,unsubscribe" doc:"chosen by the client (at most 128 characters); replies to this frame carry it"`
	Content        string `json:"content,omitempty" frame:"message!" doc:"the user's message"`
	ConversationID string `json:"conversation_id,omitempty" frame:"message" doc:"the conversation to continue; omit it to start one"`
	AgentID        string `json:"agent_id,omitempty" frame:"message" doc:"the agent that answers; omit it for the default"`
	IdempotencyKey string `json:"idempotency_key,omitempty" frame:"message" doc:"makes a retried turn return the stored reply instead of running again"`
	// RunID is the workflow run of a subscribe or unsubscribe frame.
	RunID string `json:"run_id,omitempty" frame:"subscribe!,unsubscribe!" doc:"the workflow run to follow or stop following"`
	// LastEventID, on a subscribe frame, resumes after that event of the
	// run, as Last-Event-ID does on the REST events stream.
	LastEventID int64 `json:"last_event_id,omitempty" frame:"subscribe" doc:"resume after this event of the run (the id of a run_event frame)"`
	// StreamID and After are a resume frame's stream and the last sequence
	// number the client holds.
	StreamID string `json:"stream_id,omitempty" frame:"resume!" doc:"the reply's stream (the stream_id of its token frames)"`
	After    int64  `json:"after,omitempty" frame:"resume" doc:"the seq of the last entry the client holds; omitted or 0 for the whole stream"`
}

// wsFrameType is the part of a client frame read before anything else, so a
// frame of a type this server does not speak gets an answer naming the type
// rather than one about its fields.
type wsFrameType struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// wsServerFrame is any frame the server sends but run events: token,
// restart, done, subscribed, unsubscribed or error. Its frame tags work as
// wsClientFrame's.
type wsServerFrame struct {
	Type string `json:"type" frame:"token!,restart!,done!,subscribed!,unsubscribed!,error!"`
	ID   string `json:"id,omitempty" frame:"token,restart,done,subscribed,unsubscribed,error" doc:"the id of the client frame this answers, when it had one"`
	// StreamID and Seq place a token, restart or done frame in its reply's
	// stream, for a resume frame after a lost connection.
	StreamID string `json:"stream_id,omitempty" frame:"token!,restart!,done" doc:"the reply's stream, for a resume frame"`
	Seq      int64  `json:"seq,omitempty" frame:"token!,restart!,done" doc:"the entry's number in its stream, from 1 without gaps"`
	// Attempt is a restart frame's new attempt: the tokens before it belong
	// to an abandoned attempt.
	Attempt        int    `json:"attempt,omitempty" frame:"restart!" doc:"the new attempt; drop the reply's text received so far"`
	RunID          string `json:"run_id,omitempty" frame:"subscribed!,unsubscribed!,error" doc:"the workflow run the frame is about"`
	Delta          string `json:"delta,omitempty" frame:"token!" doc:"the next piece of the reply"`
	ConversationID string `json:"conversation_id,omitempty" frame:"done!"`
	MessageID      string `json:"message_id,omitempty" frame:"done!" doc:"the stored assistant message"`
	Response       string `json:"response,omitempty" frame:"done!" doc:"the whole reply"`
	Usage          *Usage `json:"usage,omitempty" frame:"done!"`
	Status         int    `json:"status,omitempty" frame:"error!" doc:"the HTTP status the same failure gets over REST"`
	Title          string `json:"title,omitempty" frame:"error!"`
	Detail         string `json:"detail,omitempty" frame:"error" doc:"what went wrong; for a refused field, the field and why"`
	// RetryAfter is, on an error frame, the seconds to wait before retrying
	// (a refusal by the rate limit, a conversation moving between nodes).
	RetryAfter int64 `json:"retry_after,omitempty" frame:"error" doc:"seconds to wait before retrying, when the refusal says so"`
}

// wsRunEventFrame is one event of a subscribed workflow run: the same events,
// with the same numbers, as GET /api/v1/workflows/{run_id}/events, and last
// one with event_type "result" (no id) once the run has finished.
type wsRunEventFrame struct {
	Type      string          `json:"type" frame:"run_event!"`
	RunID     string          `json:"run_id" frame:"run_event!" doc:"the subscribed run"`
	ID        int64           `json:"id,omitempty" frame:"run_event" doc:"the event's number in the run (absent on the result)"`
	EventType string          `json:"event_type" frame:"run_event!" doc:"run (the run's state), task (a task's state) or result (the final status, result and error; the last frame of the subscription)"`
	Event     json.RawMessage `json:"event" frame:"run_event!" doc:"the event, as the data of the REST events stream"`
}

type wsHandler struct {
	// tracer is nil when tracing is off.
	tracer  trace.Tracer
	chat    ChatBackend
	streams *chatStreams
	auth    auth.Authenticator
	// users, when not nil, gives every message frame the roles of the
	// current user record (normally API.Auth).
	users  auth.UserLookup
	limits rateLimits
	log    *slog.Logger
	open   prometheus.Gauge
	// authTimeout, pingInterval and recheckInterval are fields so tests can
	// shorten them.
	authTimeout     time.Duration
	pingInterval    time.Duration
	recheckInterval time.Duration
	sendQueue       int
	// workflows, when not nil, serves subscribe frames.
	workflows *Workflows
}

// upgrade runs before the protocol switch: it refuses plain HTTP, and
// authenticates an Authorization header when one is sent (a refused token
// is a 401 before any upgrade). Without the header the client must send an
// auth frame first.
func (h *wsHandler) upgrade(c *fiber.Ctx) error {
	if !websocket.IsWebSocketUpgrade(c) {
		return NewError(http.StatusUpgradeRequired, "this route speaks WebSocket only")
	}
	if token := auth.BearerToken(c.Get(fiber.HeaderAuthorization)); token != "" {
		p, err := h.check(c.UserContext(), token)
		if err != nil {
			return err
		}
		c.Locals(wsLocalPrincipal, p)
		// Fiber's header strings alias a reused buffer; the token outlives
		// the request.
		c.Locals(wsLocalToken, strings.Clone(token))
	}
	c.Locals(wsLocalRequestID, logging.CorrelationID(c.UserContext()))
	c.Locals(wsLocalSpan, trace.SpanContextFromContext(c.UserContext()))
	return c.Next()
}

// check verifies a token for this route: through auth.Current (the REST
// path plus the user record) and, stricter than a request, not past its
// exp, since the connection would end there at once. Refusals are *Error
// values for the client, wrapping the auth error; a backend failure is
// returned as is.
func (h *wsHandler) check(ctx context.Context, token string) (auth.Principal, error) {
	p, err := auth.Current(ctx, h.auth, h.users, token)
	var refusal *Error
	switch {
	case errors.Is(err, auth.ErrInvalidToken):
		refusal = NewError(http.StatusUnauthorized, "invalid or expired token")
	case errors.Is(err, auth.ErrAccountDisabled):
		refusal = NewError(http.StatusForbidden, "account disabled")
	case err != nil:
		return auth.Principal{}, err
	case expired(p, time.Now()):
		refusal, err = NewError(http.StatusUnauthorized, "invalid or expired token"), auth.ErrInvalidToken
	default:
		return p, nil
	}
	refusal.Err = err
	return auth.Principal{}, refusal
}

// expired reports whether p's token has reached its exp at now.
func expired(p auth.Principal, now time.Time) bool {
	return !p.ExpiresAt.IsZero() && !now.Before(p.ExpiresAt)
}

// conn is one WebSocket connection's state. Only the writer goroutine writes
// to the socket.
type conn struct {
	h   *wsHandler
	ws  *websocket.Conn
	ctx context.Context
	// out holds wsServerFrame and wsRunEventFrame values.
	out    chan any
	closed chan struct{}
	once   sync.Once
	code   int
	reason string
	// flush sends the frames queued before the close; an overflow close
	// drops them, since the client is not reading.
	flush bool

	// credMu guards the credentials the connection was opened or last
	// re-authenticated with; reauthed tells the watcher that exp moved.
	credMu   sync.Mutex
	token    string
	held     auth.Principal
	reauthed chan struct{}

	// subMu guards subs, the runs the connection follows.
	subMu sync.Mutex
	subs  map[string]*subscription
}

// subscription is one run a connection follows; done closes when its
// goroutine has returned.
type subscription struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// serve is the connection's life: authenticate, then read frames until the
// client leaves or its credentials end, running up to wsMaxTurns turns at
// once.
func (h *wsHandler) serve(ws *websocket.Conn) {
	h.open.Inc()
	defer h.open.Dec()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if id, _ := ws.Locals(wsLocalRequestID).(string); id != "" {
		ctx = logging.WithCorrelationID(ctx, id)
	}
	upgradeSpan, _ := ws.Locals(wsLocalSpan).(trace.SpanContext)
	c := &conn{h: h, ws: ws, ctx: ctx, out: make(chan any, h.sendQueue), closed: make(chan struct{}),
		reauthed: make(chan struct{}, 1), subs: map[string]*subscription{}}
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop()
	}()
	defer func() {
		c.close(websocket.CloseNormalClosure, "")
		<-writerDone
	}()

	ws.SetReadLimit(wsMaxFrameBytes)
	p, ok := ws.Locals(wsLocalPrincipal).(auth.Principal)
	token, _ := ws.Locals(wsLocalToken).(string)
	if !ok {
		if token, p, ok = c.authenticate(); !ok {
			return
		}
	}
	c.token, c.held = token, p
	watcherDone := make(chan struct{})
	go func() {
		defer close(watcherDone)
		c.watch()
	}()
	defer func() {
		c.close(websocket.CloseNormalClosure, "")
		<-watcherDone
	}()
	_ = ws.SetReadDeadline(time.Now().Add(wsPongWait))
	ws.SetPongHandler(func(string) error { return ws.SetReadDeadline(time.Now().Add(wsPongWait)) })

	turns := make(chan struct{}, wsMaxTurns)
	var running sync.WaitGroup
	// startTurn runs fn as one of the connection's wsMaxTurns turns (a chat turn
	// or a resumed stream), or answers the frame id with 429 when all are taken.
	startTurn := func(id string, fn func()) bool {
		select {
		case turns <- struct{}{}:
		default:
			c.sendError(id, NewError(http.StatusTooManyRequests, fmt.Sprintf("at most %d turns may run at once on one connection", wsMaxTurns)))
			return false
		}
		running.Go(func() {
			defer func() { <-turns }()
			fn()
		})
		return true
	}
	defer running.Wait()
	defer cancel()
	for {
		_, raw, err := ws.ReadMessage()
		if err != nil {
			if !websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) {
				h.log.DebugContext(ctx, "websocket read ended", "error", err)
			}
			return
		}
		if c.isClosed() {
			// Credentials ended; frames still in flight are not served.
			return
		}
		_ = ws.SetReadDeadline(time.Now().Add(wsPongWait))
		var kind wsFrameType
		if err := json.Unmarshal(raw, &kind); err != nil {
			// Let the strict decoder say what is wrong.
			var f wsClientFrame
			err = decodeJSON(raw, &f)
			if err == nil {
				err = NewError(http.StatusBadRequest, "a frame is a JSON object with a string type")
			}
			c.sendError("", err)
			continue
		}
		// Each frame is handled inside its span; a chat turn hands the span to
		// the goroutine that runs it, which ends it with the turn.
		fctx, span := h.frameSpan(ctx, upgradeSpan, kind.Type, kind.ID)
		handedOff := func() bool {
			switch kind.Type {
			case "message":
				var f wsClientFrame
				if err := decodeJSON(raw, &f); err != nil {
					c.sendError(kind.ID, err)
					return false
				}
				p, ok := c.authorize(f.ID, auth.PermChatWrite)
				if !ok {
					return false
				}
				if !c.allow(f.ID, p) {
					return false
				}
				turn, err := c.turn(p, f)
				if err != nil {
					c.sendError(f.ID, err)
					return false
				}
				turnCtx := auth.WithPrincipal(fctx, p)
				return startTurn(f.ID, func() {
					defer endSpan(span)
					c.run(turnCtx, f.ID, turn)
				})
			case "auth":
				var f wsClientFrame
				if err := decodeJSON(raw, &f); err != nil {
					c.sendError(kind.ID, err)
					return false
				}
				c.reauthenticate(f)
			case "subscribe", "unsubscribe":
				var f wsClientFrame
				if err := decodeJSON(raw, &f); err != nil {
					c.sendError(kind.ID, err)
					return false
				}
				if kind.Type == "subscribe" {
					c.subscribe(f, &running)
				} else {
					c.unsubscribe(f)
				}
			case "resume":
				var f wsClientFrame
				if err := decodeJSON(raw, &f); err != nil {
					c.sendError(kind.ID, err)
					return false
				}
				p, ok := c.authorize(f.ID, auth.PermChatRead)
				if !ok || !c.allowIn(f.ID, p, "chat.streams") {
					return false
				}
				sid, err := c.resumable(f)
				if err != nil {
					c.sendError(f.ID, err)
					return false
				}
				// The stream is looked up, and awaited when it is not stored
				// yet, off the read loop: the connection's other frames go on.
				startTurn(f.ID, func() { c.follow(f.ID, sid, p.UserID, f.After) })
			default:
				c.sendError(kind.ID, Validation(FieldError{Field: "type", Message: "must be message, auth, resume, subscribe or unsubscribe"}))
			}
			return false
		}()
		if !handedOff {
			endSpan(span)
		}
	}
}

// authenticate waits up to authTimeout for an auth frame.
func (c *conn) authenticate() (string, auth.Principal, bool) {
	_ = c.ws.SetReadDeadline(time.Now().Add(c.h.authTimeout))
	_, raw, err := c.ws.ReadMessage()
	if err != nil {
		c.close(websocket.ClosePolicyViolation, "authentication timed out: send {\"type\":\"auth\",\"token\":...} within 5 s")
		return "", auth.Principal{}, false
	}
	var f wsClientFrame
	if err := decodeJSON(raw, &f); err != nil || f.Type != "auth" || f.Token == "" {
		c.sendError(f.ID, NewError(http.StatusUnauthorized, "the first frame must be {\"type\":\"auth\",\"token\":\"...\"}"))
		c.close(websocket.ClosePolicyViolation, "authentication required")
		return "", auth.Principal{}, false
	}
	p, err := c.h.check(c.ctx, f.Token)
	if err != nil {
		c.sendError(f.ID, err)
		c.close(websocket.ClosePolicyViolation, "authentication failed")
		return "", auth.Principal{}, false
	}
	return f.Token, p, true
}

// credentials returns the token and principal the connection holds.
func (c *conn) credentials() (string, auth.Principal) {
	c.credMu.Lock()
	defer c.credMu.Unlock()
	return c.token, c.held
}

// recheck checks the held token now, as a REST request would be checked,
// and returns the principal with the user's current roles. Verdicts that end
// the connection are *closeError; any other error is a backend failure
// (revocation store, user store), which decides nothing.
func (c *conn) recheck() (auth.Principal, error) {
	token, held := c.credentials()
	if expired(held, time.Now()) {
		return auth.Principal{}, errWSTokenExpired
	}
	p, err := auth.Current(c.ctx, c.h.auth, c.h.users, token)
	switch {
	case errors.Is(err, auth.ErrInvalidToken):
		return auth.Principal{}, errWSSessionRevoked
	case errors.Is(err, auth.ErrAccountDisabled):
		return auth.Principal{}, errWSAccountDisabled
	case err != nil:
		return auth.Principal{}, fmt.Errorf("websocket: checking the session: %w", err)
	case p.UserID != held.UserID:
		return auth.Principal{}, errWSOtherUser
	}
	return p, nil
}

// authorize is the check before a message or subscribe frame runs:
// credentials (closing the connection when they ended) and perm among the
// user's current roles. A backend failure refuses the frame with 503 and
// keeps the connection: nothing runs on an unchecked session.
func (c *conn) authorize(id string, perm auth.Permission) (auth.Principal, bool) {
	p, err := c.recheck()
	var ce *closeError
	switch {
	case errors.As(err, &ce):
		c.sendError(id, NewError(ce.status, ce.reason))
		c.close(ce.code, ce.reason)
		return auth.Principal{}, false
	case err != nil:
		c.sendError(id, &Error{Status: http.StatusServiceUnavailable, Title: http.StatusText(http.StatusServiceUnavailable),
			Detail: "your session could not be checked; retry", Headers: map[string]string{fiber.HeaderRetryAfter: "1"}, Err: err})
		return auth.Principal{}, false
	case !p.Can(perm):
		c.sendError(id, NewError(http.StatusForbidden, "missing permission "+string(perm)))
		return auth.Principal{}, false
	}
	return p, true
}

// allow counts a message frame against the user's chat-turn bucket, the
// one POST /chat/message counts in. A refusal is an error frame with 429 and
// retry_after; a failing limiter lets the frame through, as it lets REST
// requests through.
func (c *conn) allow(id string, p auth.Principal) bool { return c.allowIn(id, p, chatTurnBucket) }

// allowIn counts a frame against the user's bucket of that name.
func (c *conn) allowIn(id string, p auth.Principal, bucket string) bool {
	res, err := c.h.limits.allowUser(c.ctx, bucket, p.UserID)
	if err != nil {
		c.h.log.WarnContext(c.ctx, "rate limiter failed; letting websocket frame through", "bucket", bucket, "error", err)
		return true
	}
	if res.Allowed {
		return true
	}
	retry := strconv.FormatInt(ratelimit.RetryAfterSeconds(res), 10)
	c.sendError(id, &Error{Status: http.StatusTooManyRequests, Title: http.StatusText(http.StatusTooManyRequests),
		Detail: "rate limit exceeded; retry after " + retry + " s", Headers: map[string]string{fiber.HeaderRetryAfter: retry}})
	return false
}

// reauthenticate replaces the connection's token with the one of an auth
// frame: the same user's only. A token that does not verify is refused with
// an error frame and the connection keeps its current one; another user's
// token, or a disabled account, ends the connection.
func (c *conn) reauthenticate(f wsClientFrame) {
	if f.Token == "" {
		c.sendError(f.ID, Validation(FieldError{Field: "token", Message: "must not be empty"}))
		return
	}
	p, err := c.h.check(c.ctx, f.Token)
	if errors.Is(err, auth.ErrAccountDisabled) {
		c.sendError(f.ID, err)
		c.close(errWSAccountDisabled.code, errWSAccountDisabled.reason)
		return
	}
	if err != nil {
		c.sendError(f.ID, err)
		return
	}
	c.credMu.Lock()
	same := p.UserID == c.held.UserID
	if same {
		c.token, c.held = f.Token, p
	}
	c.credMu.Unlock()
	if !same {
		c.h.log.WarnContext(c.ctx, "websocket auth frame for another user; closing", "user_id", p.UserID)
		c.sendError(f.ID, NewError(http.StatusForbidden, errWSOtherUser.reason))
		c.close(errWSOtherUser.code, errWSOtherUser.reason)
		return
	}
	select {
	case c.reauthed <- struct{}{}:
	default:
	}
}

// watch ends the connection without waiting for a frame: at the held
// token's exp, and when a periodic check finds the session revoked.
func (c *conn) watch() {
	expiry := time.NewTimer(time.Hour)
	defer expiry.Stop()
	arm := func() {
		if _, held := c.credentials(); !held.ExpiresAt.IsZero() {
			expiry.Reset(time.Until(held.ExpiresAt))
		} else {
			expiry.Stop()
		}
	}
	arm()
	recheck := time.NewTicker(c.h.recheckInterval)
	defer recheck.Stop()
	for {
		select {
		case <-c.closed:
			return
		case <-c.reauthed:
			arm()
		case <-expiry.C:
			if _, held := c.credentials(); expired(held, time.Now()) {
				c.close(errWSTokenExpired.code, errWSTokenExpired.reason)
				return
			}
			arm()
		case <-recheck.C:
			_, err := c.recheck()
			var ce *closeError
			if errors.As(err, &ce) {
				c.close(ce.code, ce.reason)
				return
			}
			if err != nil {
				c.h.log.DebugContext(c.ctx, "websocket session check failed", "error", err)
			}
		}
	}
}

// isClosed reports whether the connection is closing.
func (c *conn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

func (c *conn) turn(p auth.Principal, f wsClientFrame) (ChatTurn, error) {
	req := sendMessageRequest{Content: f.Content, ConversationID: f.ConversationID, AgentID: f.AgentID}
	fields := req.Validate()
	if len(f.ID) > 128 {
		fields = append(fields, FieldError{Field: "id", Message: "must be at most 128 characters"})
	}
	if len(fields) > 0 {
		return ChatTurn{}, Validation(fields...)
	}
	key, err := idempotencyKey(f.IdempotencyKey)
	if err != nil {
		return ChatTurn{}, err
	}
	return newTurn(p, req.ConversationID, req.AgentID, req.Content, key)
}

// run executes one turn with ctx (the connection's, carrying the principal
// checked for it), streaming its tokens and recording them for a resume.
// The turn goes on when the connection ends, so a client that lost it can
// resume the reply (on any node, with the Redis stream store).
func (c *conn) run(ctx context.Context, id string, turn ChatTurn) {
	ctx = context.WithoutCancel(ctx)
	sid, cur, fresh, err := c.h.streams.open(ctx, turn)
	if err != nil {
		c.sendError(id, err)
		return
	}
	var reply ChatReply
	if cur.Finished {
		// A retry of a turn whose stream completed: the stored answer.
		reply, err = c.h.chat.Send(ctx, turn, nil)
	} else {
		rec := c.h.streams.record(ctx, sid, turn.UserID, cur, fresh, func(e streams.Entry) {
			if !e.Final() {
				c.send(entryFrame(id, sid, e))
			}
		})
		reply, err = c.h.streams.sendRecorded(ctx, c.h.chat, turn, rec)
		rec.finish(reply, err)
		// A failed retry that recorded nothing is reported below all the same.
	}
	if err != nil {
		c.sendError(id, err)
		return
	}
	usage := reply.Usage
	c.send(wsServerFrame{Type: "done", ID: id, StreamID: sid, ConversationID: reply.ConversationID, MessageID: reply.MessageID,
		Response: reply.Response, Usage: &usage})
}

// resumable validates a resume frame; it returns the stream ID.
func (c *conn) resumable(f wsClientFrame) (string, error) {
	var fields []FieldError
	if !isUUID(f.StreamID) {
		fields = append(fields, FieldError{Field: "stream_id", Message: "must be a UUID"})
	}
	if f.After < 0 {
		fields = append(fields, FieldError{Field: "after", Message: "must be >= 0"})
	}
	if len(f.ID) > 128 {
		fields = append(fields, FieldError{Field: "id", Message: "must be at most 128 characters"})
	}
	if len(fields) > 0 {
		return "", Validation(fields...)
	}
	return strings.ToLower(f.StreamID), nil
}

// follow checks that userID may follow stream sid and sends its entries
// after seq after as frames, waiting for the client rather than dropping it:
// a resume may carry a long backlog.
func (c *conn) follow(id, sid, userID string, after int64) {
	until, err := c.h.streams.lookup(c.ctx, sid, userID)
	if err != nil {
		c.sendError(id, err)
		return
	}
	err = c.h.streams.store.Follow(c.ctx, sid, after, until, func(e streams.Entry) error {
		f := entryFrame(id, sid, e)
		switch e.Kind {
		case streams.KindDone:
			var r ChatReply
			if err := json.Unmarshal(e.Data, &r); err != nil {
				return fmt.Errorf("stream %s: done entry: %w", sid, err)
			}
			usage := r.Usage
			f.ConversationID, f.MessageID, f.Response, f.Usage = r.ConversationID, r.MessageID, r.Response, &usage
		case streams.KindError:
			var p problem
			if err := json.Unmarshal(e.Data, &p); err != nil {
				return fmt.Errorf("stream %s: error entry: %w", sid, err)
			}
			f.Status, f.Title, f.Detail = p.Status, p.Title, p.Detail
		}
		select {
		case <-c.closed:
			return errWSGone
		case c.out <- f:
			return nil
		}
	})
	switch {
	case err == nil, errors.Is(err, errWSGone), errors.Is(err, context.Canceled):
	case errors.Is(err, streams.ErrNotFound):
		c.sendError(id, errNoStream())
	default:
		c.sendError(id, err)
	}
}

// errWSGone stops a resume whose connection closed.
var errWSGone = errors.New("websocket closed")

// entryFrame is the frame of a stream entry, without a final entry's
// payload.
func entryFrame(id, sid string, e streams.Entry) wsServerFrame {
	return wsServerFrame{Type: e.Kind, ID: id, StreamID: sid, Seq: e.Seq, Delta: e.Delta, Attempt: e.Attempt}
}

// sendError sends err as an error frame; internal errors are logged and
// reported without detail, as the HTTP error handler does.
func (c *conn) sendError(id string, err error) { c.send(c.errorFrame(id, err)) }

// errorFrame renders err as an error frame.
func (c *conn) errorFrame(id string, err error) wsServerFrame {
	e := asError(err)
	if e.Status >= 500 && e.Err != nil {
		c.h.log.ErrorContext(c.ctx, "websocket frame failed", "status", e.Status, "error", err)
	}
	detail := e.Detail
	if len(e.Fields) > 0 {
		detail = e.Fields[0].Field + ": " + e.Fields[0].Message
	}
	// Retry-After is whole seconds here; an HTTP date is not sent by kowai.
	retry, _ := strconv.ParseInt(e.Headers[fiber.HeaderRetryAfter], 10, 64)
	return wsServerFrame{Type: "error", ID: id, Status: e.Status, Title: e.Title, Detail: detail, RetryAfter: retry}
}

// send queues f; a full queue means the client is not reading, and the
// connection is closed instead of buffering more.
func (c *conn) send(f any) {
	select {
	case <-c.closed:
	case c.out <- f:
	default:
		c.shut(websocket.ClosePolicyViolation, "send queue full: the client is not reading fast enough", false)
	}
}

// close asks the writer to send the frames already queued, then a close
// frame with code, and stop. The first close wins.
func (c *conn) close(code int, reason string) { c.shut(code, reason, true) }

func (c *conn) shut(code int, reason string, flush bool) {
	c.once.Do(func() {
		c.code, c.reason, c.flush = code, reason, flush
		close(c.closed)
	})
}

// writeLoop owns every write to the socket: queued frames, pings, and the
// final close frame.
func (c *conn) writeLoop() {
	ping := time.NewTicker(c.h.pingInterval)
	defer ping.Stop()
	write := func(mt int, data []byte) error {
		_ = c.ws.SetWriteDeadline(time.Now().Add(wsWriteWait))
		return c.ws.WriteMessage(mt, data)
	}
	for {
		select {
		case f := <-c.out:
			data, err := json.Marshal(f)
			if err == nil {
				err = write(websocket.TextMessage, data)
			}
			if err != nil {
				c.close(websocket.CloseInternalServerErr, "write failed")
			}
		case <-ping.C:
			if err := write(websocket.PingMessage, nil); err != nil {
				c.close(websocket.CloseGoingAway, "ping failed")
			}
		case <-c.closed:
			if c.flush {
				for len(c.out) > 0 {
					data, err := json.Marshal(<-c.out)
					if err != nil || write(websocket.TextMessage, data) != nil {
						break
					}
				}
			}
			_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(c.code, c.reason), time.Now().Add(wsWriteWait))
			_ = c.ws.Close()
			return
		}
	}
}

// sendWait queues f, waiting for room while ctx lasts: a run's events are
// paced by the client (a client that stops reading is closed by the write
// deadline) instead of closing the connection when a burst of events fills
// the queue. It reports whether f was queued.
func (c *conn) sendWait(ctx context.Context, f any) bool {
	select {
	case <-c.closed:
		return false
	case <-ctx.Done():
		return false
	case c.out <- f:
		return true
	}
}

// subscribe starts following the run of f: checked as the REST events route
// checks (workflows:run, and the run's owner or workflows:read:any; anyone
// else gets 404), then answered with a subscribed frame followed by the
// run's events as run_event frames until its result. running tracks the
// goroutine so the connection waits for it.
func (c *conn) subscribe(f wsClientFrame, running *sync.WaitGroup) {
	wf := c.h.workflows
	if wf == nil {
		c.sendRunError(f.ID, f.RunID, &Error{Status: http.StatusServiceUnavailable, Title: http.StatusText(http.StatusServiceUnavailable),
			Detail: "this node runs no workflow engine"})
		return
	}
	var fields []FieldError
	if !isUUID(f.RunID) {
		fields = append(fields, FieldError{Field: "run_id", Message: "must be a UUID"})
	}
	if f.LastEventID < 0 {
		fields = append(fields, FieldError{Field: "last_event_id", Message: "must be an event id of the run"})
	}
	if len(f.ID) > 128 {
		fields = append(fields, FieldError{Field: "id", Message: "must be at most 128 characters"})
	}
	if len(fields) > 0 {
		c.sendRunError(f.ID, "", Validation(fields...))
		return
	}
	runID := strings.ToLower(f.RunID)
	p, ok := c.authorize(f.ID, auth.PermWorkflowsRun)
	if !ok {
		return
	}
	if _, err := readableRun(c.ctx, wf.Runs, p, runID); err != nil {
		c.sendRunError(f.ID, runID, err)
		return
	}
	ctx, cancel := context.WithCancel(c.ctx)
	sub := &subscription{cancel: cancel, done: make(chan struct{})}
	c.subMu.Lock()
	_, dup := c.subs[runID]
	full := len(c.subs) >= wsMaxSubscriptions
	if !dup && !full {
		c.subs[runID] = sub
	}
	c.subMu.Unlock()
	switch {
	case dup:
		cancel()
		c.sendRunError(f.ID, runID, NewError(http.StatusConflict, "this connection already follows the run"))
		return
	case full:
		cancel()
		c.sendRunError(f.ID, runID, NewError(http.StatusTooManyRequests, "at most 16 runs may be followed on one connection; unsubscribe first"))
		return
	}
	c.send(wsServerFrame{Type: "subscribed", ID: f.ID, RunID: runID})
	running.Go(func() {
		defer close(sub.done)
		defer func() {
			c.subMu.Lock()
			if c.subs[runID] == sub {
				delete(c.subs, runID)
			}
			c.subMu.Unlock()
			cancel()
		}()
		err := followRun(ctx, wf.Runs, runID, f.LastEventID, wf.EventPoll, func(batch []runEvent) error {
			for _, e := range batch {
				if e.Type == runEventResult {
					// The subscription ends with the result: forget it before the
					// client can see the result, so an unsubscribe it sends next
					// is a 404 rather than a race with this goroutine's exit.
					c.subMu.Lock()
					if c.subs[runID] == sub {
						delete(c.subs, runID)
					}
					c.subMu.Unlock()
				}
				if !c.sendWait(ctx, wsRunEventFrame{Type: "run_event", RunID: runID, ID: e.ID, EventType: e.Type, Event: e.Data}) {
					return context.Canceled
				}
			}
			return nil
		}, nil)
		if errors.Is(err, errEventsUnavailable) {
			c.h.log.WarnContext(c.ctx, "websocket run events unavailable", "run_id", runID, "error", err)
			c.sendRunError(f.ID, runID, &Error{Status: http.StatusServiceUnavailable, Title: http.StatusText(http.StatusServiceUnavailable),
				Detail: "events unavailable; subscribe again with last_event_id", Headers: map[string]string{fiber.HeaderRetryAfter: "1"}})
		}
	})
}

// unsubscribe stops following the run of f and answers with an unsubscribed
// frame, after which no event of the run arrives; a run not followed is 404.
func (c *conn) unsubscribe(f wsClientFrame) {
	runID := strings.ToLower(f.RunID)
	c.subMu.Lock()
	sub, ok := c.subs[runID]
	delete(c.subs, runID)
	c.subMu.Unlock()
	if !ok {
		c.sendRunError(f.ID, f.RunID, NewError(http.StatusNotFound, "this connection does not follow the run"))
		return
	}
	sub.cancel()
	<-sub.done
	c.send(wsServerFrame{Type: "unsubscribed", ID: f.ID, RunID: runID})
}

// sendRunError sends err as an error frame about runID.
func (c *conn) sendRunError(id, runID string, err error) {
	f := c.errorFrame(id, err)
	f.RunID = runID
	c.send(f)
}
