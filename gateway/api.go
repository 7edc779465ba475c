package gateway

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kowai/kowai/agents"
	"github.com/kowai/kowai/budgets"
	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/gateway/ratelimit"
	"github.com/kowai/kowai/gateway/streams"
)

// API is what the /api/v1 routes need. Mount registers them.
//
// Authenticator and Chat are always required. Auth switches on the rest of
// the REST API (auth, history, agents, admin), which then needs Stores,
// AgentTypes, ValidateSignature and ClusterInfo too; without Auth only the
// chat and workflow routes exist, which suits tests of the chat protocol.
type API struct {
	// Authenticator verifies bearer tokens (normally the *auth.Service).
	Authenticator auth.Authenticator
	// Chat runs chat turns on the session grains.
	Chat ChatBackend
	// Conversations renames and deletes conversations; nil means Chat, which
	// must then implement ConversationBackend (ClusterChat does). The REST
	// API needs one.
	Conversations ConversationBackend

	// Auth serves register, login, refresh, logout, me and Appwrite sign-in
	// and revokes sessions after admin changes (normally the *auth.Service).
	Auth AuthService
	// Accounts serves the caller's sessions, password change and account
	// erasure (normally the *auth.Service); required with Auth.
	Accounts AccountService
	// OpenRegistration allows POST /api/v1/auth/register
	// (KOWAI_OPEN_REGISTRATION); when false it answers 403.
	OpenRegistration bool
	// Stores are the repositories read and written directly (NewStores).
	Stores Stores
	// AgentTypes lists the registered agent types.
	AgentTypes func() []agents.Info
	// ValidateSignature reports why signature cannot be the own signature of
	// an agent of agentType: it does not parse, or the type runs its own.
	ValidateSignature func(agentType, signature string) error
	// ValidateAgentConfig, optional, reports why config does not fit the
	// agent type's schema.
	ValidateAgentConfig func(agentType string, config json.RawMessage) error
	// CheckProgram, optional, reports whether compiled program state fits an
	// agent (agents.Registry.CheckProgram): with it variants may carry compiled
	// programs, and with an AgentWriter that is a ProgramWriter too
	// (ClusterAgents) /api/v1/agents/{id}/programs deploys them as canaries.
	CheckProgram func(spec agents.Spec, state json.RawMessage) (string, error)
	// AgentWriter creates, replaces and deletes agents; ClusterAgents sends
	// each change through the agent's grain so it applies at once on every
	// node. Nil writes Stores.Agents directly, for a gateway without agent
	// grains.
	AgentWriter AgentWriter
	// Models, optional, is the node's model catalog: with it agents may name
	// only its models (premium ones with models:premium) and GET
	// /api/v1/models lists them; without it the model field is free text.
	Models ModelCatalog
	// Budgets, optional, serves GET /api/v1/users/me/usage and the admins'
	// budget overrides (/api/v1/admin/users/{id}/budget); the turns themselves
	// are held to it by the agent grains.
	Budgets *budgets.Enforcer
	// ClusterInfo returns the body of GET /api/v1/admin/cluster.
	ClusterInfo func() any

	// Limiter holds the rate-limit counters; nil means in-process. Use the
	// Redis limiter so every node counts together.
	Limiter ratelimit.Limiter
	// RateLimit is the limit per user and per route (KOWAI_RATE_LIMIT), and
	// per client address over every request without accepted credentials
	// (anonymous routes, unknown routes, missing or refused tokens); zero
	// means 120/m.
	RateLimit ratelimit.Limit
	// Workflows, optional, serves /api/v1/workflows; without it those
	// routes answer 503.
	Workflows *Workflows

	// Streams keeps streamed replies for resumption; nil means in-process
	// (streams.NewMemory), which only this node can read. Use the Redis
	// store so a client can resume on any node.
	Streams streams.Store
	// StreamKey signs the stream IDs a node announces before their streams
	// are stored, so that a resume on any node awaits such a stream instead
	// of answering 404 (DeriveStreamKey makes one from the JWT secret).
	// Every node sharing Streams needs the same key; nil means a random
	// one, which only this node recognizes.
	StreamKey []byte

	// AuthRateLimit is the limit per client address on register, login,
	// refresh and Appwrite sign-in, per route (KOWAI_AUTH_RATE_LIMIT); zero
	// means 10/m.
	AuthRateLimit ratelimit.Limit

	// APIKeys, when set, accepts API keys as Bearer tokens wherever their
	// scopes allow and serves /api/v1/auth/api-keys (with Auth).
	APIKeys *auth.APIKeys
	// Completions, when set, serves the OpenAI-compatible /v1 routes
	// (normally the same *ClusterChat as Chat).
	Completions CompletionBackend

	// wsRecheckInterval, when not zero, replaces how often an idle
	// WebSocket's session is checked (tests shorten it).
	wsRecheckInterval time.Duration
	// sseHeartbeat, when not zero, replaces how often a chat event stream
	// sends a ping comment (tests shorten it).
	sseHeartbeat time.Duration
	// streamRetryDelay, when not zero, replaces the first wait before a
	// streamed turn is sent again after a 503 (tests shorten it).
	streamRetryDelay time.Duration
	// sseKeepAlive, when not zero, replaces how often an idle OpenAI stream
	// gets a keep-alive comment (tests shorten it).
	sseKeepAlive time.Duration
}

// conversations is the ConversationBackend of the REST routes, or nil.
func (api API) conversations() ConversationBackend {
	if api.Conversations != nil {
		return api.Conversations
	}
	cb, _ := api.Chat.(ConversationBackend)
	return cb
}

// restReady reports what the REST routes still miss once Auth is set.
func (api API) restReady() error {
	switch {
	case api.Accounts == nil:
		return errors.New("gateway: API.Auth needs API.Accounts (normally the same *auth.Service)")
	case api.conversations() == nil:
		return errors.New("gateway: API.Auth needs API.Conversations, or a Chat that implements ConversationBackend")
	case !api.Stores.complete():
		return errors.New("gateway: API.Auth needs every repository in API.Stores (see NewStores)")
	case api.AgentTypes == nil || api.ValidateSignature == nil:
		return errors.New("gateway: API.Auth needs API.AgentTypes and API.ValidateSignature")
	case api.ClusterInfo == nil:
		return errors.New("gateway: API.Auth needs API.ClusterInfo")
	}
	return nil
}

// Mount registers the /api/v1 routes on s.
func (s *Server) Mount(api API) error {
	if api.Authenticator == nil || api.Chat == nil {
		return errors.New("gateway: API needs an Authenticator and a Chat backend")
	}
	if api.Auth != nil {
		if err := api.restReady(); err != nil {
			return err
		}
	}
	if api.Completions != nil && (api.Auth == nil || api.Stores.Agents == nil) {
		return errors.New("gateway: API.Completions needs the REST API (API.Auth and API.Stores) to resolve models")
	}
	rl, err := newRateLimits(api, s.log)
	if err != nil {
		return err
	}
	open := prometheus.NewGauge(prometheus.GaugeOpts{Name: "kowai_ws_connections_open", Help: "Open WebSocket connections."})
	if err := s.opts.Registry.Register(open); err != nil {
		return err
	}
	s.anonymous = rl.anonymous()
	if api.APIKeys != nil {
		api.Authenticator = auth.WithAPIKeys(api.Authenticator, api.APIKeys)
	}
	authed := auth.RequireAuthWith(api.Authenticator, auth.RequireAuthOptions{Refused: s.authRefused})
	// Account, session and key management need a signed-in session.
	sessionAuthed := auth.RequireAuthWith(sessionsOnly(api.Authenticator), auth.RequireAuthOptions{Refused: s.authRefused})
	cs := &chatStreams{store: api.Streams, ids: newStreamIDs(api.StreamKey), log: s.log, heartbeat: sseHeartbeat,
		retryDelay: defaultStreamRetryDelay}
	if cs.store == nil {
		cs.store = streams.NewMemory(streams.MemoryOptions{})
	}
	if api.sseHeartbeat > 0 {
		cs.heartbeat = api.sseHeartbeat
	}
	if api.streamRetryDelay > 0 {
		cs.retryDelay = api.streamRetryDelay
	}
	s.Route(fiber.MethodPost, "/api/v1/chat/message", Op{Summary: "Send a message and get the agent's reply; with Accept: text/event-stream, as Server-Sent Events (token, restart, done, error; see the README)", Tag: "Chat", Auth: true,
		Request: sendMessageRequest{}, Response: ChatReply{}, StreamContentType: "text/event-stream",
		Errors: []int{http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity, http.StatusBadGateway, http.StatusServiceUnavailable}},
		authed, rl.user(chatTurnBucket), auth.RequirePermission(auth.PermChatWrite), postMessage(api.Chat, cs))
	s.Route(fiber.MethodGet, "/api/v1/chat/streams/:stream_id", Op{Summary: "Join or resume a streamed reply as Server-Sent Events, after Last-Event-ID or ?after=N (owner only)", Tag: "Chat", Auth: true,
		Response: "", ContentType: "text/event-stream", Errors: []int{http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound},
		Query: []Param{{Name: "after", Type: "integer", Description: "resume after this sequence number when no Last-Event-ID header is sent"}}},
		authed, rl.user("chat.streams"), auth.RequirePermission(auth.PermChatRead), cs.resume)

	ws := &wsHandler{tracer: s.tracer, chat: api.Chat, streams: cs, auth: api.Authenticator, limits: rl, log: s.log, open: open,
		authTimeout: wsAuthTimeout, pingInterval: wsPingInterval, recheckInterval: wsRecheckInterval, sendQueue: wsSendQueue,
		workflows: api.Workflows.withDefaults()}
	if api.wsRecheckInterval > 0 {
		ws.recheckInterval = api.wsRecheckInterval
	}
	if api.Auth != nil {
		ws.users = api.Auth
	}
	s.Route(fiber.MethodGet, "/api/v1/chat/ws", Op{Summary: "Chat over WebSocket with streamed tokens, and follow workflow runs", Tag: "Chat", AddrLimited: true,
		Status: http.StatusSwitchingProtocols, Errors: []int{http.StatusUpgradeRequired}},
		rl.user("chat.ws"), ws.upgrade, websocket.New(ws.serve, websocket.Config{HandshakeTimeout: wsWriteWait}))

	if api.Auth != nil {
		// Sessions record their client; password checks throttle by it and
		// the audit log records it. Only the routes that start sessions,
		// check passwords or write audit entries pay for it (the prefix
		// /api/v1/auth/appwrite covers /api/v1/auth/appwrite/link).
		s.app.Use([]string{"/api/v1/auth/register", "/api/v1/auth/login", "/api/v1/auth/refresh", "/api/v1/auth/logout",
			"/api/v1/auth/appwrite", "/api/v1/auth/password", "/api/v1/users/me"}, withClient)
		s.mountAuth(authRoutes{svc: api.Auth, open: api.OpenRegistration}, sessionAuthed, rl)
		s.mountAccount(accountRoutes{svc: api.Accounts, users: api.Stores.Users}, sessionAuthed, rl)
		if api.APIKeys != nil {
			s.mountAPIKeys(apiKeyRoutes{keys: api.APIKeys, audit: api.Stores.Audit}, sessionAuthed, rl)
		}
		writer := api.AgentWriter
		if writer == nil {
			writer = api.Stores.Agents
		}
		programs, _ := writer.(ProgramWriter)
		history := historyRoutes{stores: api.Stores, commands: api.conversations(), log: s.log}
		if programs != nil {
			history.rated = programs.Rated
		}
		s.mountHistory(history, authed, rl)
		agentRoutes := agentRoutes{agents: api.Stores.Agents, writer: writer, types: api.AgentTypes, validateSignature: api.ValidateSignature,
			validateConfig: api.ValidateAgentConfig, audit: api.Stores.Audit, models: api.Models, stats: api.Stores.Stats,
			checkProgram: api.CheckProgram, programs: programs}
		s.mountAgents(agentRoutes, authed, rl)
		s.mountPrograms(agentRoutes, authed, rl)
		if api.Budgets != nil {
			s.mountUsage(usageRoutes{budgets: api.Budgets, users: api.Stores.Users, audit: api.Stores.Audit}, authed, rl)
		}
		if api.Models != nil {
			s.mountModels(modelRoutes{catalog: api.Models}, authed, rl)
		}
		gatherer, _ := s.opts.Registry.(prometheus.Gatherer)
		s.mountAdmin(adminRoutes{users: api.Stores.Users, audit: api.Stores.Audit, auth: api.Auth, cluster: api.ClusterInfo, metrics: gatherer,
			usage: api.Stores.Usage}, authed, rl)
	}
	s.mountWorkflows(api.Workflows, authed, rl)
	if api.Completions != nil {
		keepAlive := sseKeepAlive
		if api.sseKeepAlive > 0 {
			keepAlive = api.sseKeepAlive
		}
		s.mountOpenAI(openAIRoutes{backend: api.Completions, agents: api.Stores.Agents, limits: rl, log: s.log, keepAlive: keepAlive}, authed)
	}
	return nil
}

// authRefused runs when a protected route refuses a request's token: it logs
// the refusal (never the token) and counts it against the client address's
// anonymous bucket, answering 429 instead of 401 once that is spent.
func (s *Server) authRefused(c *fiber.Ctx, reason error) error {
	ctx := c.UserContext()
	if errors.Is(reason, auth.ErrMissingToken) {
		s.log.DebugContext(ctx, "authentication refused", "reason", "missing_token", "route", routeLabel(c), "client_addr", ClientAddr(c))
	} else {
		s.log.InfoContext(ctx, "authentication refused", "reason", "invalid_token", "route", routeLabel(c), "client_addr", ClientAddr(c),
			"error", reason)
	}
	if s.anonymous == nil {
		return nil
	}
	return s.anonymous(c)
}
