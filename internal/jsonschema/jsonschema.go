// Package jsonschema derives JSON schemas (the 2020-12 subset kowai uses)
// from Go types by reflection, and validates JSON documents against them.
//
// One Go type is the single source of truth for a shape: the gateway's
// OpenAPI document and the workflow engine's parameter schemas both come
// from Builder, and Validate checks untrusted input against what it built.
//
// Derivation rules: exported fields named by their json tag; a field is
// required unless it is a pointer or tagged omitempty/omitzero; objects
// forbid additional properties; a `doc:"..."` tag becomes the description;
// time.Time is a date-time string and json.RawMessage accepts anything.
package jsonschema

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"time"
)

var (
	timeType    = reflect.TypeFor[time.Time]()
	rawJSONType = reflect.TypeFor[json.RawMessage]()
)

// Builder derives schemas. With Components set, named struct types are
// stored there once and referenced as {"$ref": RefPrefix + name}; with
// Components nil every schema is inline (self-contained), which is what a
// validator needs. A zero Builder is ready to use (inline).
type Builder struct {
	// Components collects named struct schemas; nil inlines them.
	Components map[string]any
	// RefPrefix prefixes component references, e.g. "#/components/schemas/".
	RefPrefix string

	// inlining tracks the named types being inlined, to stop on recursion.
	inlining map[reflect.Type]bool
}

// For returns the inline schema of T.
func For[T any]() map[string]any {
	var b Builder
	return b.Schema(reflect.TypeFor[T]())
}

// Schema returns the JSON schema of t.
func (b *Builder) Schema(t reflect.Type) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t == rawJSONType:
		return map[string]any{}
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		return map[string]any{"type": "array", "items": b.Schema(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": b.Schema(t.Elem())}
	case reflect.Struct:
		if t.Name() == "" {
			return b.Object(t)
		}
		if b.Components == nil {
			if b.inlining[t] {
				return map[string]any{"type": "object"} // recursive type: stop here
			}
			if b.inlining == nil {
				b.inlining = map[reflect.Type]bool{}
			}
			b.inlining[t] = true
			defer delete(b.inlining, t)
			return b.Object(t)
		}
		name := t.Name()
		if _, ok := b.Components[name]; !ok {
			b.Components[name] = map[string]any{} // breaks cycles
			b.Components[name] = b.Object(t)
		}
		return map[string]any{"$ref": b.RefPrefix + name}
	}
	return map[string]any{}
}

// Object returns the schema of struct type t, always inline at the top.
func (b *Builder) Object(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []string
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		s := b.Schema(f.Type)
		if d := f.Tag.Get("doc"); d != "" {
			s = WithDescription(s, d)
		}
		props[name] = s
		if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") && f.Type.Kind() != reflect.Pointer {
			required = append(required, name)
		}
	}
	sort.Strings(required)
	out := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		out["required"] = required
	}
	return out
}

// WithDescription returns s with description d; a $ref gets it through
// allOf, since siblings of $ref are ignored. s itself is not changed.
func WithDescription(s map[string]any, d string) map[string]any {
	if _, isRef := s["$ref"]; isRef {
		return map[string]any{"allOf": []any{s}, "description": d}
	}
	c := make(map[string]any, len(s)+1)
	for k, v := range s {
		c[k] = v
	}
	c["description"] = d
	return c
}
