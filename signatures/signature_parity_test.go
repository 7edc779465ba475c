package signatures

import (
	"errors"
	"slices"
	"testing"
)

// TestInferPrefix mirrors tests/signatures/test_signature.py,
// test_infer_prefix (and the "Input 1:" prefix of test_with_updated_field).
func TestInferPrefix(t *testing.T) {
	for _, tt := range []struct{ name, want string }{
		{"someAttributeName42IsCool", "Some Attribute Name 42 Is Cool:"},
		{"version2Update", "Version 2 Update:"},
		{"modelT45Enhanced", "Model T 45 Enhanced:"},
		{"someAttributeName", "Some Attribute Name:"},
		{"some_attribute_name", "Some Attribute Name:"},
		{"URLAddress", "URL Address:"},
		{"isHTTPSecure", "Is HTTP Secure:"},
		{"isHTTPSSecure123", "Is HTTPS Secure 123:"},
		{"input1", "Input 1:"},
		{"next_thought", "Next Thought:"},
	} {
		if got := inferPrefix(tt.name); got != tt.want {
			t.Errorf("inferPrefix(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
	if f, _, _ := MustParse("input1, input2 -> output").Field("input1"); f.Prefix != "Input 1:" {
		t.Errorf("input1's prefix is %q", f.Prefix)
	}
}

// TestAppendInstructions mirrors tests/signatures/test_signature.py,
// test_append_instructions and test_append_instructions_chains.
func TestAppendInstructions(t *testing.T) {
	sig := MustParse("input1 -> output1").WithInstructions("Base instructions.")
	chained := sig.AppendInstructions("Step one.").AppendInstructions("Step two.")
	if got := chained.Instructions(); got != "Base instructions.\n\nStep one.\n\nStep two." {
		t.Errorf("instructions = %q", got)
	}
	if sig.Instructions() != "Base instructions." {
		t.Errorf("the original changed: %q", sig.Instructions())
	}
}

// TestWithUpdatedField mirrors tests/signatures/test_signature.py,
// test_with_updated_field.
func TestWithUpdatedField(t *testing.T) {
	s1 := MustParse("input1, input2 -> output")
	prefix := "Modified:"
	s2, err := s1.WithUpdatedField("input1", FieldUpdate{Prefix: &prefix})
	if err != nil {
		t.Fatal(err)
	}
	if f, _, _ := s2.Field("input1"); f.Prefix != "Modified:" {
		t.Errorf("updated prefix %q", f.Prefix)
	}
	if f, _, _ := s1.Field("input1"); f.Prefix != "Input 1:" {
		t.Errorf("the original changed: %q", f.Prefix)
	}
	if s1.Instructions() != s2.Instructions() {
		t.Errorf("instructions changed")
	}
	if _, err := s1.WithUpdatedField("nope", FieldUpdate{}); !errors.Is(err, ErrInvalidSignature) {
		t.Errorf("unknown field: %v", err)
	}
}

// TestInsert mirrors tests/signatures/test_signature.py,
// test_insert_field_at_various_positions, and DSPy's index rules
// (negative indices count from the end; out of range is an error).
func TestInsert(t *testing.T) {
	sig := MustParse("input1 -> output1: int")
	names := func(fs []Field) []string {
		var out []string
		for _, f := range fs {
			out = append(out, f.Name)
		}
		return out
	}
	tests := []struct {
		at   int
		role Role
		want []string
	}{
		{0, Input, []string{"new", "input1"}},
		{-1, Input, []string{"input1", "new"}},
		{1, Input, []string{"input1", "new"}},
		{0, Output, []string{"new", "output1"}},
		{-2, Output, []string{"new", "output1"}},
	}
	for _, tt := range tests {
		got, err := sig.Insert(tt.at, tt.role, Field{Name: "new"})
		if err != nil {
			t.Fatal(err)
		}
		fs := got.Inputs()
		if tt.role == Output {
			fs = got.Outputs()
		}
		if !slices.Equal(names(fs), tt.want) {
			t.Errorf("Insert(%d, %v) = %v, want %v", tt.at, tt.role, names(fs), tt.want)
		}
	}
	for _, at := range []int{2, -3} {
		if _, err := sig.Insert(at, Input, Field{Name: "new"}); !errors.Is(err, ErrInvalidSignature) {
			t.Errorf("Insert(%d): %v", at, err)
		}
	}
}

// TestChainOfThoughtReasoningPrefix: DSPy 3.x's rationale field is
// OutputField(desc="${reasoning}"), prefix "Reasoning:"
// (dspy/predict/chain_of_thought.py).
func TestChainOfThoughtReasoningPrefix(t *testing.T) {
	cot, err := NewChainOfThought(MustParse("question -> answer"), PredictOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if f, _, _ := cot.Predict.Signature().Field("reasoning"); f.Prefix != "Reasoning:" {
		t.Errorf("reasoning prefix %q", f.Prefix)
	}
}
