package gateway

import (
	"embed"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/gofiber/fiber/v2"

	"github.com/kowai/kowai/internal/jsonschema"
)

// Op documents one route in the OpenAPI document. Every route is registered
// through Server.Route with its Op, so the document cannot miss one.
//
// A Summary is all a route must write: the generator derives the rest of
// what API linters ask for (a description, a tag, an operationId, security,
// the error responses) from the other fields and the path.
type Op struct {
	// Summary is a one-line description; it also opens the operation's
	// description.
	Summary string
	// Description, optional, adds Markdown after the summary: behaviour a
	// client must know that the schemas do not show.
	Description string
	// Tag groups operations (Auth, Chat, Agents, ...); empty means the first
	// path segment after /api/v1/ capitalised, or Meta outside /api/v1.
	Tag string
	// Auth marks routes that need a bearer token.
	Auth bool
	// AddrLimited marks routes without Auth that limit each client address
	// themselves (the credential routes, the WebSocket upgrade); the
	// anonymous limit every other route without Auth has does not apply.
	AddrLimited bool
	// Request is a value of the JSON body type, or nil when there is none.
	Request any
	// Response is a value of the success body type, or nil for no body.
	Response any
	// Status is the success status; 0 means 200. 101 (Switching Protocols)
	// marks a WebSocket route, whose frames the AsyncAPI document describes.
	Status int
	// Query lists the query parameters.
	Query []Param
	// Errors lists the problem+json statuses the route can answer with,
	// beyond the 429 and 500 every route may give.
	Errors []int
	// ContentType overrides application/json for the success body.
	ContentType string
	// StreamContentType, when set, is a second success media type the route
	// answers with when the request's Accept asks for it (an event stream).
	StreamContentType string
}

// Param is a documented query parameter.
type Param struct {
	Name, Description, Type string
	Required                bool
}

type documented struct {
	method, path string
	op           Op
}

// Route registers handlers for method and path (Fiber syntax, e.g.
// /api/v1/agents/:id) and documents them with op. The path is the route's
// metrics and access-log label. A route without op.Auth or op.AddrLimited
// is anonymous: each request counts against its client address's anonymous
// rate limit (see Mount) before handlers run.
func (s *Server) Route(method, path string, op Op, handlers ...fiber.Handler) {
	s.docsMu.Lock()
	s.docs = append(s.docs, documented{method: method, path: path, op: op})
	s.docsMu.Unlock()
	chain := []fiber.Handler{matchedRoute(path)}
	if !op.Auth && !op.AddrLimited {
		chain = append(chain, s.limitAnonymous)
	}
	s.app.Add(method, path, append(chain, handlers...)...)
}

var fiberParam = regexp.MustCompile(`:([A-Za-z_][A-Za-z0-9_]*)`)

// openAPIPath turns /agents/:id into /agents/{id}.
func openAPIPath(p string) string { return fiberParam.ReplaceAllString(p, "{$1}") }

// apiContact is where the API documents send people: the security policy's
// address, the one contact the project publishes.
func apiContact() map[string]any {
	return map[string]any{"name": "kowai security reports (SECURITY.md)", "email": "security@kowai.dev"}
}

// OpenAPI builds the OpenAPI 3.1 document of every route registered so far.
func (s *Server) OpenAPI() map[string]any {
	docs := s.documentedRoutes()
	sb := newSchemaBuilder()
	paths := map[string]map[string]any{}
	tagPaths := map[string][]string{}
	for _, d := range docs {
		p := openAPIPath(d.path)
		if paths[p] == nil {
			paths[p] = map[string]any{}
		}
		paths[p][strings.ToLower(d.method)] = sb.operation(d)
		tag := opTag(d)
		tagPaths[tag] = append(tagPaths[tag], p)
	}
	problem := sb.Object(reflect.TypeOf(problem{}))
	sb.Components["Problem"] = jsonschema.WithDescription(problem, "An RFC 9457 problem: every error the API answers with.")
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":   "kowai",
			"version": "1",
			"description": "kowai's public API: chat with agents that run as actors, manage agents, workflows and users. " +
				"Send `Authorization: Bearer TOKEN` (an access token from `POST /api/v1/auth/login`, or an API key) " +
				"to the operations that require it. Errors are `application/problem+json` (RFC 9457) with a " +
				"`correlation_id`; every response carries `X-Request-ID`. The WebSocket frames of " +
				"`/api/v1/chat/ws` are described by the AsyncAPI 3.0 document at `/asyncapi.json`.",
			"contact": apiContact(),
		},
		"servers": []map[string]any{{"url": "/", "description": "The kowai node that served this document."}},
		// Operations require a token unless they say otherwise (each says).
		"security": []map[string][]string{{"bearer": {}}},
		"tags":     openAPITags(tagPaths),
		"paths":    paths,
		"components": map[string]any{
			"schemas": sb.Components,
			"securitySchemes": map[string]any{
				"bearer": map[string]any{"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
					"description": "An access token (a JWT from login, refresh or Appwrite sign-in) or an API key `kowai_...`."},
			},
		},
	}
}

// documentedRoutes returns a copy of the routes registered so far.
func (s *Server) documentedRoutes() []documented {
	s.docsMu.Lock()
	defer s.docsMu.Unlock()
	return append([]documented(nil), s.docs...)
}

// opTag is the route's tag, derived from its path when Op.Tag is empty.
func opTag(d documented) string {
	if d.op.Tag != "" {
		return d.op.Tag
	}
	rest, ok := strings.CutPrefix(d.path, "/api/v1/")
	if !ok {
		return "Meta"
	}
	first, _, _ := strings.Cut(rest, "/")
	if first == "" || first[0] == ':' {
		return "Meta"
	}
	return strings.ToUpper(first[:1]) + first[1:]
}

// tagDescription describes the tags kowai's own routes use; a tag added
// later without an entry here is described by the paths it covers.
func tagDescription(tag string, paths []string) string {
	switch tag {
	case "Auth":
		return "Accounts, sign-in, token refresh and sign-in sessions. Access tokens are short-lived JWTs; refresh tokens are spent on use."
	case "Chat":
		return "Chat turns over REST and WebSocket, conversation history and feedback. A user sees only their own conversations; moderators and admins may read any."
	case "Agents":
		return "Agents: a type, instructions, a DSPy signature, a model and a config. Built-in agents are shared; the others belong to their owner."
	case "Workflows":
		return "Multi-step agent jobs with retries, run by actors, triggered and watched over HTTP."
	case "Admin":
		return "Users and the cluster, for administrators (and some reads for moderators)."
	case "Health":
		return "Liveness and readiness probes for load balancers and orchestrators; public and cheap."
	case "Meta":
		return "The API's own descriptions (OpenAPI, AsyncAPI, the /docs page) and metrics."
	}
	return "Operations under " + commonPrefix(paths) + "."
}

// openAPITags is the document's tag list: every tag an operation uses, once,
// in name order, each with a description.
func openAPITags(tagPaths map[string][]string) []map[string]any {
	names := make([]string, 0, len(tagPaths))
	for name := range tagPaths {
		names = append(names, name)
	}
	sort.Strings(names)
	tags := make([]map[string]any, 0, len(names))
	for _, name := range names {
		tags = append(tags, map[string]any{"name": name, "description": tagDescription(name, tagPaths[name])})
	}
	return tags
}

// commonPrefix is the longest run of whole path segments shared by paths.
func commonPrefix(paths []string) string {
	if len(paths) == 0 {
		return "/"
	}
	prefix := strings.Split(paths[0], "/")
	for _, p := range paths[1:] {
		segs := strings.Split(p, "/")
		n := 0
		for n < len(prefix) && n < len(segs) && prefix[n] == segs[n] {
			n++
		}
		prefix = prefix[:n]
	}
	if joined := strings.Join(prefix, "/"); joined != "" {
		return joined
	}
	return "/"
}

// opDescription is the operation's description: its summary and
// Description, then what its other fields imply for a client.
func opDescription(op Op) string {
	parts := []string{strings.TrimSuffix(op.Summary, ".") + "."}
	if op.Description != "" {
		parts = append(parts, op.Description)
	}
	switch {
	case op.Status == http.StatusSwitchingProtocols:
		parts = append(parts, "Upgrades the connection to a WebSocket. Authenticate with `Authorization: Bearer` on the "+
			"upgrade request or with an `auth` frame first. The frames are described by the AsyncAPI 3.0 document at "+
			"[/asyncapi.json](/asyncapi.json) and listed on [/docs](/docs). A plain HTTP request gets 426.")
	case op.Auth:
		parts = append(parts, "Requires `Authorization: Bearer TOKEN` (an access token or an API key).")
	default:
		parts = append(parts, "Public: no token is needed.")
	}
	if op.Request != nil {
		parts = append(parts, "The JSON body is decoded strictly: unknown fields, malformed JSON and invalid values are refused with 400 and the offending fields, and nothing changes.")
	}
	parts = append(parts, "Errors are `application/problem+json`.")
	return strings.Join(parts, " ")
}

// schemaBuilder derives the document's schemas; named structs become
// components (the reflector is shared with the workflow engine).
type schemaBuilder struct {
	jsonschema.Builder
}

func newSchemaBuilder() *schemaBuilder {
	return &schemaBuilder{Builder: jsonschema.Builder{Components: map[string]any{}, RefPrefix: "#/components/schemas/"}}
}

func (sb *schemaBuilder) operation(d documented) map[string]any {
	op := d.op
	status := op.Status
	if status == 0 {
		status = http.StatusOK
	}
	responses := map[string]any{}
	success := map[string]any{"description": http.StatusText(status)}
	if op.Response != nil {
		ct := op.ContentType
		if ct == "" {
			ct = fiber.MIMEApplicationJSON
		}
		success["content"] = map[string]any{ct: map[string]any{"schema": sb.Schema(reflect.TypeOf(op.Response))}}
	}
	if op.StreamContentType != "" {
		content, _ := success["content"].(map[string]any)
		if content == nil {
			content = map[string]any{}
			success["content"] = content
		}
		content[op.StreamContentType] = map[string]any{"schema": map[string]any{"type": "string",
			"description": "Server-Sent Events, sent when the request's Accept names this type"}}
	}
	responses[strconv.Itoa(status)] = success
	errs := append([]int{http.StatusTooManyRequests, http.StatusInternalServerError}, op.Errors...)
	if op.Auth {
		errs = append(errs, http.StatusUnauthorized)
	}
	if op.Request != nil {
		errs = append(errs, http.StatusBadRequest, http.StatusUnsupportedMediaType, http.StatusRequestEntityTooLarge)
	}
	for _, code := range errs {
		responses[strconv.Itoa(code)] = map[string]any{
			"description": http.StatusText(code),
			"content": map[string]any{"application/problem+json": map[string]any{
				"schema": map[string]any{"$ref": "#/components/schemas/Problem"},
			}},
		}
	}
	out := map[string]any{
		"summary":     op.Summary,
		"description": opDescription(op),
		"operationId": operationID(d.method, d.path),
		"tags":        []string{opTag(d)},
		"responses":   responses,
	}
	switch {
	case status == http.StatusSwitchingProtocols:
		// The upgrade request may carry a token or leave it to the auth frame.
		out["security"] = []map[string][]string{{"bearer": {}}, {}}
		out[wsExtension] = "/asyncapi.json"
	case op.Auth:
		out["security"] = []map[string][]string{{"bearer": {}}}
	default:
		out["security"] = []map[string][]string{}
	}
	var params []map[string]any
	for _, m := range fiberParam.FindAllStringSubmatch(d.path, -1) {
		params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
	}
	for _, q := range op.Query {
		typ := q.Type
		if typ == "" {
			typ = "string"
		}
		params = append(params, map[string]any{"name": q.Name, "in": "query", "required": q.Required,
			"description": q.Description, "schema": map[string]any{"type": typ}})
	}
	if len(params) > 0 {
		out["parameters"] = params
	}
	if op.Request != nil {
		out["requestBody"] = map[string]any{
			"required": true,
			"description": "JSON, optionally with Content-Encoding gzip or deflate (at most two codings); " +
				"the body limit applies before and after decompression (413 beyond it, 415 for other codings)",
			"content": map[string]any{fiber.MIMEApplicationJSON: map[string]any{"schema": sb.Schema(reflect.TypeOf(op.Request))}},
		}
	}
	return out
}

// wsExtension marks WebSocket operations in the OpenAPI document and names
// the AsyncAPI document that describes their frames. The lint rulesets in
// tools/apilint exempt these operations from the 2xx-response rules: an
// upgrade succeeds with 101.
const wsExtension = "x-kowai-websocket"

// operationID names an operation after its method and path without the
// /api/v1 prefix; the OpenAI-compatible routes keep their /v1 ("getV1Models"),
// so that they never collide with a REST route of the same name.
func operationID(method, path string) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(method))
	for _, part := range strings.FieldsFunc(strings.TrimPrefix(path, "/api/v1/"), func(r rune) bool { return r == '/' || r == ':' || r == '.' || r == '-' }) {
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String()
}

// docsAssets is the /docs page: a page, a script and a style sheet, served
// from the binary so the page needs nothing from another origin.
//
//go:embed docsui/index.html docsui/docs.js docsui/docs.css
var docsAssets embed.FS

// docsCSP admits only the page's own script and style sheet and same-origin
// requests (the page fetches the documents and sends the try-it requests).
const docsCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// registerDocs adds /openapi.json, /asyncapi.json and the /docs page. The
// documents are built once, on first request, after every route has been
// registered; /asyncapi.json then names the host the client reached.
func (s *Server) registerDocs() {
	var once sync.Once
	var doc []byte
	var docErr error
	s.Route(fiber.MethodGet, "/openapi.json", Op{Summary: "This OpenAPI 3.1 document", Tag: "Meta", Response: map[string]any{}}, func(c *fiber.Ctx) error {
		once.Do(func() { doc, docErr = json.Marshal(s.OpenAPI()) })
		if docErr != nil {
			return fmt.Errorf("gateway: build the OpenAPI document: %w", docErr)
		}
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
		return c.Send(doc)
	})
	s.Route(fiber.MethodGet, "/asyncapi.json", Op{Summary: "The AsyncAPI 3.0 document of the chat WebSocket's frames", Tag: "Meta",
		Description: "Generated from the frame types the gateway decodes and encodes; its server is the host this request reached.",
		Response:    map[string]any{}}, func(c *fiber.Ctx) error {
		protocol := "ws"
		if c.Protocol() == "https" {
			protocol = "wss"
		}
		host := c.Hostname()
		if host == "" {
			host = c.Context().LocalAddr().String()
		}
		d, err := s.AsyncAPI(host, protocol)
		if err != nil {
			return fmt.Errorf("gateway: build the AsyncAPI document: %w", err)
		}
		return c.JSON(d)
	})
	s.Route(fiber.MethodGet, "/docs", Op{Summary: "The API documents rendered for a person, with a try-it form", Tag: "Meta",
		Description: "Lists the operations of /openapi.json and the WebSocket frames of /asyncapi.json. A bearer token typed into the page is kept in the page only and sent with the requests it tries.",
		Response:    "", ContentType: fiber.MIMETextHTMLCharsetUTF8}, s.docsAsset("docsui/index.html", fiber.MIMETextHTMLCharsetUTF8))
	s.Route(fiber.MethodGet, "/docs/docs.js", Op{Summary: "The script of the /docs page", Tag: "Meta", Response: "", ContentType: "text/javascript; charset=utf-8"},
		s.docsAsset("docsui/docs.js", "text/javascript; charset=utf-8"))
	s.Route(fiber.MethodGet, "/docs/docs.css", Op{Summary: "The style sheet of the /docs page", Tag: "Meta", Response: "", ContentType: "text/css; charset=utf-8"},
		s.docsAsset("docsui/docs.css", "text/css; charset=utf-8"))
}

// docsAsset serves one embedded file of the /docs page under docsCSP.
func (s *Server) docsAsset(name, contentType string) fiber.Handler {
	body, err := docsAssets.ReadFile(name)
	return func(c *fiber.Ctx) error {
		if err != nil {
			return fmt.Errorf("gateway: docs asset %s: %w", name, err)
		}
		c.Set(fiber.HeaderContentSecurityPolicy, docsCSP)
		c.Set(fiber.HeaderContentType, contentType)
		c.Set(fiber.HeaderCacheControl, "no-cache")
		return c.Send(body)
	}
}
