package gateway

import (
	"errors"
	"net/http"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kowai/kowai/gateway/auth"
)

// API is what the /api/v1 routes need. Mount registers them.
type API struct {
	// Authenticator verifies bearer tokens (normally the *auth.Service).
	Authenticator auth.Authenticator
	// Chat runs chat turns on the session grains.
	Chat ChatBackend
}

// Mount registers the /api/v1 routes on s.
func (s *Server) Mount(api API) error {
	if api.Authenticator == nil || api.Chat == nil {
		return errors.New("gateway: API needs an Authenticator and a Chat backend")
	}
	open := prometheus.NewGauge(prometheus.GaugeOpts{Name: "kowai_ws_connections_open", Help: "Open WebSocket connections."})
	if err := s.opts.Registry.Register(open); err != nil {
		return err
	}
	authed := auth.RequireAuth(api.Authenticator)
	s.Route(fiber.MethodPost, "/api/v1/chat/message", Op{Summary: "Send a message and get the agent's reply", Tag: "Chat", Auth: true,
		Request: sendMessageRequest{}, Response: ChatReply{}, Errors: []int{http.StatusForbidden, http.StatusNotFound, http.StatusConflict, http.StatusBadGateway, http.StatusServiceUnavailable}},
		authed, postMessage(api.Chat))

	ws := &wsHandler{chat: api.Chat, auth: api.Authenticator, log: s.log, open: open,
		authTimeout: wsAuthTimeout, pingInterval: wsPingInterval, sendQueue: wsSendQueue}
	s.Route(fiber.MethodGet, "/api/v1/chat/ws", Op{Summary: "Chat over WebSocket with streamed tokens (see the README for frames)", Tag: "Chat",
		Status: http.StatusSwitchingProtocols, Errors: []int{http.StatusUpgradeRequired}},
		ws.upgrade, websocket.New(ws.serve, websocket.Config{HandshakeTimeout: wsWriteWait}))
	return nil
}
