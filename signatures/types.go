package signatures

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Kind is the shape of a field's value.
type Kind uint8

// The kinds a field can have.
const (
	// KindString is free text (the default).
	KindString Kind = iota
	// KindInt is a whole number.
	KindInt
	// KindFloat is a number.
	KindFloat
	// KindBool is True or False.
	KindBool
	// KindEnum is one of a fixed set of strings (Literal['a', 'b']).
	KindEnum
	// KindList is a JSON array of Elem values.
	KindList
	// KindObject is a JSON object, optionally described by a JSON schema.
	KindObject
	// KindHistory is a conversation history; only valid as an input. It is
	// rendered as prior user/assistant turns rather than as a field block.
	KindHistory
)

// Type is a field's type. The zero value is a string.
type Type struct {
	// Kind is the shape of the value.
	Kind Kind
	// Elem is the element type of a list.
	Elem *Type
	// Options are the allowed values of an enum, in order.
	Options []string
	// Name names an object type in prompts ("dict" when empty); for Go
	// structs it is the struct's type name.
	Name string
	// Schema is the JSON schema of an object; nil accepts any object.
	Schema json.RawMessage
}

// Convenience types for building fields by hand.
var (
	// String is the str type.
	String = Type{Kind: KindString}
	// Int is the int type.
	Int = Type{Kind: KindInt}
	// Float is the float type.
	Float = Type{Kind: KindFloat}
	// Bool is the bool type.
	Bool = Type{Kind: KindBool}
	// Dict is an unconstrained JSON object (dict[str, Any]).
	Dict = Type{Kind: KindObject, Name: "dict[str, Any]"}
	// HistoryType is the conversation-history input type.
	HistoryType = Type{Kind: KindHistory}
)

// Enum returns an enum type over options.
func Enum(options ...string) Type {
	return Type{Kind: KindEnum, Options: append([]string(nil), options...)}
}

// List returns a list type of elem.
func List(elem Type) Type {
	e := elem
	return Type{Kind: KindList, Elem: &e}
}

var enumEscaper = strings.NewReplacer(`\`, `\\`, "'", `\'`)

// String renders the type as DSPy names it in prompts: str, int, float,
// bool, list[T], Literal['a', 'b'], dict or an object's name, History.
func (t Type) String() string {
	switch t.Kind {
	case KindInt:
		return "int"
	case KindFloat:
		return "float"
	case KindBool:
		return "bool"
	case KindEnum:
		quoted := make([]string, len(t.Options))
		for i, o := range t.Options {
			quoted[i] = "'" + enumEscaper.Replace(o) + "'"
		}
		return "Literal[" + strings.Join(quoted, ", ") + "]"
	case KindList:
		return "list[" + t.elem().String() + "]"
	case KindObject:
		if t.Name == "" {
			return "dict"
		}
		return t.Name
	case KindHistory:
		return "History"
	default:
		return "str"
	}
}

func (t Type) elem() Type {
	if t.Elem == nil {
		return String
	}
	return *t.Elem
}

// JSONSchema returns the JSON schema of the type, as used in the type note of
// list and object outputs.
func (t Type) JSONSchema() map[string]any {
	switch t.Kind {
	case KindInt:
		return map[string]any{"type": "integer"}
	case KindFloat:
		return map[string]any{"type": "number"}
	case KindBool:
		return map[string]any{"type": "boolean"}
	case KindEnum:
		return map[string]any{"type": "string", "enum": t.Options}
	case KindList:
		return map[string]any{"type": "array", "items": t.elem().JSONSchema()}
	case KindObject:
		if len(t.Schema) > 0 {
			var s map[string]any
			if json.Unmarshal(t.Schema, &s) == nil {
				return s
			}
		}
		return map[string]any{"type": "object", "additionalProperties": true}
	default:
		return map[string]any{"type": "string"}
	}
}

// note is the type note of an output field in the system message.
func (t Type) note() string {
	switch t.Kind {
	case KindInt, KindFloat:
		return "# note: the value you produce must be a single " + t.String() + " value"
	case KindBool:
		return "# note: the value you produce must be True or False"
	case KindEnum:
		return "# note: the value you produce must exactly match (no extra characters) one of: " + strings.Join(t.Options, "; ")
	case KindList, KindObject:
		return "# note: the value you produce must adhere to the JSON schema: " + compactJSON(t.JSONSchema())
	default:
		return ""
	}
}

// compactJSON marshals v without HTML escaping; v is always marshalable here
// (maps, slices and scalars decoded from or built as JSON).
func compactJSON(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// formatValue renders an input or demo value: text as is, bools as
// True/False, lists and objects as compact JSON.
func formatValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case string:
		return x
	case bool:
		if x {
			return "True"
		}
		return "False"
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32)
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return fmt.Sprint(x)
	case fmt.Stringer:
		return x.String()
	default:
		return compactJSON(v)
	}
}

// stripFences removes a surrounding Markdown code fence (```json ... ```).
func stripFences(s string) string {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "```") {
		return s
	}
	body := s[3:]
	nl := strings.IndexByte(body, '\n')
	if nl < 0 {
		return strings.TrimSpace(strings.Trim(body, "`"))
	}
	body = body[nl+1:]
	if i := strings.LastIndex(body, "```"); i >= 0 {
		body = body[:i]
	}
	return strings.TrimSpace(body)
}

// parseText coerces a field's raw reply text to t. Strings come back
// trimmed; the other kinds tolerate code fences, quotes and a trailing
// period.
func (t Type) parseText(raw string) (any, error) {
	s := strings.TrimSpace(raw)
	if t.Kind == KindString {
		return s, nil
	}
	s = stripFences(s)
	switch t.Kind {
	case KindList, KindObject:
		v, err := decodeStructured(s)
		if err != nil {
			return nil, err
		}
		return t.coerce(v)
	case KindHistory:
		return nil, fmt.Errorf("a history cannot be an output")
	}
	if t.Kind == KindEnum {
		// As DSPy's parse_value: a model that echoes the type,
		// Literal['yes'] or str['yes'], means its option.
		for _, w := range []string{"Literal[", "str["} {
			if strings.HasPrefix(s, w) && strings.HasSuffix(s, "]") {
				s = strings.TrimSpace(s[len(w) : len(s)-1])
				break
			}
		}
	}
	s = strings.TrimSpace(strings.Trim(s, "\"'`*"))
	s = strings.TrimSuffix(s, ".")
	return t.coerce(s)
}

// decodeStructured reads a list or object value: strict JSON first, then,
// as DSPy falls back to json_repair and ast.literal_eval, a Python literal
// (single quotes, True/False/None, tuples, numeric underscores). The error
// names both failures when neither reads it.
func decodeStructured(s string) (any, error) {
	var v any
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	jerr := dec.Decode(&v)
	if jerr == nil && !dec.More() {
		return v, nil
	}
	if jerr == nil {
		jerr = errors.New("unexpected text after the JSON value")
	}
	pv, perr := parsePyLiteral(s)
	if perr != nil {
		return nil, fmt.Errorf("not valid JSON (%w) nor a Python literal (%w)", jerr, perr)
	}
	return pv, nil
}

// coerce converts a decoded JSON value (or a plain string) to t's Go
// representation: string, int, float64, bool, []any or map[string]any.
func (t Type) coerce(v any) (any, error) {
	switch t.Kind {
	case KindString:
		if s, ok := v.(string); ok {
			return s, nil
		}
		return formatValue(jsonPlain(v)), nil
	case KindInt:
		switch x := v.(type) {
		case json.Number:
			return t.coerce(x.String())
		case float64:
			if x != float64(int(x)) {
				return nil, fmt.Errorf("%v is not a whole number", x)
			}
			return int(x), nil
		case int:
			return x, nil
		case string:
			s := strings.ReplaceAll(strings.TrimSpace(x), "_", "")
			if n, err := strconv.Atoi(s); err == nil {
				return n, nil
			}
			f, err := strconv.ParseFloat(s, 64)
			if err != nil || f != float64(int(f)) {
				return nil, fmt.Errorf("%q is not an int", x)
			}
			return int(f), nil
		}
	case KindFloat:
		switch x := v.(type) {
		case json.Number:
			return t.coerce(x.String())
		case float64:
			return x, nil
		case int:
			return float64(x), nil
		case string:
			x = strings.TrimSpace(x)
			clean := x
			if strings.Contains(x, "_") && validUnderscores(x) {
				// Python's 123_456.789.
				clean = strings.ReplaceAll(x, "_", "")
			}
			f, err := strconv.ParseFloat(clean, 64)
			if err != nil {
				return nil, fmt.Errorf("%q is not a float", x)
			}
			return f, nil
		}
	case KindBool:
		switch x := v.(type) {
		case bool:
			return x, nil
		case string:
			switch strings.ToLower(strings.TrimSpace(x)) {
			case "true", "yes", "y", "1":
				return true, nil
			case "false", "no", "n", "0":
				return false, nil
			}
			return nil, fmt.Errorf("%q is not True or False", x)
		}
	case KindEnum:
		if s, ok := v.(string); ok {
			s = strings.TrimSpace(s)
			for _, o := range t.Options {
				if strings.EqualFold(o, s) {
					return o, nil
				}
			}
			return nil, fmt.Errorf("%q is not one of: %s", s, strings.Join(t.Options, "; "))
		}
	case KindList:
		items, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("want a JSON array, got %T", jsonPlain(v))
		}
		out := make([]any, len(items))
		for i, it := range items {
			c, err := t.elem().coerce(it)
			if err != nil {
				return nil, fmt.Errorf("item %d: %w", i, err)
			}
			out[i] = c
		}
		return out, nil
	case KindObject:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("want a JSON object, got %T", jsonPlain(v))
		}
		plain := jsonPlain(m).(map[string]any)
		for _, k := range t.requiredKeys() {
			if _, ok := plain[k]; !ok {
				return nil, fmt.Errorf("missing required key %q", k)
			}
		}
		return plain, nil
	}
	return nil, fmt.Errorf("cannot use %T as %s", jsonPlain(v), t)
}

func (t Type) requiredKeys() []string {
	if len(t.Schema) == 0 {
		return nil
	}
	var s struct {
		Required []string `json:"required"`
	}
	if json.Unmarshal(t.Schema, &s) != nil {
		return nil
	}
	return s.Required
}

// jsonPlain replaces json.Number (from a UseNumber decoder) by int when
// whole, float64 otherwise, recursively.
func jsonPlain(v any) any {
	switch x := v.(type) {
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return int(n)
		}
		if f, err := x.Float64(); err == nil {
			return f
		}
		return x.String()
	case []any:
		out := make([]any, len(x))
		for i, it := range x {
			out[i] = jsonPlain(it)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, it := range x {
			out[k] = jsonPlain(it)
		}
		return out
	}
	return v
}
