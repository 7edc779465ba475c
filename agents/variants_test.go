package agents

import (
	"fmt"
	"math"
	"testing"
)

// TestAssignVariantStickyAndWeighted checks that a conversation always gets the same
// variant and that 1,000 conversations split as the weights say, within 5 points.
func TestAssignVariantStickyAndWeighted(t *testing.T) {
	for _, weights := range [][]int{{70, 30}, {1, 1}, {50, 30, 20}, {7, 3}} {
		var total int
		for _, w := range weights {
			total += w
		}
		counts := make([]int, len(weights))
		const n = 1000
		for i := range n {
			conv := fmt.Sprintf("conv-%04d", i)
			v := AssignVariant("agent-1", conv, weights)
			if v < 0 || v >= len(weights) {
				t.Fatalf("weights %v: conversation %s got variant %d", weights, conv, v)
			}
			for range 3 {
				if again := AssignVariant("agent-1", conv, weights); again != v {
					t.Fatalf("weights %v: conversation %s got %d, then %d", weights, conv, v, again)
				}
			}
			counts[v]++
		}
		for i, w := range weights {
			got, want := 100*float64(counts[i])/n, 100*float64(w)/float64(total)
			if math.Abs(got-want) > 5 {
				t.Errorf("weights %v: variant %d has %.1f%% of conversations, want %.1f%% ± 5", weights, i, got, want)
			}
		}
	}
}

func TestAssignVariantNone(t *testing.T) {
	if v := AssignVariant("a", "c", nil); v != -1 {
		t.Errorf("no variants: got %d, want -1", v)
	}
	if v := AssignVariant("a", "c", []int{0, 0}); v != -1 {
		t.Errorf("zero weights: got %d, want -1", v)
	}
	if v := AssignVariant("a", "c", []int{0, 5}); v != 1 {
		t.Errorf("only the second has weight: got %d, want 1", v)
	}
}
