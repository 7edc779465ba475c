package lmtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/signatures/lm/internal/textchunk"
	"github.com/tmc/langchaingo/llms"
)

// ErrScriptExhausted is returned by Scripted.Generate when its queue is empty
// and it has no Respond function.
var ErrScriptExhausted = errors.New("lmtest: scripted model has no more outputs")

// Output is one queued answer of a Scripted model.
type Output struct {
	// Text is the reply text, streamed in chunks when the request streams.
	Text string
	// ToolCalls are returned as the model's tool calls.
	ToolCalls []llms.ToolCall
	// StopReason is copied to the response.
	StopReason string
	// Usage is reported as is; when it is the zero value the model estimates
	// prompt and completion tokens with lm.EstimateTokens. Calls is always 1.
	Usage lm.Usage
	// Err, when set, is returned instead of a response (after the request is
	// recorded).
	Err error
}

// Scripted is an lm.LM that answers from a queue of outputs and records every
// request it receives. It is safe for concurrent use; concurrent callers take
// outputs in the order their calls reach the queue.
type Scripted struct {
	name      string
	chunkSize int
	respond   func(req *lm.Request) Output

	mu       sync.Mutex
	queue    []Output
	requests []lm.Request
}

var _ lm.LM = (*Scripted)(nil)

// ScriptedOption configures a Scripted model.
type ScriptedOption func(*Scripted)

// WithName sets the name returned by Name (default "scripted:model").
func WithName(name string) ScriptedOption { return func(s *Scripted) { s.name = name } }

// WithChunkSize sets how many runes each streamed chunk holds (default 4).
func WithChunkSize(n int) ScriptedOption {
	return func(s *Scripted) {
		if n > 0 {
			s.chunkSize = n
		}
	}
}

// WithRespond sets a function that answers once the queue is empty, for
// tests that decide the answer from the request (a teacher that is right on
// a known subset, say). It must be safe for concurrent use.
func WithRespond(fn func(req *lm.Request) Output) ScriptedOption {
	return func(s *Scripted) { s.respond = fn }
}

// NewScripted returns a Scripted model that answers with outputs in order.
func NewScripted(outputs []Output, opts ...ScriptedOption) *Scripted {
	s := &Scripted{name: "scripted:model", chunkSize: 4, queue: append([]Output(nil), outputs...)}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Texts is shorthand for NewScripted with one text output per argument.
func Texts(texts ...string) *Scripted {
	outs := make([]Output, len(texts))
	for i, t := range texts {
		outs[i] = Output{Text: t}
	}
	return NewScripted(outs)
}

// Push appends outputs to the queue.
func (s *Scripted) Push(outputs ...Output) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue, outputs...)
}

// PushText appends one text output per argument.
func (s *Scripted) PushText(texts ...string) {
	for _, t := range texts {
		s.Push(Output{Text: t})
	}
}

// Requests returns copies of the requests received so far, in arrival order.
func (s *Scripted) Requests() []lm.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]lm.Request(nil), s.requests...)
}

// Calls returns how many times Generate was called.
func (s *Scripted) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

// Remaining returns how many queued outputs are left.
func (s *Scripted) Remaining() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// Name returns the model's name.
func (s *Scripted) Name() string { return s.name }

// Generate records req, takes the next output and returns it, streaming its
// text to req.Stream first when set.
func (s *Scripted) Generate(ctx context.Context, req *lm.Request) (*lm.Response, error) {
	start := time.Now()
	out, err := s.next(req)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("scripted %s: %w", s.name, err)
	}
	if out.Err != nil {
		return nil, out.Err
	}
	if req.Stream != nil {
		if err := textchunk.Stream(ctx, req.Stream, out.Text, s.chunkSize); err != nil {
			return nil, fmt.Errorf("scripted %s: stream: %w", s.name, err)
		}
	}
	usage := out.Usage
	if usage == (lm.Usage{}) {
		usage = lm.Usage{
			PromptTokens:     lm.EstimateTokens(lm.MessagesText(req.Messages)),
			CompletionTokens: lm.EstimateTokens(out.Text),
		}
	}
	usage.Calls = 1
	return &lm.Response{
		Text:       out.Text,
		ToolCalls:  append([]llms.ToolCall(nil), out.ToolCalls...),
		StopReason: out.StopReason,
		Model:      s.name,
		Usage:      usage,
		Latency:    time.Since(start),
	}, nil
}

func (s *Scripted) next(req *lm.Request) (Output, error) {
	s.mu.Lock()
	s.requests = append(s.requests, *req)
	if len(s.queue) > 0 {
		out := s.queue[0]
		s.queue = s.queue[1:]
		s.mu.Unlock()
		return out, nil
	}
	respond := s.respond
	n := len(s.requests)
	s.mu.Unlock()
	if respond == nil {
		return Output{}, fmt.Errorf("scripted %s: call %d: %w", s.name, n, ErrScriptExhausted)
	}
	return respond(req), nil
}
