package gateway

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/gofiber/fiber/v2"

	"github.com/kowai/kowai/internal/jsonschema"
)

// Op documents one route in the OpenAPI document. Every route is registered
// through Server.Route with its Op, so the document cannot miss one.
type Op struct {
	// Summary is a one-line description.
	Summary string
	// Tag groups operations (Auth, Chat, Agents, ...).
	Tag string
	// Auth marks routes that need a bearer token.
	Auth bool
	// Request is a value of the JSON body type, or nil when there is none.
	Request any
	// Response is a value of the success body type, or nil for no body.
	Response any
	// Status is the success status; 0 means 200.
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
// /api/v1/agents/:id) and documents them with op.
func (s *Server) Route(method, path string, op Op, handlers ...fiber.Handler) {
	s.docsMu.Lock()
	s.docs = append(s.docs, documented{method: method, path: path, op: op})
	s.docsMu.Unlock()
	s.app.Add(method, path, handlers...)
}

var fiberParam = regexp.MustCompile(`:([A-Za-z_][A-Za-z0-9_]*)`)

// openAPIPath turns /agents/:id into /agents/{id}.
func openAPIPath(p string) string { return fiberParam.ReplaceAllString(p, "{$1}") }

// OpenAPI builds the OpenAPI 3.1 document of every route registered so far.
func (s *Server) OpenAPI() map[string]any {
	s.docsMu.Lock()
	docs := append([]documented(nil), s.docs...)
	s.docsMu.Unlock()
	sb := newSchemaBuilder()
	paths := map[string]map[string]any{}
	for _, d := range docs {
		p := openAPIPath(d.path)
		if paths[p] == nil {
			paths[p] = map[string]any{}
		}
		paths[p][strings.ToLower(d.method)] = sb.operation(d)
	}
	problem := sb.Object(reflect.TypeOf(problem{}))
	sb.components["Problem"] = problem
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":       "kowai",
			"version":     "1",
			"description": "kowai's public API. Errors are application/problem+json (RFC 9457).",
		},
		"paths": paths,
		"components": map[string]any{
			"schemas": sb.components,
			"securitySchemes": map[string]any{
				"bearer": map[string]any{"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
			},
		},
	}
}

// schemaBuilder derives the document's schemas; named structs become
// components (the reflector is shared with the workflow engine).
type schemaBuilder struct {
	components map[string]any
	jsonschema.Builder
}

func newSchemaBuilder() *schemaBuilder {
	c := map[string]any{}
	return &schemaBuilder{components: c, Builder: jsonschema.Builder{Components: c, RefPrefix: "#/components/schemas/"}}
}

func (sb *schemaBuilder) schema(t reflect.Type) map[string]any { return sb.Schema(t) }

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
		success["content"] = map[string]any{ct: map[string]any{"schema": sb.schema(reflect.TypeOf(op.Response))}}
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
		"operationId": operationID(d.method, d.path),
		"responses":   responses,
	}
	if op.Tag != "" {
		out["tags"] = []string{op.Tag}
	}
	if op.Auth {
		out["security"] = []map[string][]string{{"bearer": {}}}
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
			"content":  map[string]any{fiber.MIMEApplicationJSON: map[string]any{"schema": sb.schema(reflect.TypeOf(op.Request))}},
		}
	}
	return out
}

func operationID(method, path string) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(method))
	for _, part := range strings.FieldsFunc(path, func(r rune) bool { return r == '/' || r == ':' || r == '.' || r == '-' }) {
		if part == "api" || part == "v1" {
			continue
		}
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String()
}

// docsPage renders /openapi.json for a person, with no external assets: the
// page's strict CSP admits only its own inline script, by hash.
const docsScript = `fetch('/openapi.json').then(r=>r.json()).then(doc=>{
const root=document.getElementById('ops');const esc=s=>String(s??'').replace(/[&<>"]/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));
for(const [path,ops] of Object.entries(doc.paths).sort()){for(const [m,op] of Object.entries(ops)){
const d=document.createElement('details');const codes=Object.keys(op.responses).join(', ');
d.innerHTML='<summary><b class="'+m+'">'+m.toUpperCase()+'</b> <code>'+esc(path)+'</code> '+esc(op.summary)+(op.security?' 🔒':'')+'</summary>'
+(op.requestBody?'<h4>Request</h4><pre>'+esc(JSON.stringify(op.requestBody.content['application/json'].schema,null,2))+'</pre>':'')
+'<h4>Responses: '+esc(codes)+'</h4><pre>'+esc(JSON.stringify(op.responses,null,2))+'</pre>';root.appendChild(d);}}
document.getElementById('schemas').textContent=JSON.stringify(doc.components.schemas,null,2);});`

var docsCSP = func() string {
	sum := sha256.Sum256([]byte(docsScript))
	return "default-src 'none'; connect-src 'self'; style-src 'unsafe-inline'; script-src 'sha256-" +
		base64.StdEncoding.EncodeToString(sum[:]) + "'; frame-ancestors 'none'"
}()

const docsHTML = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>kowai API</title>
<style>body{font:15px system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em}summary{cursor:pointer;padding:.3em 0}
b{display:inline-block;width:4.5em}.get{color:#0a7}.post{color:#06c}.put{color:#a60}.delete{color:#c22}pre{background:#f6f6f6;padding:.6em;overflow:auto;font-size:12px}</style>
</head><body><h1>kowai API</h1><p>The machine-readable document is <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1). Errors are <code>application/problem+json</code>.</p>
<div id="ops"></div><h2>Schemas</h2><pre id="schemas"></pre><script>` + docsScript + `</script></body></html>`

// registerDocs adds /openapi.json and /docs; the document is built once, on
// first request, after every route has been registered.
func (s *Server) registerDocs() {
	var once sync.Once
	var doc []byte
	var docErr error
	s.Route(fiber.MethodGet, "/openapi.json", Op{Summary: "This OpenAPI 3.1 document", Tag: "Meta", Response: map[string]any{}}, func(c *fiber.Ctx) error {
		once.Do(func() { doc, docErr = json.Marshal(s.OpenAPI()) })
		if docErr != nil {
			return docErr
		}
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
		return c.Send(doc)
	})
	s.Route(fiber.MethodGet, "/docs", Op{Summary: "The API document rendered for a person", Tag: "Meta", Response: "", ContentType: fiber.MIMETextHTMLCharsetUTF8}, func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentSecurityPolicy, docsCSP)
		c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
		return c.SendString(docsHTML)
	})
}
