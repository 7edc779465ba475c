package signatures

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
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
	// KindUnion is one of several types, Alts (Union[int, str], int | str).
	KindUnion
	// KindTuple is a JSON array of exactly len(Items) values, the i-th of
	// type Items[i] (tuple[int, str]).
	KindTuple
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
	// Alts are a union's alternatives, None excluded, in order.
	Alts []Type
	// Items are a tuple's element types, in order.
	Items []Type
	// Optional admits None as a value (Optional[T], T | None). A missing
	// optional output parses as nil.
	Optional bool
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

// OptionalOf returns t that also admits None (Optional[T]).
func OptionalOf(t Type) Type {
	t.Optional = true
	return t
}

// Union returns the union of alts; a None among them makes it Optional.
// Nested unions are flattened and a single alternative is returned as is.
func Union(alts ...Type) Type {
	var out Type
	var flat []Type
	for _, a := range alts {
		out.Optional = out.Optional || a.Optional
		a.Optional = false
		if a.Kind == KindUnion {
			flat = append(flat, a.Alts...)
			continue
		}
		flat = append(flat, a)
	}
	flat = slices.CompactFunc(flat, func(a, b Type) bool { return a.String() == b.String() })
	if len(flat) == 1 {
		flat[0].Optional = out.Optional
		return flat[0]
	}
	out.Kind, out.Alts = KindUnion, flat
	return out
}

// Tuple returns a tuple type of items.
func Tuple(items ...Type) Type {
	return Type{Kind: KindTuple, Items: slices.Clone(items)}
}

// isStr reports whether t is exactly str: DSPy gives every other type a
// type note and a Python type hint.
func (t Type) isStr() bool { return t.Kind == KindString && !t.Optional }

// List returns a list type of elem.
func List(elem Type) Type {
	e := elem
	return Type{Kind: KindList, Elem: &e}
}

// quoteLiteral quotes an enum option as DSPy's
// _quoted_string_for_literal_type_annotation does (dspy/adapters/utils.py):
// double quotes around a value with only single quotes, single quotes
// otherwise, escaping single quotes when both kinds occur.
//
// A backslash is doubled, which DSPy does not do, so that the quoted form
// parses back to the same option.
func quoteLiteral(o string) string {
	o = strings.ReplaceAll(o, `\`, `\\`)
	hasSingle, hasDouble := strings.Contains(o, "'"), strings.Contains(o, `"`)
	switch {
	case hasSingle && !hasDouble:
		return `"` + o + `"`
	case hasSingle && hasDouble:
		return "'" + strings.ReplaceAll(o, "'", `\'`) + "'"
	}
	return "'" + o + "'"
}

// String renders the type as DSPy names it in prompts: str, int, float,
// bool, list[T], Literal['a', 'b'], dict or an object's name, History,
// tuple[A, B], Union[A, B]. An optional type is Optional[T], or a Union
// ending in None; DSPy writes Python's own Union[T, NoneType] there, which
// kowai deliberately does not copy (a model reads Optional[T] better).
func (t Type) String() string {
	if t.Optional {
		inner := t
		inner.Optional = false
		if t.Kind == KindUnion {
			return strings.TrimSuffix(inner.String(), "]") + ", None]"
		}
		return "Optional[" + inner.String() + "]"
	}
	switch t.Kind {
	case KindUnion:
		names := make([]string, len(t.Alts))
		for i, a := range t.Alts {
			names[i] = a.String()
		}
		return "Union[" + strings.Join(names, ", ") + "]"
	case KindTuple:
		names := make([]string, len(t.Items))
		for i, a := range t.Items {
			names[i] = a.String()
		}
		if len(names) == 0 {
			return "tuple[()]"
		}
		return "tuple[" + strings.Join(names, ", ") + "]"
	case KindInt:
		return "int"
	case KindFloat:
		return "float"
	case KindBool:
		return "bool"
	case KindEnum:
		quoted := make([]string, len(t.Options))
		for i, o := range t.Options {
			quoted[i] = quoteLiteral(o)
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
	if t.Optional {
		inner := t
		inner.Optional = false
		s := inner.JSONSchema()
		if alts, ok := s["anyOf"].([]any); ok && len(s) == 1 {
			return map[string]any{"anyOf": append(alts, map[string]any{"type": "null"})}
		}
		return map[string]any{"anyOf": []any{s, map[string]any{"type": "null"}}}
	}
	switch t.Kind {
	case KindUnion:
		alts := make([]any, len(t.Alts))
		for i, a := range t.Alts {
			alts[i] = a.JSONSchema()
		}
		return map[string]any{"anyOf": alts}
	case KindTuple:
		items := make([]any, len(t.Items))
		for i, a := range t.Items {
			items[i] = a.JSONSchema()
		}
		return map[string]any{"type": "array", "prefixItems": items, "minItems": len(items), "maxItems": len(items)}
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
	if t.Optional || t.Kind == KindUnion || t.Kind == KindTuple {
		return "# note: the value you produce must adhere to the JSON schema: " + compactJSON(t.JSONSchema())
	}
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

// compactJSON renders a JSON schema as DSPy's type notes do
// (dspy/adapters/utils.py, _get_json_schema and translate_field_type):
// json.dumps separators ", " and ": ", no ASCII escaping, and every
// object's keys sorted with "type" first.
func compactJSON(v any) string {
	var b strings.Builder
	writePyJSON(&b, v, true)
	return b.String()
}

// pyJSON renders a value as Python's json.dumps(value, ensure_ascii=False)
// does: ", " and ": " separators, floats with their decimal point. Maps
// have sorted keys; structs keep their field order.
func pyJSON(v any) string {
	var b strings.Builder
	writePyJSON(&b, v, false)
	return b.String()
}

func writePyJSON(b *strings.Builder, v any, schema bool) {
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case string:
		writeJSONString(b, x)
	case float64:
		b.WriteString(pyFloat(x))
	case float32:
		b.WriteString(pyFloat(float64(x)))
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		fmt.Fprint(b, x)
	case json.Number:
		b.WriteString(x.String())
	case []any:
		b.WriteByte('[')
		for i, it := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			writePyJSON(b, it, schema)
		}
		b.WriteByte(']')
	case []string:
		b.WriteByte('[')
		for i, it := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			writeJSONString(b, it)
		}
		b.WriteByte(']')
	case map[string]any:
		keys := slices.Collect(maps.Keys(x))
		slices.SortFunc(keys, func(a, c string) int {
			if schema && (a == "type") != (c == "type") {
				if a == "type" {
					return -1
				}
				return 1
			}
			return strings.Compare(a, c)
		})
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			writeJSONString(b, k)
			b.WriteString(": ")
			writePyJSON(b, x[k], schema)
		}
		b.WriteByte('}')
	case Values:
		writePyJSON(b, map[string]any(x), schema)
	default:
		// Structs and other Go values: through encoding/json, keeping the
		// order of its output (struct field order).
		raw, err := json.Marshal(v)
		if err != nil {
			b.WriteString(fmt.Sprint(v))
			return
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := rewriteJSON(b, dec); err != nil {
			b.Reset()
			b.Write(raw)
		}
	}
}

// rewriteJSON copies one JSON value from dec to b with Python's separators,
// keeping the order of object keys.
func rewriteJSON(b *strings.Builder, dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch t := tok.(type) {
	case json.Delim:
		closer := map[json.Delim]byte{'[': ']', '{': '}'}[t]
		b.WriteByte(byte(t))
		for i := 0; dec.More(); i++ {
			if i > 0 {
				b.WriteString(", ")
			}
			if t == '{' {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				writeJSONString(b, k.(string))
				b.WriteString(": ")
			}
			if err := rewriteJSON(b, dec); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil {
			return err
		}
		b.WriteByte(closer)
	default:
		writePyJSON(b, t, false)
	}
	return nil
}

// writeJSONString writes s as a JSON string without HTML or non-ASCII
// escaping, as json.dumps(..., ensure_ascii=False) does.
func writeJSONString(b *strings.Builder, s string) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		b.WriteString(strconv.Quote(s))
		return
	}
	b.Write(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

// pyFloat formats a float as Python's repr does: the shortest digits that
// read back, a decimal point on whole values (1.0), and scientific notation
// below 1e-4 and from 1e16 on.
func pyFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		return "nan"
	}
	if a := math.Abs(f); a != 0 && (a < 1e-4 || a >= 1e16) {
		s := strconv.FormatFloat(f, 'e', -1, 64)
		// Go writes 1e+16 and 1.5e-05 as Python does.
		return s
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	return s
}

// formatValue renders an input or demo value as DSPy's format_field_value
// does (dspy/adapters/utils.py): text as is, None, bools as True/False,
// floats as Python writes them (1.0), lists and objects as json.dumps.
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
		return pyFloat(x)
	case float32:
		return pyFloat(float64(x))
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return fmt.Sprint(x)
	case fmt.Stringer:
		return x.String()
	default:
		return pyJSON(v)
	}
}

// formatInput is formatValue for a field; a list given to a field typed
// exactly str becomes DSPy's numbered list of «blobs»
// (_format_input_list_field_value).
func formatInput(v any, text bool) string {
	if !text {
		return formatValue(v)
	}
	var items []string
	switch x := v.(type) {
	case []string:
		items = x
	case []any:
		items = make([]string, len(x))
		for i, it := range x {
			items[i] = formatValue(it)
		}
	default:
		return formatValue(v)
	}
	switch len(items) {
	case 0:
		return "N/A"
	case 1:
		return formatBlob(items[0])
	}
	var b strings.Builder
	for i, it := range items {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "[%d] %s", i+1, formatBlob(it))
	}
	return b.String()
}

// formatBlob is DSPy's _format_blob: «text», or a fenced block when the text
// spans lines or holds guillemets.
func formatBlob(s string) string {
	if !strings.ContainsAny(s, "\n«»") {
		return "«" + s + "»"
	}
	return "«««\n    " + strings.ReplaceAll(s, "\n", "\n    ") + "\n»»»"
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
		// As DSPy: str | None keeps the text, even "None".
		return s, nil
	}
	s = stripFences(s)
	if t.Optional {
		switch strings.TrimSpace(strings.Trim(s, "\"'`*.")) {
		case "", "None", "null", "none", "NULL":
			return nil, nil
		}
		inner := t
		inner.Optional = false
		return inner.parseText(s)
	}
	switch t.Kind {
	case KindUnion:
		return t.parseUnion(s)
	case KindTuple:
		v, err := decodeStructured(s)
		if err != nil {
			return nil, err
		}
		return t.coerce(v)
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

// decodeStructured reads a list or object value: JSON, or, as DSPy falls
// back to json_repair and ast.literal_eval, a Python literal (single
// quotes, True/False/None, tuples, numeric underscores). parsePyLiteral
// reads both: it is a superset of JSON that reads every JSON document as
// encoding/json does (FuzzPyLiteral checks it), in one pass, so the lenient
// path costs what the strict one does.
func decodeStructured(s string) (any, error) {
	v, err := parsePyLiteral(s)
	if err != nil {
		return nil, fmt.Errorf("not valid JSON nor a Python literal: %w", err)
	}
	return v, nil
}

// parseUnion tries the alternatives in order, text ones last (they accept
// anything), on the text as a JSON or Python literal when it is one, as
// pydantic validates DSPy's json_repair candidate.
func (t Type) parseUnion(s string) (any, error) {
	var errs []string
	for _, last := range []bool{false, true} {
		for _, a := range t.Alts {
			if (a.Kind == KindString) != last {
				continue
			}
			v, err := a.parseText(s)
			if err == nil {
				return v, nil
			}
			errs = append(errs, a.String()+": "+err.Error())
		}
	}
	return nil, fmt.Errorf("fits none of %s (%s)", t, strings.Join(errs, "; "))
}

// coerce converts a decoded JSON value (or a plain string) to t's Go
// representation: string, int, float64, bool, nil (optional), []any or
// map[string]any.
func (t Type) coerce(v any) (any, error) {
	if v == nil && t.Optional {
		return nil, nil
	}
	switch t.Kind {
	case KindUnion:
		var errs []string
		for _, last := range []bool{false, true} {
			for _, a := range t.Alts {
				if (a.Kind == KindString) != last {
					continue
				}
				if s, ok := v.(string); ok && a.Kind != KindString {
					if c, err := a.parseText(s); err == nil {
						return c, nil
					}
				}
				c, err := a.coerce(v)
				if err == nil {
					return c, nil
				}
				errs = append(errs, a.String()+": "+err.Error())
			}
		}
		return nil, fmt.Errorf("fits none of %s (%s)", t, strings.Join(errs, "; "))
	case KindTuple:
		items, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("want a JSON array, got %T", jsonPlain(v))
		}
		if len(items) != len(t.Items) {
			return nil, fmt.Errorf("want %d items, got %d", len(t.Items), len(items))
		}
		out := make([]any, len(items))
		for i, it := range items {
			c, err := t.Items[i].coerce(it)
			if err != nil {
				return nil, fmt.Errorf("item %d: %w", i, err)
			}
			out[i] = c
		}
		return out, nil
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

// hasNumber reports whether v holds a json.Number.
func hasNumber(v any) bool {
	switch x := v.(type) {
	case json.Number:
		return true
	case []any:
		for _, it := range x {
			if hasNumber(it) {
				return true
			}
		}
	case map[string]any:
		for _, it := range x {
			if hasNumber(it) {
				return true
			}
		}
	}
	return false
}

// jsonPlain replaces json.Number (from a UseNumber decoder) by int when
// whole, float64 otherwise, recursively.
func jsonPlain(v any) any {
	if !hasNumber(v) {
		// Values that need no change are returned as they are, without a
		// copy: parsed replies hold none.
		return v
	}
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
