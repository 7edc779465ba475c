package supervisors

import (
	"testing"

	"github.com/asynkron/protoactor-go/actor"
)

func TestDefaultDecider(t *testing.T) {
	tests := []struct {
		kind Kind
		want actor.Directive
	}{
		{KindPanic, actor.RestartDirective},
		{KindModelError, actor.RestartDirective},
		{KindTimeout, actor.RestartDirective},
		{KindConflict, actor.StopDirective},
		{KindBudgetExceeded, actor.StopDirective},
		{KindUnknown, actor.RestartDirective},
		{Kind(42), actor.RestartDirective},
	}
	for _, tt := range tests {
		if got := DefaultDecider(tt.kind); got != tt.want {
			t.Errorf("DefaultDecider(%s) = %s, want %s", tt.kind, got, tt.want)
		}
	}
}
