package jsonschema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"
)

// FieldError is one place where a document breaks its schema. Field is a
// dotted path from the document's root ("topic", "items[2].name"); the root
// itself is "" .
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// maxDepth bounds the nesting Validate follows, so a hostile document cannot
// exhaust the stack.
const maxDepth = 64

// Validate checks doc against schema and returns every violation, sorted by
// field; none means valid. doc must be exactly one JSON value. Supported
// keywords: type, properties, required, additionalProperties, items, enum,
// allOf, format date-time, minimum, maximum, minLength, maxLength. Unknown
// keywords are ignored.
func Validate(schema map[string]any, doc []byte) []FieldError {
	if !utf8.Valid(doc) {
		return []FieldError{{Message: "must be valid UTF-8"}}
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return []FieldError{{Message: "must be valid JSON"}}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return []FieldError{{Message: "must hold exactly one JSON value"}}
	}
	var out []FieldError
	check(schema, v, "", 0, &out)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Field < out[j].Field })
	return out
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func check(s map[string]any, v any, path string, depth int, out *[]FieldError) {
	if depth > maxDepth {
		*out = append(*out, FieldError{Field: path, Message: "is nested too deeply"})
		return
	}
	add := func(msg string) { *out = append(*out, FieldError{Field: path, Message: msg}) }
	if all, ok := s["allOf"].([]any); ok {
		for _, sub := range all {
			if m, ok := sub.(map[string]any); ok {
				check(m, v, path, depth+1, out)
			}
		}
	}
	if enum, ok := s["enum"].([]any); ok && !inEnum(enum, v) {
		add("must be one of " + enumText(enum))
		return
	}
	if t, ok := s["type"]; ok && !typeMatches(t, v) {
		add("must be " + typeText(t))
		return
	}
	switch x := v.(type) {
	case string:
		if s["format"] == "date-time" {
			if _, err := time.Parse(time.RFC3339Nano, x); err != nil {
				add("must be an RFC 3339 date-time")
			}
		}
		n := utf8.RuneCountInString(x)
		if m, ok := num(s["minLength"]); ok && float64(n) < m {
			add(fmt.Sprintf("must be at least %v characters", m))
		}
		if m, ok := num(s["maxLength"]); ok && float64(n) > m {
			add(fmt.Sprintf("must be at most %v characters", m))
		}
	case json.Number:
		f, _ := x.Float64()
		if m, ok := num(s["minimum"]); ok && f < m {
			add(fmt.Sprintf("must be at least %v", m))
		}
		if m, ok := num(s["maximum"]); ok && f > m {
			add(fmt.Sprintf("must be at most %v", m))
		}
	case []any:
		if items, ok := s["items"].(map[string]any); ok {
			for i, e := range x {
				check(items, e, path+"["+strconv.Itoa(i)+"]", depth+1, out)
			}
		}
	case map[string]any:
		props, _ := s["properties"].(map[string]any)
		for _, r := range stringList(s["required"]) {
			if _, ok := x[r]; !ok {
				*out = append(*out, FieldError{Field: join(path, r), Message: "is required"})
			}
		}
		for k, e := range x {
			if ps, ok := props[k].(map[string]any); ok {
				check(ps, e, join(path, k), depth+1, out)
				continue
			}
			switch ap := s["additionalProperties"].(type) {
			case bool:
				if !ap {
					*out = append(*out, FieldError{Field: join(path, k), Message: "is not a known field"})
				}
			case map[string]any:
				check(ap, e, join(path, k), depth+1, out)
			}
		}
	}
}

// stringList reads a "required" list, built ([]string) or decoded ([]any).
func stringList(v any) []string {
	switch x := v.(type) {
	case []string:
		return x
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func num(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

func typeMatches(t, v any) bool {
	switch x := t.(type) {
	case string:
		return oneType(x, v)
	case []any:
		for _, e := range x {
			if s, ok := e.(string); ok && oneType(s, v) {
				return true
			}
		}
		return false
	case []string:
		for _, s := range x {
			if oneType(s, v) {
				return true
			}
		}
		return false
	}
	return true
}

func oneType(t string, v any) bool {
	switch t {
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "number":
		_, ok := v.(json.Number)
		return ok
	case "integer":
		n, ok := v.(json.Number)
		if !ok {
			return false
		}
		_, err := strconv.ParseInt(n.String(), 10, 64)
		return err == nil
	case "array":
		_, ok := v.([]any)
		return ok
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "null":
		return v == nil
	}
	return true
}

func typeText(t any) string {
	switch x := t.(type) {
	case string:
		return article(x)
	case []any:
		s := ""
		for i, e := range x {
			if i > 0 {
				s += " or "
			}
			s += article(fmt.Sprint(e))
		}
		return s
	}
	return fmt.Sprint(t)
}

func article(t string) string {
	switch t {
	case "integer", "object", "array":
		return "an " + t
	case "null":
		return "null"
	}
	return "a " + t
}

func inEnum(enum []any, v any) bool {
	for _, e := range enum {
		if fmt.Sprint(e) == fmt.Sprint(v) {
			return true
		}
	}
	return false
}

func enumText(enum []any) string {
	s := ""
	for i, e := range enum {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprint(e)
	}
	return s
}
