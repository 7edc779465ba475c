package signatures

import (
	"context"
	"reflect"
	"strconv"
	"strings"
	"unicode"
)

// NamedPredictor is a predictor of a program with its path-like name
// ("respond.predict"), the key of its saved state.
type NamedPredictor struct {
	// Name is the predictor's path in its program; Predict the predictor.
	Name    string
	Predict *Predict
}

// PredictorLister is implemented by modules that know their predictors.
// Modules of this package implement it; a user program may implement it to
// choose names itself, otherwise Predictors finds them by reflection.
type PredictorLister interface {
	Predictors() []NamedPredictor
}

// Predictors lists a program's predictors in a stable order. When program
// implements PredictorLister, that list is used. Otherwise Predictors walks
// the exported fields of the program struct (through pointers, nested
// structs, slices and arrays) and collects every *Predict and every
// PredictorLister, naming each by its field path in snake_case joined with
// dots ("analyze.predict", "steps.0"). A predictor reached twice is listed
// once. A lone top-level Predict is named "self", as in DSPy.
func Predictors(program any) []NamedPredictor {
	seen := map[*Predict]bool{}
	var out []NamedPredictor
	add := func(name string, p *Predict) {
		if p == nil || seen[p] {
			return
		}
		seen[p] = true
		if name == "" {
			name = "self"
		}
		out = append(out, NamedPredictor{Name: name, Predict: p})
	}
	if l, ok := program.(PredictorLister); ok {
		for _, np := range l.Predictors() {
			add(np.Name, np.Predict)
		}
		return out
	}
	walkPredictors(reflect.ValueOf(program), "", add, 0)
	return out
}

func walkPredictors(v reflect.Value, path string, add func(string, *Predict), depth int) {
	if !v.IsValid() || depth > 32 {
		return
	}
	if depth > 0 && v.CanInterface() {
		switch x := v.Interface().(type) {
		case *Predict:
			add(path, x)
			return
		case PredictorLister:
			if v.Kind() == reflect.Pointer && v.IsNil() {
				return
			}
			for _, np := range x.Predictors() {
				add(joinPath(path, np.Name), np.Predict)
			}
			return
		}
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walkPredictors(v.Elem(), path, add, depth+1)
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if f.IsExported() {
				walkPredictors(v.Field(i), joinPath(path, snake(f.Name)), add, depth+1)
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			walkPredictors(v.Index(i), joinPath(path, strconv.Itoa(i)), add, depth+1)
		}
	}
}

func joinPath(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "" || b == "self":
		return a
	}
	return a + "." + b
}

// snake converts a Go field name to snake_case: "ContextAnalysis" ->
// "context_analysis", "QACheck" -> "qa_check".
func snake(s string) string {
	rs := []rune(s)
	var b strings.Builder
	for i, r := range rs {
		if unicode.IsUpper(r) {
			if i > 0 && (unicode.IsLower(rs[i-1]) || (i+1 < len(rs) && unicode.IsLower(rs[i+1]))) {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// ChainOfThought is a Predict whose signature gets a leading `reasoning`
// output, so the model reasons step by step before answering.
type ChainOfThought struct {
	// Predict is the underlying predictor (named "predict" in state).
	Predict *Predict
}

// ReasoningField is the output ChainOfThought prepends.
// Its prefix is DSPy 3.x's, inferred from the name ("Reasoning:"); DSPy 2's
// "Reasoning: Let's think step by step in order to" is gone with the
// ChatAdapter, which never shows prefixes.
var ReasoningField = Field{Name: "reasoning", Prefix: "Reasoning:"}

// NewChainOfThought returns a ChainOfThought over sig; it fails when sig
// already has a `reasoning` field.
func NewChainOfThought(sig Signature, opts PredictOptions) (*ChainOfThought, error) {
	ext, err := sig.Prepend(Output, ReasoningField)
	if err != nil {
		return nil, err
	}
	return &ChainOfThought{Predict: NewPredict(ext, opts)}, nil
}

// Forward runs the predictor; the outputs include `reasoning`.
func (c *ChainOfThought) Forward(ctx context.Context, in Values) (Values, error) {
	return c.Predict.Forward(ctx, in)
}

// Predictors returns the inner predictor as "predict".
func (c *ChainOfThought) Predictors() []NamedPredictor {
	return []NamedPredictor{{Name: "predict", Predict: c.Predict}}
}
