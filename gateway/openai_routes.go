package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/gateway/ratelimit"
	"github.com/kowai/kowai/internal/logging"
	"github.com/kowai/kowai/persistence"
)

// The OpenAI-compatible endpoint speaks OpenAI's Chat Completions wire
// format (https://platform.openai.com/docs/api-reference/chat) closely
// enough for the official SDKs and langchaingo: a "model" is an agent, the
// request's messages are the whole history unless the call is bound to a
// kowai conversation, and every parameter is either honoured or refused
// with a 400 (never silently ignored). Errors use OpenAI's
// {"error":{"message","type","param","code"}} shape.

// ConversationHeader binds a completion to a kowai conversation.
const ConversationHeader = "X-Kowai-Conversation-Id"

// maxCompletionMessages bounds the messages of one request.
const maxCompletionMessages = 256

// maxAgentScan bounds how many visible agents a model name is looked up in.
const maxAgentScan = 1000

// openAIError is OpenAI's error object.
type openAIError struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// openAIErrorBody is the body of an error answer.
type openAIErrorBody struct {
	Error openAIError `json:"error"`
}

// oaiError is an error answered in OpenAI's shape.
type oaiError struct {
	status      int
	typ, code   string
	param, text string
	headers     map[string]string
}

func (e *oaiError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.code, e.text) }

func (e *oaiError) body() openAIErrorBody {
	b := openAIErrorBody{Error: openAIError{Message: e.text, Type: e.typ}}
	if e.param != "" {
		b.Error.Param = &e.param
	}
	if e.code != "" {
		b.Error.Code = &e.code
	}
	return b
}

// invalidParam is a 400 invalid_request_error naming param.
func invalidParam(param, format string, args ...any) *oaiError {
	return &oaiError{status: http.StatusBadRequest, typ: "invalid_request_error", code: "invalid_request_error",
		param: param, text: fmt.Sprintf(format, args...)}
}

// unsupportedParam refuses a parameter kowai does not honour.
func unsupportedParam(param, why string) *oaiError {
	e := invalidParam(param, "%s is not supported by kowai: %s", param, why)
	e.code = "unsupported_parameter"
	return e
}

// toOpenAIError maps any error of the route (authentication, rate limits,
// the gateway's problems, grain failures) to OpenAI's shape.
func toOpenAIError(err error) *oaiError {
	var oe *oaiError
	if errors.As(err, &oe) {
		return oe
	}
	status, text, headers := http.StatusInternalServerError, "the server had an error while processing your request", map[string]string(nil)
	var fe *fiber.Error
	var ge *Error
	switch {
	case errors.As(err, &ge):
		status, headers = ge.Status, ge.Headers
		if ge.Status < 500 || ge.Status == http.StatusServiceUnavailable || ge.Status == http.StatusGatewayTimeout || ge.Status == http.StatusBadGateway {
			text = ge.Detail
			if text == "" {
				text = http.StatusText(ge.Status)
			}
			for _, f := range ge.Fields {
				text += "; " + f.Field + " " + f.Message
			}
		}
	case errors.As(err, &fe):
		status = fe.Code
		if status < 500 {
			text = fe.Message
		}
	}
	e := &oaiError{status: status, text: text, headers: headers}
	switch {
	case status == http.StatusUnauthorized:
		e.typ, e.code, e.text = "invalid_request_error", "invalid_api_key", "invalid or expired API key or access token"
	case status == http.StatusForbidden:
		e.typ, e.code = "invalid_request_error", "insufficient_permissions"
	case status == http.StatusNotFound:
		e.typ, e.code = "invalid_request_error", "not_found"
	case status == http.StatusTooManyRequests:
		e.typ, e.code = "requests", "rate_limit_exceeded"
	case status == http.StatusPaymentRequired:
		e.typ, e.code = "insufficient_quota", "insufficient_quota"
	case status < 500:
		e.typ, e.code = "invalid_request_error", "invalid_request_error"
	default:
		e.typ, e.code = "server_error", "server_error"
	}
	return e
}

// openAIRoutes serves /v1.
type openAIRoutes struct {
	backend CompletionBackend
	agents  persistence.Agents
	limits  rateLimits
	log     *slog.Logger
	// keepAlive is how often a stream gets an SSE comment line, which
	// OpenAI clients skip: proxies keep a stream waiting for the model open,
	// and a client that left is noticed (sseKeepAlive by default).
	keepAlive time.Duration
}

// openAIErrors answers every error of the handlers after it in OpenAI's
// shape, which is what OpenAI clients parse.
func (o openAIRoutes) openAIErrors(c *fiber.Ctx) error {
	err := c.Next()
	if err == nil {
		return nil
	}
	e := toOpenAIError(err)
	if e.status >= 500 {
		o.log.ErrorContext(c.UserContext(), "openai request failed", "path", c.Path(), "error", err)
	}
	for k, v := range e.headers {
		c.Set(k, v)
	}
	if e.status == http.StatusUnauthorized {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="kowai", error="invalid_token"`)
	}
	return c.Status(e.status).JSON(e.body())
}

// openAIModel is one entry of GET /v1/models.
type openAIModel struct {
	ID      string `json:"id" doc:"the name to pass as model: the agent's name, or its ID when the name is ambiguous"`
	Object  string `json:"object" doc:"always model"`
	Created int64  `json:"created" doc:"Unix seconds"`
	OwnedBy string `json:"owned_by" doc:"kowai for built-in agents, you for your own"`
}

// openAIModelList is the body of GET /v1/models.
type openAIModelList struct {
	Object string        `json:"object" doc:"always list"`
	Data   []openAIModel `json:"data"`
}

// visibleAgents returns the agents p may use (own and built-in), at most
// maxAgentScan.
func (o openAIRoutes) visibleAgents(ctx context.Context, userID string) ([]persistence.Agent, error) {
	var out []persistence.Agent
	req := persistence.PageRequest{Limit: 200}
	for len(out) < maxAgentScan {
		page, err := o.agents.ListVisible(ctx, userID, req)
		if err != nil {
			return nil, fmt.Errorf("listing agents: %w", err)
		}
		out = append(out, page.Items...)
		if page.NextCursor == "" {
			break
		}
		req.Cursor = page.NextCursor
	}
	return out, nil
}

// modelID is the name an agent is listed under: its name, unless another
// visible agent has the same name, then its ID.
func modelID(a persistence.Agent, all []persistence.Agent) string {
	for _, b := range all {
		if b.ID != a.ID && b.Name == a.Name {
			return a.ID
		}
	}
	return a.Name
}

func (o openAIRoutes) models(c *fiber.Ctx) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	agents, err := o.visibleAgents(c.UserContext(), p.UserID)
	if err != nil {
		return err
	}
	list := openAIModelList{Object: "list", Data: make([]openAIModel, 0, len(agents))}
	for _, a := range agents {
		owner := "kowai"
		if a.OwnerID != "" {
			owner = "you"
		}
		list.Data = append(list.Data, openAIModel{ID: modelID(a, agents), Object: "model", Created: a.CreatedAt.Unix(), OwnedBy: owner})
	}
	return c.JSON(list)
}

// resolveModel finds the agent named model: by ID, else the caller's own
// agent of that name, else the built-in of that name.
func (o openAIRoutes) resolveModel(ctx context.Context, userID, model string) (persistence.Agent, error) {
	notFound := &oaiError{status: http.StatusNotFound, typ: "invalid_request_error", code: "model_not_found", param: "model",
		text: fmt.Sprintf("the model %q does not exist or you do not have access to it; GET /v1/models lists yours", model)}
	if isUUID(model) {
		a, err := o.agents.Get(ctx, strings.ToLower(model))
		switch {
		case errors.Is(err, persistence.ErrNotFound):
			return persistence.Agent{}, notFound
		case err != nil:
			return persistence.Agent{}, fmt.Errorf("loading agent %s: %w", model, err)
		case a.OwnerID != "" && a.OwnerID != userID:
			return persistence.Agent{}, notFound
		}
		return a, nil
	}
	agents, err := o.visibleAgents(ctx, userID)
	if err != nil {
		return persistence.Agent{}, err
	}
	var own, builtin []persistence.Agent
	for _, a := range agents {
		if a.Name != model {
			continue
		}
		if a.OwnerID == "" {
			builtin = append(builtin, a)
		} else {
			own = append(own, a)
		}
	}
	switch {
	case len(own) == 1:
		return own[0], nil
	case len(own) > 1:
		return persistence.Agent{}, invalidParam("model", "several of your agents are named %q; pass the agent's ID as model", model)
	case len(builtin) >= 1:
		return builtin[0], nil
	}
	return persistence.Agent{}, notFound
}

// chatMessage is one message of a completion request. content is a string
// or a list of text parts.
type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
	Name    string          `json:"name,omitempty"`
}

// completionRequest is the body of POST /v1/chat/completions: the
// parameters kowai knows. Every other top-level key is refused.
type completionRequest struct {
	Model               string            `json:"model" doc:"an agent: one of yours by name or ID, or a built-in (chat, advanced-chat, analysis, react)"`
	Messages            []chatMessage     `json:"messages" doc:"the conversation so far, ending with a user message; system messages are refused (an agent has its own instructions)"`
	Stream              bool              `json:"stream,omitempty"`
	StreamOptions       *streamOptions    `json:"stream_options,omitempty"`
	Temperature         *float64          `json:"temperature,omitempty" doc:"0 to 2; 0 leaves the model's default"`
	MaxTokens           *int              `json:"max_tokens,omitempty"`
	MaxCompletionTokens *int              `json:"max_completion_tokens,omitempty"`
	Stop                json.RawMessage   `json:"stop,omitempty" doc:"a string or up to 4 strings"`
	Seed                *int64            `json:"seed,omitempty"`
	User                string            `json:"user,omitempty" doc:"your end user's ID, recorded in the gateway's log"`
	N                   *int              `json:"n,omitempty" doc:"only 1"`
	Metadata            map[string]string `json:"metadata,omitempty" doc:"only conversation_id, binding the call to a kowai conversation"`
}

// streamOptions is stream_options.
type streamOptions struct {
	IncludeUsage bool `json:"include_usage,omitempty"`
}

// refusedParams are OpenAI parameters kowai does not honour, each with the
// value that means "off" (accepted) and why it is refused otherwise.
var refusedParams = map[string]struct {
	off func(json.RawMessage) bool
	why string
}{
	"tools":               {isEmptyList, "client-side tools are not supported; use an agent with tools (type react)"},
	"functions":           {isEmptyList, "client-side functions are not supported; use an agent with tools (type react)"},
	"tool_choice":         {isOneOf(`"none"`), "client-side tools are not supported"},
	"function_call":       {isOneOf(`"none"`), "client-side functions are not supported"},
	"parallel_tool_calls": {isOneOf("true", "false"), "client-side tools are not supported"},
	"logprobs":            {isOneOf("false"), "log probabilities are not available"},
	"top_logprobs":        {isOneOf("0"), "log probabilities are not available"},
	"logit_bias":          {isEmptyObject, "logit bias is not available"},
	"top_p":               {isOneOf("1", "1.0"), "nucleus sampling is not configurable; use temperature"},
	"frequency_penalty":   {isOneOf("0", "0.0"), "penalties are not configurable"},
	"presence_penalty":    {isOneOf("0", "0.0"), "penalties are not configurable"},
	"response_format":     {isTextFormat, "only the text response format is supported; use an agent with a signature for structured output"},
	"audio":               {isNull, "audio output is not supported"},
	"modalities":          {isOneOf(`["text"]`), "only text output is supported"},
	"prediction":          {isNull, "predicted outputs are not supported"},
	"store":               {isOneOf("false"), "stored completions are not supported; bind the call to a kowai conversation instead (X-Kowai-Conversation-Id)"},
	"service_tier":        {isOneOf(`"auto"`, `"default"`), "service tiers are not supported"},
	"reasoning_effort":    {isNull, "reasoning effort is not configurable"},
	"web_search_options":  {isNull, "web search is not supported"},
}

func isNull(v json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(v), []byte("null")) }

func isOneOf(vals ...string) func(json.RawMessage) bool {
	return func(v json.RawMessage) bool {
		compact := new(bytes.Buffer)
		if json.Compact(compact, v) != nil {
			return false
		}
		return isNull(v) || slices.Contains(vals, compact.String())
	}
}

func isEmptyList(v json.RawMessage) bool {
	var l []json.RawMessage
	return isNull(v) || json.Unmarshal(v, &l) == nil && len(l) == 0
}

func isEmptyObject(v json.RawMessage) bool {
	var m map[string]json.RawMessage
	return isNull(v) || json.Unmarshal(v, &m) == nil && len(m) == 0
}

func isTextFormat(v json.RawMessage) bool {
	var f struct {
		Type string `json:"type"`
	}
	return isNull(v) || json.Unmarshal(v, &f) == nil && f.Type == "text"
}

// knownParams are the keys completionRequest decodes.
var knownParams = []string{"model", "messages", "stream", "stream_options", "temperature", "max_tokens",
	"max_completion_tokens", "stop", "seed", "user", "n", "metadata"}

// decodeCompletion parses and checks the body. Unknown parameters and
// parameters kowai does not honour are refused, never ignored.
func decodeCompletion(body []byte) (completionRequest, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil || raw == nil {
		return completionRequest{}, invalidParam("", "the body must be a JSON object: %v", err)
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if slices.Contains(knownParams, k) {
			continue
		}
		r, ok := refusedParams[k]
		if !ok {
			return completionRequest{}, invalidParam(k, "unknown parameter %s", k)
		}
		if !r.off(raw[k]) {
			return completionRequest{}, unsupportedParam(k, r.why)
		}
	}
	var req completionRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		return completionRequest{}, invalidParam("", "the body does not fit the chat completion request: %v", err)
	}
	return req, nil
}

// completionTurn is a checked request, ready to run.
type completionTurn struct {
	req      completionRequest
	history  []*actorpb.HistoryEntry
	content  string
	options  *actorpb.ModelOptions
	convID   string
	idemKey  string
	usageEnd bool
}

// textOf returns a message's text: a string, or the concatenation of a list
// of text parts; other parts are refused.
func textOf(i int, m chatMessage) (string, error) {
	param := fmt.Sprintf("messages[%d].content", i)
	var s string
	if err := json.Unmarshal(m.Content, &s); err == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(m.Content, &parts); err != nil {
		return "", invalidParam(param, "must be a string or a list of text parts")
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type != "text" {
			return "", unsupportedParam(param, "only text content parts are supported, not "+p.Type)
		}
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

// check validates the request and builds the turn.
func (req completionRequest) check(convHeader, idemHeader string) (completionTurn, error) {
	t := completionTurn{req: req}
	if strings.TrimSpace(req.Model) == "" {
		return t, invalidParam("model", "model is required: an agent's name or ID (GET /v1/models)")
	}
	if len(req.Messages) == 0 {
		return t, invalidParam("messages", "messages must hold at least one user message")
	}
	if len(req.Messages) > maxCompletionMessages {
		return t, invalidParam("messages", "messages may hold at most %d messages", maxCompletionMessages)
	}
	for i, m := range req.Messages {
		text, err := textOf(i, m)
		if err != nil {
			return t, err
		}
		last := i == len(req.Messages)-1
		switch {
		case m.Role == "system" || m.Role == "developer":
			return t, unsupportedParam(fmt.Sprintf("messages[%d].role", i), m.Role+" messages are not supported: an agent has its own instructions (set them with PUT /api/v1/agents/{id})")
		case m.Role == "tool" || m.Role == "function":
			return t, unsupportedParam(fmt.Sprintf("messages[%d].role", i), "client-side tools are not supported")
		case m.Role != "user" && m.Role != "assistant":
			return t, invalidParam(fmt.Sprintf("messages[%d].role", i), "role must be user or assistant")
		case last && m.Role != "user":
			return t, invalidParam(fmt.Sprintf("messages[%d].role", i), "the last message must be the user's")
		}
		if last {
			if f := checkContent(fmt.Sprintf("messages[%d].content", i), text); f != nil {
				return t, invalidParam(f[0].Field, "%s %s", f[0].Field, f[0].Message)
			}
			t.content = text
		} else {
			if len(text) > MaxMessageBytes {
				return t, invalidParam(fmt.Sprintf("messages[%d].content", i), "must be at most %d bytes", MaxMessageBytes)
			}
			t.history = append(t.history, &actorpb.HistoryEntry{Role: m.Role, Content: text})
		}
	}
	if req.N != nil && *req.N != 1 {
		return t, unsupportedParam("n", "only one choice per request (n = 1)")
	}
	if req.StreamOptions != nil {
		if !req.Stream {
			return t, invalidParam("stream_options", "stream_options is only allowed with stream: true")
		}
		t.usageEnd = req.StreamOptions.IncludeUsage
	}
	opts := &actorpb.ModelOptions{}
	set := false
	if req.Temperature != nil {
		if v := *req.Temperature; v < 0 || v > 2 || math.IsNaN(v) {
			return t, invalidParam("temperature", "temperature must be between 0 and 2")
		}
		opts.Temperature, set = req.Temperature, true
	}
	for _, mt := range []struct {
		name string
		v    *int
	}{{"max_tokens", req.MaxTokens}, {"max_completion_tokens", req.MaxCompletionTokens}} {
		if mt.v == nil {
			continue
		}
		if *mt.v < 1 || *mt.v > 1<<20 {
			return t, invalidParam(mt.name, "%s must be between 1 and 1048576", mt.name)
		}
		opts.MaxTokens, set = int32(*mt.v), true
	}
	if len(req.Stop) > 0 && !isNull(req.Stop) {
		var one string
		var many []string
		switch {
		case json.Unmarshal(req.Stop, &one) == nil:
			many = []string{one}
		case json.Unmarshal(req.Stop, &many) == nil:
		default:
			return t, invalidParam("stop", "stop must be a string or a list of strings")
		}
		if len(many) > 4 || slices.Contains(many, "") {
			return t, invalidParam("stop", "stop takes 1 to 4 non-empty strings")
		}
		opts.Stop, set = many, true
	}
	if req.Seed != nil {
		opts.Seed, set = req.Seed, true
	}
	if set {
		t.options = opts
	}
	if len(req.User) > 256 {
		return t, invalidParam("user", "user must be at most 256 characters")
	}
	for k := range req.Metadata {
		if k != "conversation_id" {
			return t, unsupportedParam("metadata."+k, "metadata only takes conversation_id")
		}
	}
	conv := convHeader
	if m := req.Metadata["conversation_id"]; m != "" {
		if conv != "" && !strings.EqualFold(conv, m) {
			return t, invalidParam("metadata.conversation_id", "the %s header and metadata.conversation_id name different conversations", ConversationHeader)
		}
		conv = m
	}
	if conv != "" && !isUUID(conv) {
		return t, invalidParam("metadata.conversation_id", "a kowai conversation ID must be a UUID")
	}
	t.convID = conv
	key, err := idempotencyKey(idemHeader)
	if err != nil {
		return t, invalidParam("Idempotency-Key", "Idempotency-Key must be 1-128 characters of A-Z a-z 0-9 . _ : -")
	}
	if key != "" && conv == "" {
		return t, invalidParam("Idempotency-Key", "Idempotency-Key needs a kowai conversation (%s): stateless calls store nothing to replay", ConversationHeader)
	}
	t.idemKey = key
	return t, nil
}

// completionUsage is OpenAI's usage object.
type completionUsage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

func usageOf(u Usage) *completionUsage {
	return &completionUsage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens, TotalTokens: u.PromptTokens + u.CompletionTokens}
}

// assistantMessage is a choice's message.
type assistantMessage struct {
	Role    string  `json:"role"`
	Content string  `json:"content"`
	Refusal *string `json:"refusal"`
}

// completionChoice is one choice of a non-streamed answer.
type completionChoice struct {
	Index        int              `json:"index"`
	Message      assistantMessage `json:"message"`
	Logprobs     *struct{}        `json:"logprobs"`
	FinishReason string           `json:"finish_reason"`
}

// chatCompletion is the body of a non-streamed answer.
type chatCompletion struct {
	ID                string             `json:"id"`
	Object            string             `json:"object" doc:"always chat.completion"`
	Created           int64              `json:"created"`
	Model             string             `json:"model" doc:"the model as requested"`
	Choices           []completionChoice `json:"choices"`
	Usage             *completionUsage   `json:"usage"`
	SystemFingerprint *string            `json:"system_fingerprint"`
	// ConversationID is kowai's: the conversation of a bound call.
	ConversationID string `json:"kowai_conversation_id,omitempty"`
}

// chunkDelta is a streamed choice's delta.
type chunkDelta struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

// chunkChoice is one choice of a chunk.
type chunkChoice struct {
	Index        int        `json:"index"`
	Delta        chunkDelta `json:"delta"`
	Logprobs     *struct{}  `json:"logprobs"`
	FinishReason *string    `json:"finish_reason"`
}

// chatCompletionChunk is one SSE data frame of a streamed answer.
type chatCompletionChunk struct {
	ID                string           `json:"id"`
	Object            string           `json:"object"`
	Created           int64            `json:"created"`
	Model             string           `json:"model"`
	SystemFingerprint *string          `json:"system_fingerprint"`
	Choices           []chunkChoice    `json:"choices"`
	Usage             *completionUsage `json:"usage,omitempty"`
}

// finishReason maps a model's stop reason to OpenAI's finish_reason.
func finishReason(stop string) string {
	switch strings.ToLower(stop) {
	case "length", "max_tokens", "max_output_tokens":
		return "length"
	case "content_filter", "safety":
		return "content_filter"
	}
	return "stop"
}

// reply is the answer of a turn, whichever path ran it.
type completionReply struct {
	text, stop, convID string
	usage              Usage
}

// run runs the turn: in its conversation when bound, else stateless.
func (o openAIRoutes) run(ctx context.Context, p auth.Principal, agent persistence.Agent, t completionTurn, onDelta func(string)) (completionReply, error) {
	if t.convID != "" {
		turn, err := newTurn(p, t.convID, agent.ID, t.content, t.idemKey)
		if err != nil {
			return completionReply{}, err
		}
		turn.Options = t.options
		r, err := o.backend.Send(ctx, turn, onDelta)
		if err != nil {
			return completionReply{}, err
		}
		return completionReply{text: r.Response, stop: r.StopReason, convID: r.ConversationID, usage: r.Usage}, nil
	}
	r, err := o.backend.Complete(ctx, Completion{UserID: p.UserID, AgentID: agent.ID, History: t.history, Content: t.content, Options: t.options}, onDelta)
	if err != nil {
		return completionReply{}, err
	}
	return completionReply{text: r.Response, stop: r.StopReason, usage: r.Usage}, nil
}

func (o openAIRoutes) completions(c *fiber.Ctx) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	if ct := strings.ToLower(strings.TrimSpace(strings.Split(c.Get(fiber.HeaderContentType), ";")[0])); ct != fiber.MIMEApplicationJSON {
		return &oaiError{status: http.StatusUnsupportedMediaType, typ: "invalid_request_error", code: "invalid_request_error",
			text: "the body must be application/json"}
	}
	req, err := decodeCompletion(c.Body())
	if err != nil {
		return err
	}
	t, err := req.check(c.Get(ConversationHeader), c.Get("Idempotency-Key"))
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	agent, err := o.resolveModel(ctx, p.UserID, req.Model)
	if err != nil {
		return err
	}
	// The same bucket as POST /api/v1/chat/message and WebSocket messages:
	// every channel draws from one per-caller chat limit.
	if err := o.allowTurn(c, p); err != nil {
		return err
	}
	if req.User != "" {
		o.log.InfoContext(ctx, "openai completion", "user_id", p.UserID, "end_user", req.User, "agent_id", agent.ID)
	}
	id := "chatcmpl-" + strings.ReplaceAll(uuid.NewString(), "-", "")
	created := time.Now().Unix()
	if !req.Stream {
		r, err := o.run(ctx, p, agent, t, nil)
		if err != nil {
			return err
		}
		return c.JSON(chatCompletion{ID: id, Object: "chat.completion", Created: created, Model: req.Model,
			Choices: []completionChoice{{Message: assistantMessage{Role: "assistant", Content: r.text}, FinishReason: finishReason(r.stop)}},
			Usage:   usageOf(r.usage), ConversationID: r.convID})
	}
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set("X-Accel-Buffering", "no")
	// The request's context ends when the handler returns; the stream
	// outlives it, so it gets its own, ended when the client goes away.
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	log := o.log.With("correlation_id", logging.CorrelationID(ctx))
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		defer cancel()
		o.stream(sctx, cancel, w, log, p, agent, t, id, created)
	})
	return nil
}

// stream writes a streamed answer: a first chunk with the role, one chunk
// per delta, a last chunk with finish_reason, the usage chunk when asked,
// then [DONE]. A failure after the first byte is an error frame.
func (o openAIRoutes) stream(ctx context.Context, cancel context.CancelFunc, w *bufio.Writer, log *slog.Logger,
	p auth.Principal, agent persistence.Agent, t completionTurn, id string, created int64) {
	chunk := func(choices []chunkChoice, usage *completionUsage) chatCompletionChunk {
		if choices == nil {
			choices = []chunkChoice{}
		}
		return chatCompletionChunk{ID: id, Object: "chat.completion.chunk", Created: created, Model: t.req.Model, Choices: choices, Usage: usage}
	}
	var mu sync.Mutex // the keep-alive ticker writes too
	broken := false
	write := func(frame []byte) {
		mu.Lock()
		defer mu.Unlock()
		if broken {
			return
		}
		_, err := w.Write(frame)
		if err == nil {
			err = w.Flush()
		}
		if err != nil {
			// The client went away: stop the reply too.
			broken = true
			cancel()
		}
	}
	send := func(v any) {
		b, err := json.Marshal(v)
		if err != nil {
			log.Error("openai stream frame not encoded", "error", err)
			return
		}
		write(fmt.Appendf(nil, "data: %s\n\n", b))
	}
	stopKeepAlive := make(chan struct{})
	keepAliveDone := make(chan struct{})
	go func() {
		defer close(keepAliveDone)
		tick := time.NewTicker(o.keepAlive)
		defer tick.Stop()
		for {
			select {
			case <-stopKeepAlive:
				return
			case <-tick.C:
				write([]byte(": keep-alive\n\n"))
			}
		}
	}()
	defer func() {
		close(stopKeepAlive)
		<-keepAliveDone
	}()
	empty := ""
	send(chunk([]chunkChoice{{Delta: chunkDelta{Role: "assistant", Content: &empty}}}, nil))
	r, err := o.run(ctx, p, agent, t, func(delta string) {
		send(chunk([]chunkChoice{{Delta: chunkDelta{Content: &delta}}}, nil))
	})
	if err != nil {
		e := toOpenAIError(err)
		if e.status >= 500 {
			log.Error("openai stream failed", "error", err)
		}
		send(e.body())
	} else {
		fr := finishReason(r.stop)
		send(chunk([]chunkChoice{{Delta: chunkDelta{}, FinishReason: &fr}}, nil))
		if t.usageEnd {
			send(chunk(nil, usageOf(r.usage)))
		}
	}
	write([]byte("data: [DONE]\n\n"))
}

// allowTurn counts one chat turn for p in the chat bucket; a limiter
// failure lets the turn through (as the REST middleware does).
func (o openAIRoutes) allowTurn(c *fiber.Ctx, p auth.Principal) error {
	res, err := o.limits.limiter.Allow(c.UserContext(), chatBucketKey(c), o.limits.perUser)
	if err != nil {
		o.log.WarnContext(c.UserContext(), "rate limiter failed; request allowed", "error", err)
		return nil
	}
	if !res.Allowed {
		retry := max(1, int64((res.RetryAfter+time.Second-1)/time.Second))
		return &oaiError{status: http.StatusTooManyRequests, typ: "requests", code: "rate_limit_exceeded",
			text:    fmt.Sprintf("rate limit reached for chat turns; retry after %d s", retry),
			headers: map[string]string{fiber.HeaderRetryAfter: fmt.Sprint(retry)}}
	}
	return nil
}

// mountOpenAI registers /v1/models and /v1/chat/completions. authed is the
// API's authentication (API keys included when configured).
func (s *Server) mountOpenAI(o openAIRoutes, authed fiber.Handler) {
	chat := auth.RequirePermission(auth.PermChatWrite)
	errs := []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound}
	const errorsNote = "Errors use OpenAI's shape, `{\"error\":{\"message\",\"type\",\"param\",\"code\"}}`, not problem+json, " +
		"so OpenAI clients can read them."
	s.Route(fiber.MethodGet, "/v1/models", Op{Summary: "OpenAI-compatible: the agents you may use as models", Description: errorsNote, Tag: "OpenAI", Auth: true,
		Response: openAIModelList{}, Errors: errs},
		o.openAIErrors, authed, o.limits.user("openai.models"), auth.RequirePermission(auth.PermChatRead), o.models)
	s.Route(fiber.MethodPost, "/v1/chat/completions", Op{Summary: "OpenAI-compatible chat completion (JSON, or SSE chat.completion.chunk frames ending in data: [DONE] with stream: true)",
		Description: errorsNote + " A model is an agent; the header `X-Kowai-Conversation-Id` binds the call to a kowai conversation.", Tag: "OpenAI", Auth: true,
		Request: completionRequest{}, Response: chatCompletion{}, Errors: append(errs, http.StatusConflict, http.StatusBadGateway, http.StatusServiceUnavailable)},
		o.openAIErrors, authed, chat, o.completions)
}

// chatBucketKey is the key of the caller's chat-turn bucket, as
// rateLimits.user(chatTurnBucket) counts it.
func chatBucketKey(c *fiber.Ctx) string {
	return ratelimit.BucketKey(chatTurnBucket, auth.RateLimitKey(c))
}
