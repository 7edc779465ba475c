package jsonschema

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

type inner struct {
	Name string `json:"name"`
}

type params struct {
	Topic   string          `json:"topic" doc:"what to analyze"`
	Depth   int             `json:"depth,omitempty"`
	Score   *float64        `json:"score"`
	Tags    []string        `json:"tags,omitempty"`
	Items   []inner         `json:"items,omitempty"`
	When    time.Time       `json:"when,omitzero"`
	Extra   json.RawMessage `json:"extra,omitempty"`
	Flags   map[string]bool `json:"flags,omitempty"`
	private int
}

func TestSchemaDerivation(t *testing.T) {
	s := For[params]()
	if got, want := s["required"], []string{"topic"}; !reflect.DeepEqual(got, want) {
		t.Errorf("required = %v, want %v", got, want)
	}
	props := s["properties"].(map[string]any)
	if props["topic"].(map[string]any)["description"] != "what to analyze" {
		t.Errorf("doc tag lost: %v", props["topic"])
	}
	if _, ok := props["private"]; ok {
		t.Error("unexported field published")
	}
	items := props["items"].(map[string]any)["items"].(map[string]any)
	if items["type"] != "object" {
		t.Errorf("named struct not inlined without components: %v", items)
	}
	comps := map[string]any{}
	b := Builder{Components: comps, RefPrefix: "#/c/"}
	b.Schema(reflect.TypeFor[params]())
	if _, ok := comps["inner"]; !ok {
		t.Errorf("components = %v, want inner", comps)
	}
}

type node struct {
	Next *node `json:"next"`
}

func TestRecursiveTypeTerminates(t *testing.T) {
	if s := For[node](); s["type"] != "object" {
		t.Errorf("schema = %v", s)
	}
}

func TestValidate(t *testing.T) {
	s := For[params]()
	for _, tc := range []struct {
		doc  string
		want []FieldError
	}{
		{`{"topic":"x"}`, nil},
		{`{"topic":"x","depth":3,"score":1.5,"tags":["a"],"items":[{"name":"n"}],"when":"2026-01-02T03:04:05Z","extra":{"k":[1]},"flags":{"a":true}}`, nil},
		{`{}`, []FieldError{{"topic", "is required"}}},
		{`{"topic":1}`, []FieldError{{"topic", "must be a string"}}},
		{`{"topic":"x","depth":1.5}`, []FieldError{{"depth", "must be an integer"}}},
		{`{"topic":"x","nope":1}`, []FieldError{{"nope", "is not a known field"}}},
		{`{"topic":"x","items":[{"name":"a"},{"x":1}]}`, []FieldError{{"items[1].name", "is required"}, {"items[1].x", "is not a known field"}}},
		{`{"topic":"x","when":"yesterday"}`, []FieldError{{"when", "must be an RFC 3339 date-time"}}},
		{`{"topic":"x","flags":{"a":"yes"}}`, []FieldError{{"flags.a", "must be a boolean"}}},
		{`[]`, []FieldError{{"", "must be an object"}}},
		{`{"topic":"x"} {}`, []FieldError{{"", "must hold exactly one JSON value"}}},
		{`{"topic":`, []FieldError{{"", "must be valid JSON"}}},
	} {
		if got := Validate(s, []byte(tc.doc)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Validate(%s) = %v, want %v", tc.doc, got, tc.want)
		}
	}
}

func TestValidateDecodedSchemaAndLimits(t *testing.T) {
	var s map[string]any
	if err := json.Unmarshal([]byte(`{"type":"object","required":["n"],"properties":{"n":{"type":"integer","minimum":1,"maximum":3},"s":{"type":"string","maxLength":2,"enum":["a","bb","ccc"]}}}`), &s); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		doc  string
		want int
	}{{`{"n":2}`, 0}, {`{"n":0}`, 1}, {`{"n":4,"s":"ccc"}`, 2}, {`{"s":"z"}`, 2}} {
		if got := Validate(s, []byte(tc.doc)); len(got) != tc.want {
			t.Errorf("Validate(%s) = %v, want %d errors", tc.doc, got, tc.want)
		}
	}
}

// Bounds, enums and defaults come from struct tags, and Validate checks them,
// fractional bounds included.
func TestTagBounds(t *testing.T) {
	type cfg struct {
		Mode  string  `json:"mode,omitempty" enum:"fast,slow" default:"fast"`
		Ratio float64 `json:"ratio,omitempty" minimum:"0.25" maximum:"0.75"`
		Steps int     `json:"steps,omitempty" minimum:"1" maximum:"20" default:"5"`
	}
	s := For[cfg]()
	props := s["properties"].(map[string]any)
	if m := props["mode"].(map[string]any); m["default"] != "fast" || len(m["enum"].([]any)) != 2 {
		t.Fatalf("mode schema %v", m)
	}
	if m := props["steps"].(map[string]any); m["default"] != 5.0 || m["minimum"] != 1.0 || m["maximum"] != 20.0 {
		t.Fatalf("steps schema %v", m)
	}
	for doc, want := range map[string]string{
		`{"ratio":0.5,"steps":3,"mode":"slow"}`: "",
		`{"ratio":0.8}`:                         "ratio: must be at most 0.75",
		`{"ratio":0.2}`:                         "ratio: must be at least 0.25",
		`{"steps":0}`:                           "steps: must be at least 1",
		`{"mode":"medium"}`:                     "mode: must be one of",
	} {
		errs := Validate(s, []byte(doc))
		got := ""
		if len(errs) > 0 {
			got = errs[0].Field + ": " + errs[0].Message
		}
		if want == "" && got != "" || want != "" && !strings.HasPrefix(got, want) {
			t.Errorf("%s: %q, want %q", doc, got, want)
		}
	}
}
