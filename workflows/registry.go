package workflows

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kowai/kowai/internal/jsonschema"
)

// FieldError is one invalid field of a trigger's parameters or of a
// resume's input: a dotted path ("topic", "items[2].name") and a message.
type FieldError = jsonschema.FieldError

// ValidationError lists what is wrong with parameters or input. It is never
// retryable.
type ValidationError struct {
	// What names the document: "parameters" or "input".
	What   string
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, 0, len(e.Fields))
	for _, f := range e.Fields {
		if f.Field == "" {
			parts = append(parts, f.Message)
		} else {
			parts = append(parts, f.Field+" "+f.Message)
		}
	}
	return fmt.Sprintf("invalid %s: %s", e.What, strings.Join(parts, "; "))
}

// Retryable implements the retry classification: bad input stays bad.
func (e *ValidationError) Retryable() bool { return false }

// Definition is a registered workflow: its name, its parameter schema and
// how to run it. Build one with Register.
type Definition struct {
	// Name is the registry key, e.g. "complex-analysis".
	Name string
	// Description is a one-line summary for listings.
	Description string
	// Schema is the JSON schema of the parameters, derived from P.
	Schema json.RawMessage
	// Timeout bounds a whole run (0: none). A run past it fails.
	Timeout time.Duration
	// MaxConcurrent caps runs of this workflow in progress across the
	// cluster (0: no cap); the runtime keeps the rest pending.
	MaxConcurrent int
	// MaxPerUser caps one owner's runs of this workflow in progress (0: no cap).
	MaxPerUser int

	schema map[string]any
	run    func(c *Context, params json.RawMessage) (json.RawMessage, error)
}

// Option configures a Definition at registration.
type Option func(*Definition)

// Describe sets the workflow's one-line description.
func Describe(s string) Option { return func(d *Definition) { d.Description = s } }

// Timeout bounds a whole run; past it the run fails with ErrWorkflowTimeout.
func Timeout(t time.Duration) Option { return func(d *Definition) { d.Timeout = t } }

// Concurrency caps runs in progress: total across the cluster and per
// owner (0 means no cap). Runs beyond a cap wait as pending.
func Concurrency(total, perUser int) Option {
	return func(d *Definition) { d.MaxConcurrent, d.MaxPerUser = total, perUser }
}

// Registry holds the registered workflows. It is safe for concurrent use;
// register everything at start-up.
type Registry struct {
	mu   sync.RWMutex
	defs map[string]*Definition
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{defs: map[string]*Definition{}} }

// ErrDuplicateWorkflow means a name was registered twice.
var ErrDuplicateWorkflow = errors.New("workflows: workflow already registered")

// ErrUnknownWorkflow means no workflow has that name.
var ErrUnknownWorkflow = errors.New("workflows: unknown workflow")

// Register adds the workflow name, running fn over parameters of type P
// (a struct; its JSON schema is derived by reflection and published) and
// returning a result of type R (marshalled to JSON as the run's result).
func Register[P, R any](reg *Registry, name string, fn func(c *Context, params P) (R, error), opts ...Option) error {
	if name == "" || len(name) > 100 {
		return fmt.Errorf("workflows: register %q: the name must have 1 to 100 characters", name)
	}
	schema := jsonschema.For[P]()
	if schema["type"] != "object" {
		return fmt.Errorf("workflows: register %s: parameters must be a struct", name)
	}
	raw, err := json.Marshal(schema)
	if err != nil {
		return fmt.Errorf("workflows: register %s: schema: %w", name, err)
	}
	d := &Definition{Name: name, Schema: raw, schema: schema}
	for _, o := range opts {
		o(d)
	}
	d.run = func(c *Context, params json.RawMessage) (json.RawMessage, error) {
		var p P
		if err := strictDecode(params, &p); err != nil {
			return nil, &ValidationError{What: "parameters", Fields: []FieldError{{Message: err.Error()}}}
		}
		r, err := fn(c, p)
		if err != nil {
			return nil, err
		}
		out, err := json.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("marshal the result: %w", err)
		}
		return out, nil
	}
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if _, dup := reg.defs[name]; dup {
		return fmt.Errorf("%w: %s", ErrDuplicateWorkflow, name)
	}
	reg.defs[name] = d
	return nil
}

// Lookup returns the workflow called name.
func (r *Registry) Lookup(name string) (*Definition, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	d, ok := r.defs[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownWorkflow, name)
	}
	return d, nil
}

// List returns every registered workflow, by name.
func (r *Registry) List() []*Definition {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*Definition, 0, len(r.defs))
	for _, d := range r.defs {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// MaxParamBytes bounds a run's parameters (and a resume's input).
const MaxParamBytes = 64 << 10

// ValidateParams checks raw against the workflow's schema and returns the
// parameters to store ("{}" when raw is empty). Any failure is a
// *ValidationError listing every bad field.
func (d *Definition) ValidateParams(raw json.RawMessage) (json.RawMessage, error) {
	return validateDoc("parameters", d.schema, raw)
}

func validateDoc(what string, schema map[string]any, raw json.RawMessage) (json.RawMessage, error) {
	if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		if what == "parameters" {
			raw = json.RawMessage("{}")
		} else {
			raw = json.RawMessage("null")
		}
	}
	if len(raw) > MaxParamBytes {
		return nil, &ValidationError{What: what, Fields: []FieldError{{Message: fmt.Sprintf("must be at most %d bytes", MaxParamBytes)}}}
	}
	if fields := jsonschema.Validate(schema, raw); len(fields) > 0 {
		return nil, &ValidationError{What: what, Fields: fields}
	}
	var c bytes.Buffer
	if err := json.Compact(&c, raw); err != nil {
		return nil, &ValidationError{What: what, Fields: []FieldError{{Message: "must be valid JSON"}}}
	}
	return c.Bytes(), nil
}

// strictDecode decodes exactly one JSON value into v, refusing unknown fields.
func strictDecode(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("must hold exactly one JSON value")
	}
	return nil
}
