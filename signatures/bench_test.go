package signatures

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tmc/langchaingo/llms"
	"github.com/tmc/langchaingo/llms/openai"

	"github.com/kowai/kowai/signatures/lm"
)

// wireModel is an in-process langchaingo model that does what a client of
// a local model server does per call, minus the network: it encodes the
// request as JSON and decodes a chat-completion body holding the reply.
type wireModel struct {
	body []byte
}

func newWireModel(reply string) *wireModel {
	body, err := json.Marshal(map[string]any{
		"choices": []map[string]any{{"message": map[string]any{"role": "assistant", "content": reply}, "finish_reason": "stop"}},
		"usage":   map[string]any{"prompt_tokens": 300, "completion_tokens": 250},
	})
	if err != nil {
		panic(err)
	}
	return &wireModel{body: body}
}

func (m *wireModel) GenerateContent(_ context.Context, msgs []llms.MessageContent, _ ...llms.CallOption) (*llms.ContentResponse, error) {
	if _, err := json.Marshal(msgs); err != nil {
		return nil, err
	}
	var resp struct {
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
		Usage struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(m.body, &resp); err != nil {
		return nil, err
	}
	return &llms.ContentResponse{Choices: []*llms.ContentChoice{{
		Content:    resp.Choices[0].Message.Content,
		StopReason: resp.Choices[0].FinishReason,
		GenerationInfo: map[string]any{
			"PromptTokens": resp.Usage.PromptTokens, "CompletionTokens": resp.Usage.CompletionTokens,
		},
	}}}, nil
}

func (m *wireModel) Call(ctx context.Context, prompt string, opts ...llms.CallOption) (string, error) {
	return llms.GenerateFromSinglePrompt(ctx, m, prompt, opts...)
}

// memoryDoer answers every HTTP request with body, in memory: an
// OpenAI-compatible server with no network in between.
type memoryDoer struct{ body []byte }

func (d memoryDoer) Do(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return nil, err
		}
		if err := req.Body.Close(); err != nil {
			return nil, err
		}
	}
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(bytes.NewReader(d.body)), Request: req}, nil
}

// BenchmarkPredictOverhead compares a Predict call (render, call through the
// lm.Provider, parse, usage and trace recording) with a raw langchaingo
// GenerateContent call on the same in-process model returning a 1 KB reply,
// and reports predict/raw as x-vs-baseline plus the absolute overhead, for
// two in-process models:
//
//   - openai-client: langchaingo's own OpenAI client, whose HTTP requests
//     are answered in memory. This is the raw call a user of langchaingo
//     makes, minus the network and the model's own work.
//   - wire: a model that does only the client-side JSON work of a call
//     (encode the request, decode a reply body). It is the cheapest model a
//     call can reach, so its ratio is the worst case.
//
// The baseline does what a raw caller must do to get the same answer: put
// its inputs into a hand-written prompt (a fixed system message and one
// string concatenation, checked to be byte-identical to the rendered
// prompt, so both sides send the same request), call GenerateContent and
// read the reply's content.
//
// Goal (issue 3): the signature layer adds under 10% to the call, which
// openai-client measures; overhead-ns/op is the figure to compare with the
// latency of a real model call (tens of milliseconds or more).
func BenchmarkPredictOverhead(b *testing.B) {
	answer := strings.TrimSpace(strings.Repeat("kowai signature layer benchmark text. ", 27)[:1024])
	wire := newWireModel(reply("answer", answer))
	client, err := openai.New(openai.WithModel("bench"), openai.WithToken("bench"),
		openai.WithBaseURL("http://in-memory/v1"), openai.WithHTTPClient(memoryDoer{body: wire.body}))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("openai-client", func(b *testing.B) { benchPredictOverhead(b, client, answer) })
	b.Run("wire", func(b *testing.B) { benchPredictOverhead(b, wire, answer) })
}

// benchPredictOverhead runs the raw, predict and ratio sub-benchmarks of
// BenchmarkPredictOverhead on llm, which replies with the marker form of
// answer.
func benchPredictOverhead(b *testing.B, llm llms.Model, answer string) {
	replyText := reply("answer", answer)
	sig := MustParse("question, context -> answer")
	question, passage := "What does the benchmark measure?", "The overhead of the signature layer."
	in := Values{"question": question, "context": passage}
	rendered, err := Render(sig, nil, in)
	if err != nil {
		b.Fatal(err)
	}
	system := rendered[0]
	rawUser := func() string {
		return "[[ ## question ## ]]\n" + question + "\n\n[[ ## context ## ]]\n" + passage + "\n\n" +
			"Respond with the corresponding output fields, starting with the field `[[ ## answer ## ]]`, and then ending with the marker for `[[ ## completed ## ]]`."
	}
	if rawUser() != text(rendered[1]) {
		b.Fatalf("the raw prompt differs from the rendered one:\n%s\n---\n%s", rawUser(), text(rendered[1]))
	}
	ctx := context.Background()

	raw := func(n int) time.Duration {
		start := time.Now()
		for range n {
			msgs := []llms.MessageContent{system, llms.TextParts(llms.ChatMessageTypeHuman, rawUser())}
			resp, err := llm.GenerateContent(ctx, msgs)
			if err != nil || resp.Choices[0].Content != replyText {
				b.Fatal(err)
			}
		}
		return time.Since(start)
	}
	model := lm.NewProvider("bench", "bench", llm)
	p := NewPredict(sig, PredictOptions{})
	predict := func(n int) time.Duration {
		start := time.Now()
		for range n {
			run := NewRun(model)
			out, err := p.Forward(WithRun(ctx, run), in)
			if err != nil || out["answer"] != answer || run.Usage().Calls != 1 {
				b.Fatal(err)
			}
		}
		return time.Since(start)
	}

	b.Run("raw", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			raw(1)
		}
	})
	b.Run("predict", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			predict(1)
		}
	})
	b.Run("ratio", func(b *testing.B) {
		var rawT, predT time.Duration
		n := 0
		for b.Loop() {
			rawT += raw(1)
			predT += predict(1)
			n++
		}
		b.ReportMetric(float64(predT)/float64(rawT), "x-vs-baseline")
		b.ReportMetric(float64(predT-rawT)/float64(n), "overhead-ns/op")
	})
}
