package lmtest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/kowai/kowai/signatures/lm"
	"github.com/tmc/langchaingo/llms"
)

func userReq(text string) *lm.Request {
	return &lm.Request{Messages: []llms.MessageContent{llms.TextParts(llms.ChatMessageTypeHuman, text)}}
}

func TestScriptedQueueAndRecording(t *testing.T) {
	tool := llms.ToolCall{ID: "c1", Type: "function", FunctionCall: &llms.FunctionCall{Name: "search", Arguments: `{"q":"x"}`}}
	m := NewScripted([]Output{
		{Text: "first", Usage: lm.Usage{PromptTokens: 7, CompletionTokens: 3}},
		{ToolCalls: []llms.ToolCall{tool}, StopReason: "tool_calls"},
		{Err: lm.ErrRateLimited},
	}, WithName("scripted:teacher"))

	resp, err := m.Generate(t.Context(), userReq("hello there"))
	if err != nil {
		t.Fatal(err)
	}
	want := lm.Usage{PromptTokens: 7, CompletionTokens: 3, Calls: 1}
	if resp.Text != "first" || resp.Usage != want || resp.Model != "scripted:teacher" {
		t.Fatalf("first reply = %+v", resp)
	}
	resp, err = m.Generate(t.Context(), userReq("second"))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.ToolCalls) != 1 || resp.ToolCalls[0].FunctionCall.Name != "search" || resp.StopReason != "tool_calls" {
		t.Fatalf("tool reply = %+v", resp)
	}
	if resp.Usage.PromptTokens != lm.EstimateTokens("second\n") || resp.Usage.Calls != 1 {
		t.Fatalf("estimated usage = %+v", resp.Usage)
	}
	if _, err := m.Generate(t.Context(), userReq("third")); !errors.Is(err, lm.ErrRateLimited) {
		t.Fatalf("queued error: got %v", err)
	}
	if _, err := m.Generate(t.Context(), userReq("fourth")); !errors.Is(err, ErrScriptExhausted) {
		t.Fatalf("exhausted: got %v", err)
	}
	reqs := m.Requests()
	if len(reqs) != 4 || m.Calls() != 4 || m.Remaining() != 0 {
		t.Fatalf("recorded %d requests, calls %d, remaining %d", len(reqs), m.Calls(), m.Remaining())
	}
	for i, w := range []string{"hello there", "second", "third", "fourth"} {
		if got := lm.MessagesText(reqs[i].Messages); got != w+"\n" {
			t.Errorf("request %d = %q, want %q", i, got, w)
		}
	}
}

func TestScriptedStreams(t *testing.T) {
	m := NewScripted([]Output{{Text: "héllo wörld!"}}, WithChunkSize(5))
	var chunks []string
	req := userReq("hi")
	req.Stream = func(_ context.Context, c []byte) error {
		chunks = append(chunks, string(c))
		return nil
	}
	resp, err := m.Generate(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(chunks, "|") != "héllo| wörl|d!" || resp.Text != "héllo wörld!" {
		t.Fatalf("chunks %q, text %q", chunks, resp.Text)
	}

	stop := errors.New("stop")
	m.PushText("abcdefgh")
	req.Stream = func(context.Context, []byte) error { return stop }
	if _, err := m.Generate(t.Context(), req); !errors.Is(err, stop) {
		t.Fatalf("stream error: got %v", err)
	}
}

func TestScriptedRespondAndCancel(t *testing.T) {
	m := NewScripted(nil, WithRespond(func(req *lm.Request) Output {
		return Output{Text: "echo " + lm.MessagesText(req.Messages)}
	}))
	resp, err := m.Generate(t.Context(), userReq("x"))
	if err != nil || resp.Text != "echo x\n" {
		t.Fatalf("respond: %v %+v", err, resp)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := m.Generate(ctx, userReq("y")); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: got %v", err)
	}
}

func TestScriptedConcurrent(t *testing.T) {
	const n = 50
	m := NewScripted(nil)
	for range n {
		m.PushText("x")
	}
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if _, err := m.Generate(context.Background(), userReq("q")); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if m.Calls() != n || m.Remaining() != 0 {
		t.Fatalf("calls %d remaining %d", m.Calls(), m.Remaining())
	}
}
