package actors

import (
	"context"
	"slices"
	"testing"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/signatures/lm"
)

func TestReplyModelOptions(t *testing.T) {
	temp, seed := 0.3, int64(42)
	for _, tt := range []struct {
		name string
		opts *actorpb.ModelOptions
		want lm.Request
	}{
		{"none keeps the agent's", nil, lm.Request{Temperature: 0.9, MaxTokens: 100}},
		{"every option", &actorpb.ModelOptions{Temperature: &temp, MaxTokens: 7, Stop: []string{"END"}, Seed: &seed},
			lm.Request{Temperature: 0.3, MaxTokens: 7, Stop: []string{"END"}}},
		{"unset fields keep the agent's", &actorpb.ModelOptions{Stop: []string{"x"}}, lm.Request{Temperature: 0.9, MaxTokens: 100, Stop: []string{"x"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var got *lm.Request
			inner := lm.Func{ID: "fake:model", Fn: func(_ context.Context, req *lm.Request) (*lm.Response, error) {
				got = req
				return &lm.Response{Text: "ok", StopReason: "length"}, nil
			}}
			m := newReplyModel(inner, tt.opts)
			agent := &lm.Request{Temperature: 0.9, MaxTokens: 100}
			if _, err := m.Generate(t.Context(), agent); err != nil {
				t.Fatal(err)
			}
			if got.Temperature != tt.want.Temperature || got.MaxTokens != tt.want.MaxTokens || !slices.Equal(got.Stop, tt.want.Stop) {
				t.Fatalf("request %+v, want %+v", got, tt.want)
			}
			if (tt.opts.GetSeed() != 0) != (got.Seed != nil) || got.Seed != nil && int64(*got.Seed) != seed {
				t.Fatalf("seed %v", got.Seed)
			}
			if agent.Temperature != 0.9 || agent.MaxTokens != 100 || agent.Stop != nil {
				t.Fatalf("the caller's request was changed: %+v", agent)
			}
			if m.stopReason() != "length" || m.Name() != "fake:model" {
				t.Fatalf("stop reason %q, name %q", m.stopReason(), m.Name())
			}
		})
	}
}
