package agents

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"

	"github.com/kowai/kowai/internal/jsonschema"
	"github.com/kowai/kowai/signatures"
	"github.com/kowai/kowai/signatures/programs"
)

// Registry holds the agent types a node knows. It is immutable after NewRegistry and
// safe for concurrent use.
type Registry struct {
	types map[string]Type
	// schemas are the types' whole configuration schemas.
	schemas map[string]map[string]any
	names   []string
}

// NewRegistry returns a registry of types, listed in the given order. Errors wrap
// ErrInvalidType.
func NewRegistry(types ...Type) (*Registry, error) {
	r := &Registry{types: make(map[string]Type, len(types)), schemas: make(map[string]map[string]any, len(types))}
	for _, t := range types {
		switch {
		case t.Name == "" || t.New == nil:
			return nil, fmt.Errorf("%w: %q needs a name and a New function", ErrInvalidType, t.Name)
		case r.types[t.Name].Name != "":
			return nil, fmt.Errorf("%w: %q registered twice", ErrInvalidType, t.Name)
		}
		if t.Signature != "" {
			if _, err := signatures.Parse(t.Signature); err != nil {
				return nil, fmt.Errorf("%w: %q: signature: %w", ErrInvalidType, t.Name, err)
			}
		}
		for k := range ownKeys(t) {
			if _, common := commonSchema[k]; common {
				return nil, fmt.Errorf("%w: %q redefines the common config key %q", ErrInvalidType, t.Name, k)
			}
		}
		r.types[t.Name] = t
		r.schemas[t.Name] = fullSchema(t)
		r.names = append(r.names, t.Name)
	}
	return r, nil
}

// Lookup returns the type called name.
func (r *Registry) Lookup(name string) (Type, bool) {
	t, ok := r.types[name]
	return t, ok
}

// Info describes an agent type for GET /api/v1/agents/types.
type Info struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Signature   string `json:"signature"`
	// ConfigSchema is the JSON schema of an agent's "config" object.
	ConfigSchema json.RawMessage `json:"config_schema"`
	// Tools are the tools the type's program may call.
	Tools []ToolInfo `json:"tools,omitempty"`
}

// ToolInfo describes one tool of an agent type.
type ToolInfo struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Args        json.RawMessage `json:"args,omitempty" doc:"JSON schema of the arguments"`
}

// List describes every type, in registration order.
func (r *Registry) List() []Info {
	out := make([]Info, 0, len(r.names))
	for _, name := range r.names {
		t := r.types[name]
		info := Info{Name: t.Name, Description: t.Description, Signature: t.Signature, ConfigSchema: r.configSchema(t)}
		for _, tool := range t.Tools {
			info.Tools = append(info.Tools, ToolInfo{Name: tool.Name, Description: tool.Description, Args: tool.Args})
		}
		out = append(out, info)
	}
	return out
}

// ownKeys are the schema properties of t's own configuration struct.
func ownKeys(t Type) map[string]any {
	if t.Config == nil {
		return nil
	}
	var b jsonschema.Builder
	props, _ := b.Schema(reflect.TypeOf(t.Config))["properties"].(map[string]any)
	return props
}

// fullSchema is the JSON schema of t's configuration object: the common keys and its
// own.
func fullSchema(t Type) map[string]any {
	props := maps.Clone(commonSchema)
	maps.Copy(props, ownKeys(t))
	return map[string]any{"type": "object", "properties": props, "additionalProperties": false}
}

// configSchema is the published JSON schema of t's configuration object.
func (r *Registry) configSchema(t Type) json.RawMessage {
	s := maps.Clone(r.schemas[t.Name])
	s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	b, err := json.Marshal(s)
	if err != nil {
		// Schemas are derived from Go structs; they always marshal.
		panic(fmt.Sprintf("agents: config schema of %s: %v", t.Name, err))
	}
	return b
}

// ParseConfig validates an agent's configuration against its type's schema.
func (r *Registry) ParseConfig(typeName string, raw json.RawMessage) (Config, error) {
	t, ok := r.types[typeName]
	if !ok {
		return Config{}, fmt.Errorf("%w: %q", ErrUnknownType, typeName)
	}
	return parseConfig(raw, r.schemas[t.Name])
}

// Spec is an agent as its owner wrote it: the fields of an agents row that make its
// program.
type Spec struct {
	ID, Name, Type, Instructions, Signature, Model string
	// Config is the JSON object of the agent's configuration.
	Config json.RawMessage
	// Program, when set, is compiled program state (signatures.State JSON, as kowai
	// optimize writes it) loaded onto the program the type builds.
	Program json.RawMessage
}

// CheckSignature reports why signature cannot be the own signature of an agent of type
// typeName: it does not parse, or the type runs a fixed signature and signature is
// another. An empty signature always fits (the type's).
func (r *Registry) CheckSignature(typeName, signature string) error {
	if signature == "" {
		return nil
	}
	if _, err := signatures.Parse(signature); err != nil {
		return err
	}
	if t, ok := r.types[typeName]; ok && t.FixedSignature && signature != t.Signature {
		return fmt.Errorf("type %s runs its own signature %q; leave signature empty", t.Name, t.Signature)
	}
	return nil
}

// Compile turns an agent's spec into its Definition and program. Errors wrap
// ErrUnknownType, ErrInvalidConfig, or the type's own error (a bad signature).
func (r *Registry) Compile(a Spec) (Definition, Program, error) {
	t, ok := r.types[a.Type]
	if !ok {
		return Definition{}, nil, fmt.Errorf("agent %s: %w: %q (known: %v)", a.ID, ErrUnknownType, a.Type, slices.Sorted(maps.Keys(r.types)))
	}
	cfg, err := parseConfig(a.Config, r.schemas[t.Name])
	if err != nil {
		return Definition{}, nil, fmt.Errorf("agent %s: %w", a.ID, err)
	}
	if err := r.CheckSignature(a.Type, a.Signature); err != nil {
		return Definition{}, nil, fmt.Errorf("agent %s: signature: %w", a.ID, err)
	}
	def := Definition{ID: a.ID, Name: a.Name, Type: a.Type, Instructions: a.Instructions,
		Signature: a.Signature, Model: a.Model, Config: cfg}
	if def.Signature == "" {
		def.Signature = t.Signature
	}
	p, err := t.New(def)
	if err != nil {
		return Definition{}, nil, fmt.Errorf("agent %s (type %s): %w", a.ID, a.Type, err)
	}
	if len(a.Program) > 0 {
		if _, err := loadProgram(t, p, a.Program); err != nil {
			return Definition{}, nil, fmt.Errorf("agent %s: %w", a.ID, err)
		}
	}
	return def, p, nil
}

// ParseProgram decodes compiled program state strictly: the JSON kowai optimize
// writes, in the current format, with its content hash. Errors wrap
// ErrInvalidProgram.
func ParseProgram(raw json.RawMessage) (signatures.State, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var st signatures.State
	if err := dec.Decode(&st); err != nil {
		return st, fmt.Errorf("%w: %w", ErrInvalidProgram, err)
	}
	if dec.More() {
		return st, fmt.Errorf("%w: more than one JSON value", ErrInvalidProgram)
	}
	switch {
	case st.Format != signatures.StateFormat:
		return st, fmt.Errorf("%w: format %d, want %d", ErrInvalidProgram, st.Format, signatures.StateFormat)
	case st.Version == "":
		return st, fmt.Errorf("%w: no version (the content hash kowai optimize writes)", ErrInvalidProgram)
	case len(st.Predictors) == 0:
		return st, fmt.Errorf("%w: no predictors", ErrInvalidProgram)
	}
	return st, nil
}

// loadProgram installs the state raw onto p, a program of t, and returns the state's
// version.
func loadProgram(t Type, p Program, raw json.RawMessage) (string, error) {
	st, err := ParseProgram(raw)
	if err != nil {
		return "", err
	}
	if st.Program != "" && st.Program != t.Name {
		return "", fmt.Errorf("%w: compiled for program %q, not for type %s", ErrInvalidProgram, st.Program, t.Name)
	}
	mp, ok := p.(ModuleProgram)
	if !ok {
		return "", fmt.Errorf("%w: type %s runs no single module to load compiled state onto", ErrInvalidProgram, t.Name)
	}
	if err := signatures.LoadState(mp.Module(), st); err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidProgram, err)
	}
	return st.Version, nil
}

// CheckProgram reports whether the compiled program state raw fits an agent of
// spec (its type and signature; spec.Program is ignored) and returns the state's
// version, its content hash. Errors wrap ErrInvalidProgram, or Compile's.
func (r *Registry) CheckProgram(spec Spec, raw json.RawMessage) (string, error) {
	spec.Program = nil
	_, p, err := r.Compile(spec)
	if err != nil {
		return "", err
	}
	return loadProgram(r.types[spec.Type], p, raw)
}

// Programs returns the registry kowai optimize compiles from: one program per type with
// a Metric, under the type's name, built exactly as the type's built-in agent runs it
// (the module of its ModuleProgram), followed by the entries of base that no type
// names (such as the example programs boolqa and sentiment). A name is one program.
func (r *Registry) Programs(base *programs.Registry) (*programs.Registry, error) {
	out := programs.NewRegistry()
	for _, name := range r.names {
		t := r.types[name]
		if t.Metric == nil {
			continue
		}
		spec := Spec{ID: BuiltinID(t.Name), Name: t.Name, Type: t.Name}
		if _, prog, err := r.Compile(spec); err != nil {
			return nil, err
		} else if _, ok := prog.(ModuleProgram); !ok {
			return nil, fmt.Errorf("%w: %q has a metric but its program runs no single module", ErrInvalidType, t.Name)
		}
		err := out.Register(programs.Entry{Name: t.Name, Description: t.Description, Signature: t.Signature, Metric: t.Metric,
			New: func() signatures.Module {
				// Compiled once above with the same spec; it cannot fail now.
				_, prog, err := r.Compile(spec)
				if err != nil {
					panic(err)
				}
				return prog.(ModuleProgram).Module()
			}})
		if err != nil {
			return nil, err
		}
	}
	if base != nil {
		for _, e := range base.Entries() {
			if _, taken := r.types[e.Name]; taken {
				return nil, fmt.Errorf("%w: program %q is also an agent type", ErrInvalidType, e.Name)
			}
			if err := out.Register(e); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}
