package actors

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/kowai/kowai/actors/actorpb"
)

// A message's metadata is written byte for byte as json.Marshal writes it: strings
// that need escaping (HTML characters, control characters, invalid UTF-8, line
// separators), usages with and without each field, floats in both of
// encoding/json's forms, and the fields that take json.Marshal's own path.
func TestEncodeMetaMatchesJSON(t *testing.T) {
	texts := []string{"", "corr-1", "<a href=\"x\">&amp;</a>", "tab\there\nnew\r\x00\x1f\x7f", "caf\u00e9 \u2028\u2029 \U0001F600",
		"bad \xff\xfe utf8", `back\slash "quoted"`, strings.Repeat("x", 300)}
	floats := []float64{0, math.Copysign(0, -1), 1, 0.5, 1e-6, 9.99e-7, 1e-7, 1.5e-9, 1e20, 1e21, 1.234e25, 3.0000000000000004, 0.00012, 123456789.125, -2.5e-8}
	usages := []*actorpb.Usage{nil, {}, {PromptTokens: 12}, {CompletionTokens: 7, CacheHit: true}, {PromptTokens: -1, CompletionTokens: math.MaxInt64, CostUsd: 0.000123}}
	for _, f := range floats {
		usages = append(usages, &actorpb.Usage{PromptTokens: 3, CostUsd: f})
	}
	metas := []messageMeta{{}, {Details: json.RawMessage(`{ "a" : "<b>" }`)}, {Error: &errorRecord{Code: "CODE_TIMEOUT", Message: "late <x>"}}}
	for i, u := range usages {
		pick := func(k int) string { return texts[(i+k)%len(texts)] }
		metas = append(metas, messageMeta{CorrelationID: pick(0), ReplyTo: pick(1), AgentID: pick(2), Model: pick(3), Usage: u, RequestHash: pick(4)})
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		pick := func() string { return texts[r.IntN(len(texts))] }
		metas = append(metas, messageMeta{CorrelationID: pick(), ReplyTo: pick(), AgentID: pick(), Model: pick(), RequestHash: pick(),
			Usage: usages[r.IntN(len(usages))]})
	}
	for _, m := range metas {
		want, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if got := encodeMeta(m); string(got) != string(want) {
			t.Fatalf("encodeMeta(%+v) =\n%s\nwant\n%s", m, got, want)
		}
	}
	// The usual metadata takes one allocation.
	m := messageMeta{CorrelationID: "corr-123", ReplyTo: "0193a5d2-7c1e-7b3e-9f00-123456789abc", AgentID: "default",
		Model: "offline:kowai-offline", Usage: &actorpb.Usage{PromptTokens: 1200, CompletionTokens: 80}}
	if n := testing.AllocsPerRun(50, func() { encodeMeta(m) }); n != 1 {
		t.Fatalf("encodeMeta allocates %.0f times, want 1", n)
	}
}
