package gateway

import (
	"encoding/json"
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
