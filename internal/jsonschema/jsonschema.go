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
// `minimum:"0"` and `maximum:"2.5"` bound a number, `enum:"a,b"` lists a
// string's values and `default:"..."` documents the value used when the
// field is left out (read as the field's kind); time.Time is a date-time
// string and json.RawMessage accepts anything.
package jsonschema

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
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
		s = withTags(s, f)
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

// withTags returns s with the minimum, maximum, enum and default of field f's
// tags. A tag that does not parse as its field's kind is a programming error
// and panics, like a malformed struct tag elsewhere.
func withTags(s map[string]any, f reflect.StructField) map[string]any {
	set := func(k string, v any) {
		c := make(map[string]any, len(s)+1)
		for key, val := range s {
			c[key] = val
		}
		c[k] = v
		s = c
	}
	number := func(tag, v string) float64 {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			panic(fmt.Sprintf("jsonschema: field %s: %s tag %q: %v", f.Name, tag, v, err))
		}
		return n
	}
	for _, k := range []string{"minimum", "maximum"} {
		if v, ok := f.Tag.Lookup(k); ok {
			set(k, number(k, v))
		}
	}
	if v, ok := f.Tag.Lookup("enum"); ok {
		var enum []any
		for _, e := range strings.Split(v, ",") {
			enum = append(enum, e)
		}
		set("enum", enum)
	}
	if v, ok := f.Tag.Lookup("default"); ok {
		t := f.Type
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch t.Kind() {
		case reflect.String:
			set("default", v)
		case reflect.Bool:
			set("default", v == "true")
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
			reflect.Float32, reflect.Float64:
			set("default", number("default", v))
		default:
			panic(fmt.Sprintf("jsonschema: field %s: default tag on a %s", f.Name, t.Kind()))
		}
	}
	return s
}
