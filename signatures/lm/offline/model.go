package offline

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/kowai/kowai/signatures/lm/internal/textchunk"
	"github.com/tmc/langchaingo/llms"
)

// DefaultModelName is the model name reported when none is configured.
const DefaultModelName = "kowai-offline"

// Model is the offline language model. It implements llms.Model (and
// GenerateContentStream) so it can stand wherever a langchaingo model can.
// Its one mutable state is a memo of the system messages it has read, so it is
// safe for concurrent use; use it through the pointer New returns.
type Model struct {
	name      string
	chunkSize int
	notes     noteMemo
	// options holds *llms.CallOptions for the calls to fill: the options a call
	// is given are functions that take a pointer, so a call's own would be
	// allocated on every reply. A call's options do not outlive it.
	options sync.Pool
}

var _ llms.Model = (*Model)(nil)

// Option configures a Model.
type Option func(*Model)

// WithModelName sets the model name reported in GenerationInfo["Model"].
func WithModelName(name string) Option {
	return func(m *Model) {
		if name != "" {
			m.name = name
		}
	}
}

// WithChunkSize sets how many runes each streamed chunk holds (default 16).
func WithChunkSize(n int) Option {
	return func(m *Model) {
		if n > 0 {
			m.chunkSize = n
		}
	}
}

// New returns an offline model.
func New(opts ...Option) *Model {
	m := &Model{name: DefaultModelName, chunkSize: 16}
	for _, o := range opts {
		o(m)
	}
	return m
}

// Name returns the model name.
func (m *Model) Name() string { return m.name }

// Call answers a single prompt as a plain chat turn.
func (m *Model) Call(ctx context.Context, prompt string, options ...llms.CallOption) (string, error) {
	return llms.GenerateFromSinglePrompt(ctx, m, prompt, options...)
}

// GenerateContent answers messages deterministically; see the package
// documentation for the rules. MaxTokens is ignored on purpose: a truncated
// reply would lose its completed marker, and the point of this model is
// well-formed output. Usage is reported in GenerationInfo under the same keys
// as langchaingo's openai client (PromptTokens, CompletionTokens,
// TotalTokens).
func (m *Model) GenerateContent(ctx context.Context, messages []llms.MessageContent, options ...llms.CallOption) (*llms.ContentResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("offline model: %w", err)
	}
	opts, _ := m.options.Get().(*llms.CallOptions)
	if opts == nil {
		opts = new(llms.CallOptions)
	}
	defer func() {
		// Nothing a call was given stays reachable from the pool.
		*opts = llms.CallOptions{}
		m.options.Put(opts)
	}()
	for _, o := range options {
		o(opts)
	}
	choice := m.answer(messages, opts)
	if opts.StreamingFunc != nil && choice.Content != "" {
		if err := textchunk.Stream(ctx, opts.StreamingFunc, choice.Content, m.chunkSize); err != nil {
			return nil, fmt.Errorf("offline model: stream: %w", err)
		}
	}
	prompt := textchunk.EstimateTokensOfLen(promptLen(messages))
	completion := textchunk.EstimateTokens(choice.Content)
	for _, tc := range choice.ToolCalls {
		completion += textchunk.EstimateTokens(tc.FunctionCall.Name + tc.FunctionCall.Arguments)
	}
	choice.GenerationInfo = map[string]any{
		"Model":            m.name,
		"PromptTokens":     prompt,
		"CompletionTokens": completion,
		"TotalTokens":      prompt + completion,
	}
	return &llms.ContentResponse{Choices: []*llms.ContentChoice{choice}}, nil
}

// GenerateContentStream runs GenerateContent and delivers the reply as a
// channel of chunks, the last carrying the full choice metadata. The channel
// is closed when the reply is done or ctx ends.
func (m *Model) GenerateContentStream(ctx context.Context, messages []llms.MessageContent, options ...llms.CallOption) (<-chan llms.ContentResponse, error) {
	ch := make(chan llms.ContentResponse)
	send := func(ctx context.Context, chunk []byte) error {
		select {
		case ch <- llms.ContentResponse{Choices: []*llms.ContentChoice{{Content: string(chunk)}}}:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	go func() {
		defer close(ch)
		resp, err := m.GenerateContent(ctx, messages, append(options, llms.WithStreamingFunc(send))...)
		if err != nil {
			return
		}
		final := *resp.Choices[0]
		final.Content = ""
		select {
		case ch <- llms.ContentResponse{Choices: []*llms.ContentChoice{&final}}:
		case <-ctx.Done():
		}
	}()
	return ch, nil
}

// answer decides the reply: a tool call, a structured reply or plain chat.
func (m *Model) answer(messages []llms.MessageContent, opts *llms.CallOptions) *llms.ContentChoice {
	digest := digestOf(messages)
	last, answeredTool := lastHuman(messages)
	if len(opts.Tools) > 0 && !answeredTool && opts.ToolChoice != "none" {
		if tc, ok := toolCall(opts.Tools, digest); ok {
			return &llms.ContentChoice{
				StopReason: "tool_calls",
				ToolCalls:  []llms.ToolCall{tc},
				FuncCall:   tc.FunctionCall,
			}
		}
	}
	var text string
	if fields := outputFields(systemText(messages), last, &m.notes); len(fields) > 0 {
		text = structuredReply(fields, digest, firstInput(last), opts.JSONMode)
	} else {
		text = chatReply(last, digest, opts.JSONMode)
	}
	return &llms.ContentChoice{Content: text, StopReason: "stop"}
}

// chatReply is the plain-chat answer: it says what it is and quotes the
// user's message so callers can see the request got through.
func chatReply(last string, d digest, jsonMode bool) string {
	quoted := strings.Join(strings.Fields(last), " ")
	if utf8.RuneCountInString(quoted) > 200 {
		quoted = string([]rune(quoted)[:200]) + "..."
	}
	text := fmt.Sprintf("This is kowai's offline model, not a real language model. You said: %q (input digest %s).", quoted, d.short())
	if jsonMode {
		b, _ := json.Marshal(map[string]string{"reply": text})
		return string(b)
	}
	return text
}

// digest identifies the whole conversation; every derived value comes from it
// so the same input always gives the same output.
type digest [sha256.Size]byte

func digestOf(messages []llms.MessageContent) digest {
	h := sha256.New()
	// Text goes through one buffer: the hash takes bytes, and converting each
	// message's text would copy the whole prompt.
	buf := make([]byte, 0, 1024)
	write := func(parts ...string) {
		for _, s := range parts {
			for len(s) > 0 {
				if len(buf) == cap(buf) {
					h.Write(buf)
					buf = buf[:0]
				}
				n := min(len(s), cap(buf)-len(buf))
				buf, s = append(buf, s[:n]...), s[n:]
			}
		}
	}
	for _, msg := range messages {
		write(string(msg.Role), "\x00")
		for _, p := range msg.Parts {
			if t, ok := p.(llms.TextContent); ok {
				// What the general case below writes for a text part, without fmt's
				// reflection and copies (TextContent prints as its text).
				write("llms.TextContent\x00", t.Text, "\x00")
				continue
			}
			write(fmt.Sprintf("%T\x00%v\x00", p, p))
		}
	}
	h.Write(buf)
	var d digest
	h.Sum(d[:0])
	return d
}

func (d digest) short() string { return hex.EncodeToString(d[:4]) }

// number is a value in [0, n) derived from the digest and a salt (the field
// name), so two int fields of one reply differ.
func (d digest) number(salt string, n uint64) uint64 {
	h := sha256.Sum256(append(d[:], salt...))
	return binary.BigEndian.Uint64(h[:8]) % n
}

// lastHuman returns the text of the last human message and whether a tool
// response follows it (the model already asked for a tool this turn).
func lastHuman(messages []llms.MessageContent) (string, bool) {
	for i := len(messages) - 1; i >= 0; i-- {
		if messages[i].Role != llms.ChatMessageTypeHuman {
			continue
		}
		answered := false
		for _, later := range messages[i+1:] {
			for _, p := range later.Parts {
				if _, ok := p.(llms.ToolCallResponse); ok {
					answered = true
				}
			}
		}
		return partsText(messages[i].Parts), answered
	}
	return "", false
}

func systemText(messages []llms.MessageContent) string {
	for _, msg := range messages {
		if msg.Role == llms.ChatMessageTypeSystem {
			return partsText(msg.Parts)
		}
	}
	return ""
}

// promptLen is the length of the prompt's text, which the token estimate needs;
// joining the text (a chat prompt with its whole history) only to measure it
// was most of what this model allocated per call.
func promptLen(messages []llms.MessageContent) int {
	n := 0
	for _, msg := range messages {
		for _, p := range msg.Parts {
			switch p := p.(type) {
			case llms.TextContent:
				n += len(p.Text)
			case llms.ToolCallResponse:
				n += len(p.Content)
			}
		}
	}
	return n
}

func partsText(parts []llms.ContentPart) string {
	if len(parts) == 1 {
		// The usual message: one text part, which needs no copy.
		switch p := parts[0].(type) {
		case llms.TextContent:
			return p.Text
		case llms.ToolCallResponse:
			return p.Content
		}
	}
	var b strings.Builder
	for _, p := range parts {
		switch p := p.(type) {
		case llms.TextContent:
			b.WriteString(p.Text)
		case llms.ToolCallResponse:
			b.WriteString(p.Content)
		}
	}
	return b.String()
}

// toolCall asks for the first function tool with the smallest arguments its
// parameter schema accepts.
func toolCall(tools []llms.Tool, d digest) (llms.ToolCall, bool) {
	for _, t := range tools {
		if t.Function == nil {
			continue
		}
		args := "{}"
		if schema := asSchema(t.Function.Parameters); schema != nil {
			if b, err := json.Marshal(minimalValue(schema, schema)); err == nil {
				args = string(b)
			}
		}
		return llms.ToolCall{
			ID:           "call_" + d.short(),
			Type:         "function",
			FunctionCall: &llms.FunctionCall{Name: t.Function.Name, Arguments: args},
		}, true
	}
	return llms.ToolCall{}, false
}
