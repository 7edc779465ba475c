package signatures

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"unicode"
)

// Instructioner may be implemented by the input struct of SignatureFor to
// give the signature's instructions.
type Instructioner interface {
	Instructions() string
}

var historyType = reflect.TypeFor[History]()

// SignatureFor builds a signature from two structs: the exported fields of
// In are the inputs, those of Out the outputs, in declaration order. Tags:
//
//	json:"name"        the field name (default: the Go name in snake_case)
//	dspy:"input"       optional role check ("input" on In, "output" on Out); "-" skips the field
//	desc:"..."         the description shown to the model
//	prefix:"..."       DSPy's display prefix (kept in saved state)
//	enum:"a,b,c"       makes a string field an enum (Literal['a', 'b', 'c'])
//	default:"..."      the field's Default, read as its type (DSPy's InputField(default=...))
//
// Go types map to field types: string, ints, floats, bool, slices (list[T]),
// structs and maps with string keys (JSON objects, with a generated JSON
// schema), and History. Instructions come from In's Instructions method
// when it has one, otherwise DSPy's default.
func SignatureFor[In, Out any]() (Signature, error) {
	ins, err := structFields(reflect.TypeFor[In](), "input")
	if err != nil {
		return Signature{}, err
	}
	outs, err := structFields(reflect.TypeFor[Out](), "output")
	if err != nil {
		return Signature{}, err
	}
	instr := ""
	var in In
	if i, ok := any(in).(Instructioner); ok {
		instr = i.Instructions()
	}
	return New(ins, outs, instr)
}

type structField struct {
	Field
	index []int
}

func structFields(t reflect.Type, role string) ([]Field, error) {
	sfs, err := structFieldsIndexed(t, role)
	if err != nil {
		return nil, err
	}
	fs := make([]Field, len(sfs))
	for i, sf := range sfs {
		fs[i] = sf.Field
	}
	return fs, nil
}

func structFieldsIndexed(t reflect.Type, role string) ([]structField, error) {
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("%w: %s type %s is not a struct", ErrInvalidSignature, role, t)
	}
	var out []structField
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("dspy")
		if !sf.IsExported() || tag == "-" {
			continue
		}
		if tag != "" && tag != role {
			return nil, fmt.Errorf("%w: field %s.%s is tagged %q but belongs to the %ss", ErrInvalidSignature, t.Name(), sf.Name, tag, role)
		}
		name := snake(sf.Name)
		if j, _, _ := strings.Cut(sf.Tag.Get("json"), ","); j != "" && j != "-" {
			name = j
		}
		ft, err := goType(sf.Type, 0)
		if err != nil {
			return nil, fmt.Errorf("%w: field %s.%s: %v", ErrInvalidSignature, t.Name(), sf.Name, err)
		}
		if enum := sf.Tag.Get("enum"); enum != "" {
			if ft.Kind != KindString {
				return nil, fmt.Errorf("%w: field %s.%s: enum tag on a non-string field", ErrInvalidSignature, t.Name(), sf.Name)
			}
			ft = Enum(strings.Split(enum, ",")...)
		}
		f := Field{Name: name, Type: ft, Desc: sf.Tag.Get("desc"), Prefix: sf.Tag.Get("prefix")}
		if d, ok := sf.Tag.Lookup("default"); ok {
			v, err := ft.parseText(d)
			if err != nil {
				return nil, fmt.Errorf("%w: field %s.%s: default %q: %v", ErrInvalidSignature, t.Name(), sf.Name, d, err)
			}
			f.Default = v
		}
		out = append(out, structField{Field: f, index: sf.Index})
	}
	return out, nil
}

func goType(t reflect.Type, depth int) (Type, error) {
	if depth > 16 {
		return Type{}, fmt.Errorf("type %s nests too deeply", t)
	}
	if t == historyType {
		return HistoryType, nil
	}
	switch t.Kind() {
	case reflect.String:
		return String, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return Int, nil
	case reflect.Float32, reflect.Float64:
		return Float, nil
	case reflect.Bool:
		return Bool, nil
	case reflect.Pointer:
		// A pointer may be nil: Optional[T], as pydantic reads T | None.
		e, err := goType(t.Elem(), depth+1)
		if err != nil || e.Kind == KindHistory {
			return e, err
		}
		return OptionalOf(e), nil
	case reflect.Slice, reflect.Array:
		elem, err := goType(t.Elem(), depth+1)
		if err != nil {
			return Type{}, err
		}
		return List(elem), nil
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return Type{}, fmt.Errorf("map key type %s is not string", t.Key())
		}
		return Dict, nil
	case reflect.Struct:
		schema, err := structSchema(t, depth)
		if err != nil {
			return Type{}, err
		}
		raw, err := json.Marshal(schema)
		if err != nil {
			return Type{}, err
		}
		return Type{Kind: KindObject, Name: t.Name(), Schema: raw}, nil
	}
	return Type{}, fmt.Errorf("unsupported type %s", t)
}

// structSchema is the JSON schema of a struct as encoding/json sees it.
func structSchema(t reflect.Type, depth int) (map[string]any, error) {
	props := map[string]any{}
	var required []string
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		ft, err := goType(sf.Type, depth+1)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", sf.Name, err)
		}
		ps := ft.JSONSchema()
		ps["title"] = pyTitle(name)
		props[name] = ps
		if !strings.Contains(opts, "omitempty") {
			required = append(required, name)
		}
	}
	// Titles as pydantic writes them: the model's name, and each field's
	// name title-cased.
	s := map[string]any{"type": "object", "properties": props, "title": t.Name()}
	if len(required) > 0 {
		s["required"] = required
	}
	return s, nil
}

// Typed wraps a module built on SignatureFor[In, Out] so callers pass an In
// and get an Out instead of Values.
type Typed[In, Out any] struct {
	// Module is the wrapped module; it appears in Predictors.
	Module Module
	ins    []structField
	outs   []structField
}

// NewTyped builds the signature of In and Out and the module over it, e.g.
// NewTyped[Q, A](func(s Signature) (Module, error) { return NewPredict(s, opts), nil }).
func NewTyped[In, Out any](build func(Signature) (Module, error)) (*Typed[In, Out], error) {
	sig, err := SignatureFor[In, Out]()
	if err != nil {
		return nil, err
	}
	ins, err := structFieldsIndexed(reflect.TypeFor[In](), "input")
	if err != nil {
		return nil, err
	}
	outs, err := structFieldsIndexed(reflect.TypeFor[Out](), "output")
	if err != nil {
		return nil, err
	}
	m, err := build(sig)
	if err != nil {
		return nil, err
	}
	return &Typed[In, Out]{Module: m, ins: ins, outs: outs}, nil
}

// Predictors lists the wrapped module's predictors.
func (t *Typed[In, Out]) Predictors() []NamedPredictor { return Predictors(t.Module) }

// Forward runs the wrapped module on Values, so a Typed is a Module too.
func (t *Typed[In, Out]) Forward(ctx context.Context, in Values) (Values, error) {
	return t.Module.Forward(ctx, in)
}

// Call converts in to Values, runs the module and fills an Out from its
// outputs.
func (t *Typed[In, Out]) Call(ctx context.Context, in In) (Out, error) {
	var out Out
	iv := reflect.ValueOf(in)
	vals := Values{}
	for _, f := range t.ins {
		vals[f.Name] = iv.FieldByIndex(f.index).Interface()
	}
	res, err := t.Module.Forward(ctx, vals)
	if err != nil {
		return out, err
	}
	ov := reflect.ValueOf(&out).Elem()
	for _, f := range t.outs {
		v, ok := res[f.Name]
		if !ok {
			return out, fmt.Errorf("%w: output %q is missing", ErrParse, f.Name)
		}
		if err := assign(ov.FieldByIndex(f.index), v); err != nil {
			return out, fmt.Errorf("output %q: %w", f.Name, err)
		}
	}
	return out, nil
}

// assign stores a parsed value into a Go field: scalars by conversion,
// anything else through JSON.
func assign(dst reflect.Value, v any) error {
	rv := reflect.ValueOf(v)
	if rv.IsValid() && rv.Type().ConvertibleTo(dst.Type()) && rv.Kind() != reflect.Slice && rv.Kind() != reflect.Map &&
		(rv.Kind() == reflect.String) == (dst.Kind() == reflect.String) {
		dst.Set(rv.Convert(dst.Type()))
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, dst.Addr().Interface())
}

// pyTitle is pydantic's default field title: Python's str.title() of the
// name, underscores turned into spaces ("first_name" -> "First Name").
func pyTitle(name string) string {
	var b strings.Builder
	prevLetter := false
	for _, r := range name {
		switch {
		case unicode.IsLetter(r) && !prevLetter:
			b.WriteRune(unicode.ToUpper(r))
		case unicode.IsLetter(r):
			b.WriteRune(unicode.ToLower(r))
		case r == '_':
			b.WriteRune(' ')
		default:
			b.WriteRune(r)
		}
		prevLetter = unicode.IsLetter(r)
	}
	return b.String()
}
