package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/internal/logging"
)

// WebSocket limits. A connection whose client reads too slowly for its
// send queue is closed with ClosePolicyViolation rather than buffered
// without bound.
const (
	wsAuthTimeout   = 5 * time.Second
	wsPingInterval  = 25 * time.Second
	wsPongWait      = 60 * time.Second
	wsWriteWait     = 10 * time.Second
	wsSendQueue     = 256
	wsMaxTurns      = 4
	wsMaxFrameBytes = 64 << 10
)

// Locals under which the pre-upgrade handler hands data to the connection;
// the WebSocket library copies only string-keyed locals.
const (
	wsLocalPrincipal = "kowai.ws.principal"
	wsLocalRequestID = "kowai.ws.request_id"
)

// wsClientFrame is any frame a client sends.
//
// The frame tags feed the AsyncAPI document (asyncapi.go): each names the
// frame types a field belongs to, "!" marking it required there. Every
// field needs one, and the type field lists every frame type.
type wsClientFrame struct {
	Type           string `json:"type" frame:"auth!,message!"`
	Token          string `json:"token,omitempty" frame:"auth!" doc:"an access token or API key"`
	ID             string `json:"id,omitempty" frame:"auth,message" doc:"chosen by the client (at most 128 characters); replies to this frame carry it"`
	Content        string `json:"content,omitempty" frame:"message!" doc:"the user's message"`
	ConversationID string `json:"conversation_id,omitempty" frame:"message" doc:"the conversation to continue; omit it to start one"`
	AgentID        string `json:"agent_id,omitempty" frame:"message" doc:"the agent that answers; omit it for the default"`
	IdempotencyKey string `json:"idempotency_key,omitempty" frame:"message" doc:"makes a retried turn return the stored reply instead of running again"`
}

// wsServerFrame is any frame the server sends: token, done or error. Its
// frame tags work as wsClientFrame's.
type wsServerFrame struct {
	Type           string `json:"type" frame:"token!,done!,error!"`
	ID             string `json:"id,omitempty" frame:"token,done,error" doc:"the id of the client frame this answers, when it had one"`
	Delta          string `json:"delta,omitempty" frame:"token!" doc:"the next piece of the reply"`
	ConversationID string `json:"conversation_id,omitempty" frame:"done!"`
	MessageID      string `json:"message_id,omitempty" frame:"done!" doc:"the stored assistant message"`
	Response       string `json:"response,omitempty" frame:"done!" doc:"the whole reply"`
	Usage          *Usage `json:"usage,omitempty" frame:"done!"`
	Status         int    `json:"status,omitempty" frame:"error!" doc:"the HTTP status the same failure gets over REST"`
	Title          string `json:"title,omitempty" frame:"error!"`
	Detail         string `json:"detail,omitempty" frame:"error" doc:"what went wrong; for a refused field, the field and why"`
}

type wsHandler struct {
	chat ChatBackend
	auth auth.Authenticator
	log  *slog.Logger
	open prometheus.Gauge
	// authTimeout and pingInterval are fields so tests can shorten them.
	authTimeout  time.Duration
	pingInterval time.Duration
	sendQueue    int
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
		p, err := h.auth.Authenticate(c.UserContext(), token)
		if errors.Is(err, auth.ErrInvalidToken) {
			return NewError(http.StatusUnauthorized, "invalid or expired token")
		}
		if err != nil {
			return err
		}
		c.Locals(wsLocalPrincipal, p)
	}
	c.Locals(wsLocalRequestID, logging.CorrelationID(c.UserContext()))
	return c.Next()
}

// conn is one WebSocket connection's state. Only the writer goroutine writes
// to the socket.
type conn struct {
	h      *wsHandler
	ws     *websocket.Conn
	ctx    context.Context
	out    chan wsServerFrame
	closed chan struct{}
	once   sync.Once
	code   int
	reason string
	// flush sends the frames queued before the close; an overflow close
	// drops them, since the client is not reading.
	flush bool
}

// serve is the connection's life: authenticate, then read frames until the
// client leaves, running up to wsMaxTurns turns at once.
func (h *wsHandler) serve(ws *websocket.Conn) {
	h.open.Inc()
	defer h.open.Dec()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if id, _ := ws.Locals(wsLocalRequestID).(string); id != "" {
		ctx = logging.WithCorrelationID(ctx, id)
	}
	c := &conn{h: h, ws: ws, ctx: ctx, out: make(chan wsServerFrame, h.sendQueue), closed: make(chan struct{})}
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
	if !ok {
		if p, ok = c.authenticate(); !ok {
			return
		}
	}
	ctx = auth.WithPrincipal(ctx, p)
	c.ctx = ctx
	_ = ws.SetReadDeadline(time.Now().Add(wsPongWait))
	ws.SetPongHandler(func(string) error { return ws.SetReadDeadline(time.Now().Add(wsPongWait)) })

	turns := make(chan struct{}, wsMaxTurns)
	var running sync.WaitGroup
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
		_ = ws.SetReadDeadline(time.Now().Add(wsPongWait))
		var f wsClientFrame
		if err := decodeJSON(raw, &f); err != nil {
			c.sendError("", err)
			continue
		}
		switch f.Type {
		case "message":
			turn, err := c.turn(p, f)
			if err != nil {
				c.sendError(f.ID, err)
				continue
			}
			select {
			case turns <- struct{}{}:
			default:
				c.sendError(f.ID, NewError(http.StatusTooManyRequests, "at most 4 turns may run at once on one connection"))
				continue
			}
			running.Go(func() {
				defer func() { <-turns }()
				c.run(f.ID, turn)
			})
		case "auth":
			c.sendError(f.ID, NewError(http.StatusBadRequest, "already authenticated"))
		default:
			c.sendError(f.ID, Validation(FieldError{Field: "type", Message: "must be message or auth"}))
		}
	}
}

// authenticate waits up to authTimeout for an auth frame.
func (c *conn) authenticate() (auth.Principal, bool) {
	_ = c.ws.SetReadDeadline(time.Now().Add(c.h.authTimeout))
	_, raw, err := c.ws.ReadMessage()
	if err != nil {
		c.close(websocket.ClosePolicyViolation, "authentication timed out: send {\"type\":\"auth\",\"token\":...} within 5 s")
		return auth.Principal{}, false
	}
	var f wsClientFrame
	if err := decodeJSON(raw, &f); err != nil || f.Type != "auth" || f.Token == "" {
		c.sendError(f.ID, NewError(http.StatusUnauthorized, "the first frame must be {\"type\":\"auth\",\"token\":\"...\"}"))
		c.close(websocket.ClosePolicyViolation, "authentication required")
		return auth.Principal{}, false
	}
	p, err := c.h.auth.Authenticate(c.ctx, f.Token)
	if err != nil {
		if errors.Is(err, auth.ErrInvalidToken) {
			err = NewError(http.StatusUnauthorized, "invalid or expired token")
		}
		c.sendError(f.ID, err)
		c.close(websocket.ClosePolicyViolation, "authentication failed")
		return auth.Principal{}, false
	}
	return p, true
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
	return newTurn(p.UserID, req.ConversationID, req.AgentID, req.Content, key)
}

// run executes one turn, streaming its tokens.
func (c *conn) run(id string, turn ChatTurn) {
	reply, err := c.h.chat.Send(c.ctx, turn, func(delta string) {
		c.send(wsServerFrame{Type: "token", ID: id, Delta: delta})
	})
	if err != nil {
		c.sendError(id, err)
		return
	}
	usage := reply.Usage
	c.send(wsServerFrame{Type: "done", ID: id, ConversationID: reply.ConversationID, MessageID: reply.MessageID,
		Response: reply.Response, Usage: &usage})
}

// sendError sends err as an error frame; internal errors are logged and
// reported without detail, as the HTTP error handler does.
func (c *conn) sendError(id string, err error) {
	var e *Error
	var fe *fiber.Error
	switch {
	case errors.As(err, &e):
	case errors.As(err, &fe):
		e = NewError(fe.Code, fe.Message)
	default:
		c.h.log.ErrorContext(c.ctx, "websocket turn failed", "error", err)
		e = NewError(http.StatusInternalServerError, "an internal error occurred; quote the correlation_id when reporting it")
	}
	detail := e.Detail
	if len(e.Fields) > 0 {
		detail = e.Fields[0].Field + ": " + e.Fields[0].Message
	}
	c.send(wsServerFrame{Type: "error", ID: id, Status: e.Status, Title: e.Title, Detail: detail})
}

// send queues f; a full queue means the client is not reading, and the
// connection is closed instead of buffering more.
func (c *conn) send(f wsServerFrame) {
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
