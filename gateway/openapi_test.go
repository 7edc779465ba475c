package gateway

import (
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
)

// routeDocDiff compares the routes the app serves with the routes the
// OpenAPI document describes, both ways.
func routeDocDiff(t *testing.T, s *Server) (undocumented, phantom []string) {
	t.Helper()
	served := map[string]bool{}
	for _, r := range s.App().GetRoutes(true) {
		if r.Method == fiber.MethodHead || r.Path == "/" && len(r.Handlers) == 0 {
			continue
		}
		served[r.Method+" "+openAPIPath(r.Path)] = true
	}
	doc := s.OpenAPI()
	described := map[string]bool{}
	for path, ops := range doc["paths"].(map[string]map[string]any) {
		for m := range ops {
			described[strings.ToUpper(m)+" "+path] = true
		}
	}
	for k := range served {
		if !described[k] {
			undocumented = append(undocumented, k)
		}
	}
	for k := range described {
		if !served[k] {
			phantom = append(phantom, k)
		}
	}
	sort.Strings(undocumented)
	sort.Strings(phantom)
	return undocumented, phantom
}

func TestOpenAPICoversEveryRoute(t *testing.T) {
	s := newTestServer(t)
	undocumented, phantom := routeDocDiff(t, s)
	if len(undocumented) > 0 || len(phantom) > 0 {
		t.Fatalf("routes without docs: %v; docs without routes: %v", undocumented, phantom)
	}
	// The check itself must fail when a route bypasses Route.
	s.App().Get("/sneaky", func(c *fiber.Ctx) error { return nil })
	if undocumented, _ := routeDocDiff(t, s); len(undocumented) != 1 || undocumented[0] != "GET /sneaky" {
		t.Fatalf("an undocumented route went unnoticed: %v", undocumented)
	}
}

type sampleBody struct {
	Name  string            `json:"name" doc:"display name"`
	Tags  []string          `json:"tags,omitempty"`
	Meta  map[string]int    `json:"meta,omitempty"`
	Inner *sampleBody       `json:"inner,omitempty"`
	Extra map[string]string `json:"-"`
}

func (sampleBody) Validate() []FieldError { return nil }

func TestOpenAPIDocument(t *testing.T) {
	s := newTestServer(t)
	s.Route(fiber.MethodPost, "/api/v1/things/:id", Op{Summary: "Make a thing", Tag: "Things", Auth: true,
		Request: sampleBody{}, Response: sampleBody{}, Status: 201, Errors: []int{404},
		Query: []Param{{Name: "limit", Type: "integer"}}}, func(c *fiber.Ctx) error { return nil })
	raw, err := json.Marshal(s.OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string `json:"openapi"`
		Paths   map[string]map[string]struct {
			OperationID string                     `json:"operationId"`
			Security    []map[string][]string      `json:"security"`
			Parameters  []map[string]any           `json:"parameters"`
			Responses   map[string]json.RawMessage `json:"responses"`
			RequestBody map[string]any             `json:"requestBody"`
		} `json:"paths"`
		Components struct {
			Schemas map[string]struct {
				Required   []string                  `json:"required"`
				Properties map[string]map[string]any `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	op := doc.Paths["/api/v1/things/{id}"]["post"]
	if doc.OpenAPI != "3.1.0" || op.OperationID != "postThingsId" || len(op.Security) != 1 || len(op.Parameters) != 2 || op.RequestBody == nil {
		t.Fatalf("operation: %+v", op)
	}
	for _, code := range []string{"201", "400", "401", "404", "415", "413", "429", "500"} {
		if _, ok := op.Responses[code]; !ok {
			t.Errorf("response %s missing", code)
		}
	}
	body := doc.Components.Schemas["sampleBody"]
	if len(body.Required) != 1 || body.Required[0] != "name" || body.Properties["name"]["description"] != "display name" {
		t.Errorf("schema: %+v", body)
	}
	if _, ok := body.Properties["Extra"]; ok {
		t.Error("a json:\"-\" field leaked into the schema")
	}
	if _, ok := doc.Components.Schemas["Problem"]; !ok {
		t.Error("Problem schema missing")
	}
}

// TestOpenAPIOperationsAreComplete holds every operation of the whole REST
// API, as served over HTTP, to what API linters require of it: a summary, a
// description, a unique operationId, one tag that the document lists with a
// description, and an explicit security requirement (empty for public
// routes). The document names its servers and a contact.
func TestOpenAPIOperationsAreComplete(t *testing.T) {
	env := startREST(t, restConfig{})
	doc := servedJSON(t, env.url+"/openapi.json")
	if servers, _ := doc["servers"].([]any); len(servers) == 0 || pointer(servers[0], "url") == "" {
		t.Errorf("servers: %v", doc["servers"])
	}
	if pointer(doc, "info", "contact", "email") == nil || pointer(doc, "info", "description") == "" {
		t.Errorf("info: %v", doc["info"])
	}
	if sec, _ := doc["security"].([]any); len(sec) != 1 || pointer(sec[0], "bearer") == nil {
		t.Errorf("global security: %v", doc["security"])
	}
	tags := map[string]bool{}
	tagList, _ := doc["tags"].([]any)
	for _, tag := range tagList {
		name, _ := pointer(tag, "name").(string)
		if d, _ := pointer(tag, "description").(string); d == "" || tags[name] {
			t.Errorf("tag %q: duplicate or without a description", name)
		}
		tags[name] = true
	}
	ids := map[string]string{}
	public, authed := 0, 0
	for path, ops := range doc["paths"].(map[string]any) {
		for method, op := range ops.(map[string]any) {
			where := strings.ToUpper(method) + " " + path
			for _, field := range []string{"summary", "description", "operationId"} {
				if v, _ := pointer(op, field).(string); v == "" {
					t.Errorf("%s has no %s", where, field)
				}
			}
			id, _ := pointer(op, "operationId").(string)
			if other, dup := ids[id]; dup {
				t.Errorf("%s and %s share operationId %s", where, other, id)
			}
			ids[id] = where
			if opTags, _ := pointer(op, "tags").([]any); len(opTags) != 1 || !tags[opTags[0].(string)] {
				t.Errorf("%s tags %v are not one listed tag", where, opTags)
			}
			sec, ok := pointer(op, "security").([]any)
			switch {
			case !ok:
				t.Errorf("%s has no security requirement", where)
			case len(sec) == 0:
				public++
			default:
				authed++
				if pointer(sec[0], "bearer") == nil {
					t.Errorf("%s security %v", where, sec)
				}
			}
		}
	}
	if public < 5 || authed < 10 {
		t.Errorf("%d public and %d authenticated operations; the REST API was not mounted", public, authed)
	}
	login := pointer(doc, "paths", "/api/v1/auth/login", "post", "security")
	if s, _ := login.([]any); s == nil || len(s) != 0 {
		t.Errorf("POST /api/v1/auth/login security %v, want [] (public)", login)
	}
	ws := pointer(doc, "paths", "/api/v1/chat/ws", "get")
	if pointer(ws, wsExtension) != "/asyncapi.json" || !strings.Contains(pointer(ws, "description").(string), "/asyncapi.json") {
		t.Errorf("the WebSocket operation does not point to the AsyncAPI document: %v", ws)
	}
}

// TestOpenAPIDerivesFromSummary registers routes with a Summary alone and
// checks that the generator supplies the rest: later routes comply with the
// linters without per-route work.
func TestOpenAPIDerivesFromSummary(t *testing.T) {
	s := newTestServer(t)
	noop := func(c *fiber.Ctx) error { return nil }
	s.Route(fiber.MethodGet, "/api/v1/widgets/:id", Op{Summary: "One widget."}, noop)
	s.Route(fiber.MethodPost, "/api/v1/widgets", Op{Summary: "Make a widget", Auth: true, Request: sampleBody{},
		Description: "Widgets are *round*."}, noop)
	doc := s.OpenAPI()
	get := doc["paths"].(map[string]map[string]any)["/api/v1/widgets/{id}"]["get"].(map[string]any)
	post := doc["paths"].(map[string]map[string]any)["/api/v1/widgets"]["post"].(map[string]any)
	for _, tc := range []struct {
		name string
		got  any
		want any
	}{
		{"get tag", get["tags"], []string{"Widgets"}},
		{"get security", get["security"], []map[string][]string{}},
		{"get operationId", get["operationId"], "getWidgetsId"},
		{"post security", post["security"], []map[string][]string{{"bearer": {}}}},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s: %#v, want %#v", tc.name, tc.got, tc.want)
		}
	}
	if d := get["description"].(string); !strings.HasPrefix(d, "One widget. Public") {
		t.Errorf("get description %q", d)
	}
	if d := post["description"].(string); !strings.HasPrefix(d, "Make a widget. Widgets are *round*. Requires `Authorization: Bearer") ||
		!strings.Contains(d, "decoded strictly") {
		t.Errorf("post description %q", d)
	}
	var widgets map[string]any
	tagList, _ := doc["tags"].([]map[string]any)
	for _, tag := range tagList {
		if tag["name"] == "Widgets" {
			widgets = tag
		}
	}
	if widgets == nil || widgets["description"] != "Operations under /api/v1/widgets." {
		t.Errorf("Widgets tag %v", widgets)
	}
}

// TestDocsPage fetches /docs and its assets over HTTP: the page loads its
// script and style sheet from the binary, has no inline script, style or
// event handler and names no other origin, and its Content-Security-Policy
// admits only same-origin scripts, styles and requests.
func TestDocsPage(t *testing.T) {
	ts := start(t, Options{}, nil)
	res, page := get(t, ts.url+"/docs", nil)
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /docs: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	csp := res.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	for _, banned := range []string{"unsafe-inline", "unsafe-eval", "sha256-", "nonce-", "http:", "https:", "*"} {
		if strings.Contains(csp, banned) {
			t.Errorf("CSP %q admits %q", csp, banned)
		}
	}
	html := string(page)
	inline := regexp.MustCompile(`(?is)<script\b[^>]*>\s*[^<\s]|<style\b|\sstyle=|\son[a-z]+=|javascript:`)
	if m := inline.FindString(html); m != "" {
		t.Errorf("/docs has inline code or style: %q", m)
	}
	assets := regexp.MustCompile(`(?:src|href)="(/docs/[^"]+)"`).FindAllStringSubmatch(html, -1)
	if len(assets) != 2 {
		t.Fatalf("/docs loads %v, want its script and style sheet", assets)
	}
	for _, a := range assets {
		res, body := get(t, ts.url+a[1], nil)
		ct := res.Header.Get("Content-Type")
		if res.StatusCode != http.StatusOK || len(body) == 0 || !(strings.HasPrefix(ct, "text/javascript") || strings.HasPrefix(ct, "text/css")) {
			t.Errorf("GET %s: %d %q (%d bytes)", a[1], res.StatusCode, ct, len(body))
		}
		if strings.Contains(string(body), "innerHTML") || strings.Contains(string(body), "eval(") {
			t.Errorf("%s builds markup from strings", a[1])
		}
	}
	if regexp.MustCompile(`(?:src|href)="(?:https?:)?//`).MatchString(html) {
		t.Error("/docs loads something from another origin")
	}
	// The page's script sends the token the person types as a bearer header.
	_, script := get(t, ts.url+"/docs/docs.js", nil)
	if !strings.Contains(string(script), "Authorization = `Bearer ${token}`") || !strings.Contains(string(script), "'/asyncapi.json'") {
		t.Error("docs.js does not send the bearer token or does not load the AsyncAPI document")
	}
}
