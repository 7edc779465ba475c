package offline

import (
	"encoding/json"
	"math"
	"strings"
)

// asSchema normalises a tool's Parameters (a map, a struct, raw JSON) to a
// decoded JSON schema, or nil when it is not a JSON object. Maps go through
// JSON too, so numbers are float64 whatever Go type the caller used.
func asSchema(params any) map[string]any {
	var raw []byte
	switch p := params.(type) {
	case nil:
		return nil
	case json.RawMessage:
		raw = p
	case []byte:
		raw = p
	case string:
		raw = []byte(p)
	default:
		b, err := json.Marshal(p)
		if err != nil {
			return nil
		}
		raw = b
	}
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return nil
	}
	return m
}

// minimalValue returns the smallest value that the JSON schema s accepts:
// empty arrays and strings, zero numbers, false, objects with only their
// required properties. root resolves local "$ref"s. It covers the schema
// features that generated signatures use, not all of JSON Schema.
func minimalValue(root, s map[string]any) any {
	if ref, ok := s["$ref"].(string); ok {
		if target := resolveRef(root, ref); target != nil {
			return minimalValue(root, target)
		}
		return nil
	}
	if c, ok := s["const"]; ok {
		return c
	}
	if enum, ok := s["enum"].([]any); ok && len(enum) > 0 {
		return enum[0]
	}
	for _, key := range []string{"anyOf", "oneOf", "allOf"} {
		if alts, ok := s[key].([]any); ok && len(alts) > 0 {
			if first, ok := alts[0].(map[string]any); ok {
				return minimalValue(root, first)
			}
		}
	}
	switch schemaType(s) {
	case "object":
		obj := map[string]any{}
		props, _ := s["properties"].(map[string]any)
		req, _ := s["required"].([]any)
		for _, r := range req {
			name, _ := r.(string)
			prop, _ := props[name].(map[string]any)
			obj[name] = minimalValue(root, prop)
		}
		return obj
	case "array":
		items, _ := s["items"].(map[string]any)
		// A tuple's schema (tuple[int, str]) gives each position its own.
		prefix, _ := s["prefixItems"].([]any)
		arr := []any{}
		for i := range max(int(number(s, "minItems")), len(prefix)) {
			item := items
			if i < len(prefix) {
				item, _ = prefix[i].(map[string]any)
			}
			arr = append(arr, minimalValue(root, item))
		}
		return arr
	case "string":
		return strings.Repeat("a", int(number(s, "minLength")))
	case "integer":
		return int64(math.Ceil(minimalNumber(s, 1)))
	case "number":
		return minimalNumber(s, 1e-9)
	case "boolean":
		return false
	}
	return nil
}

func schemaType(s map[string]any) string {
	switch t := s["type"].(type) {
	case string:
		return t
	case []any:
		for _, x := range t {
			if name, ok := x.(string); ok && name != "null" {
				return name
			}
		}
		return "null"
	}
	if _, ok := s["properties"]; ok {
		return "object"
	}
	if _, ok := s["items"]; ok {
		return "array"
	}
	return ""
}

// minimalNumber is 0 moved into [minimum, maximum]; step keeps an exclusive
// bound exclusive.
func minimalNumber(s map[string]any, step float64) float64 {
	v := 0.0
	if lo, ok := s["minimum"].(float64); ok && v < lo {
		v = lo
	}
	if lo, ok := s["exclusiveMinimum"].(float64); ok && v <= lo {
		v = lo + step
	}
	if hi, ok := s["maximum"].(float64); ok && v > hi {
		v = hi
	}
	if hi, ok := s["exclusiveMaximum"].(float64); ok && v >= hi {
		v = hi - step
	}
	return v
}

func number(s map[string]any, key string) float64 {
	n, _ := s[key].(float64)
	return n
}

// resolveRef follows a local reference such as "#/$defs/Item".
func resolveRef(root map[string]any, ref string) map[string]any {
	path, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil
	}
	var cur any = root
	for _, part := range strings.Split(path, "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[strings.NewReplacer("~1", "/", "~0", "~").Replace(part)]
	}
	m, _ := cur.(map[string]any)
	return m
}
