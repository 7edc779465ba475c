package signatures

import (
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
	"unsafe"

	"github.com/tmc/langchaingo/llms"
)

// Roles of a Conversation's messages that a Chat renders; messages of any other
// role (a recorded failure, say) are left out.
const (
	RoleUser      = "user"
	RoleAssistant = "assistant"
)

// Conversation is a chat's earlier messages, oldest first, in the shape their
// owner keeps them: a Chat reads them in place, so a chat turn hands its
// history from the conversation's store to the prompt without copying it into
// turns.
type Conversation interface {
	// Len is the number of messages.
	Len() int
	// Message returns the role and content of message i.
	Message(i int) (role, content string)
}

// Message is one message of a Messages conversation.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Messages is a Conversation held in a slice.
type Messages []Message

// Len implements Conversation.
func (m Messages) Len() int { return len(m) }

// Message implements Conversation.
func (m Messages) Message(i int) (role, content string) { return m[i].Role, m[i].Content }

// Chat is the value of a History input given as a conversation. Each user
// message answered by an assistant message (the next one with content) is one
// turn: it renders as the DSPy History turn {Input: message, Output: reply}
// does. Unanswered messages and other roles are left out: they would teach the
// model to answer with nothing.
type Chat struct {
	// Messages are the earlier messages; nil is no history.
	Messages Conversation
	// Input is the input field a turn's user message fills, Output the output
	// field its reply fills.
	Input, Output string
	// Cache, when set, keeps the rendered turns between the calls that render
	// this conversation (see ChatCache); nil renders every turn afresh. It does
	// not change what is rendered.
	Cache *ChatCache `json:"-"`
}

// ChatCache keeps the rendered turns of one conversation's history between the
// calls that render it, so that a call renders only the turns that are new
// since the last one: a chat's history window moves by a turn per call, and
// rendering all of it on every call would build the whole history's text again.
//
// A rendered turn is reused only for the same user message, reply and fields,
// and rendering is a function of those alone, so a call renders byte for byte
// what it renders without the cache. The cache holds the turns of the last call
// that used it (turns that left the window are dropped then) and serves one call
// at a time: a call that finds it in use renders without it. Messages it holds
// are shared with the calls' prompts, whose parts nothing changes in place.
//
// The zero value is an empty cache, safe for concurrent use.
type ChatCache struct {
	mu sync.Mutex
	// in and out are the names of the fields the turns were rendered for, ""
	// for a field the signature lacks.
	in, out string
	// turns are the last call's turns in order; spare is the array the call
	// before used, where the next call builds its list.
	turns, spare []renderedTurn
	size         atomic.Int64
}

// renderedTurn is one answered user message and its reply, as the conversation
// holds them, and their rendering: the user message's single part, then the
// reply's.
type renderedTurn struct {
	user, reply string
	parts       []llms.ContentPart
}

// Size is about how many bytes the cache holds, counting the messages it
// keeps alive: an owner that keeps many caches bounds them by it.
func (cc *ChatCache) Size() int64 { return cc.size.Load() }

// render appends c's turns to msgs, reusing the turns of the previous call
// that rendered them for the same fields, rendering the others with render
// (into a new array of two parts). The caller holds cc.mu.
func (cc *ChatCache) render(msgs []llms.MessageContent, c Chat, in, out string,
	render func(user, reply string) []llms.ContentPart) []llms.MessageContent {
	old := cc.turns
	if cc.in != in || cc.out != out {
		old, cc.in, cc.out = nil, in, out
	}
	next := cc.spare[:0]
	// The window moves forward: the turns found in old come in old's order, so
	// the search for the next one starts past the last one found.
	from := 0
	c.turns(func(user, reply string) {
		k := from
		for k < len(old) && (old[k].user != user || old[k].reply != reply) {
			k++
		}
		var t renderedTurn
		if k < len(old) {
			t, from = old[k], k+1
		} else {
			t = renderedTurn{user: user, reply: reply, parts: render(user, reply)}
		}
		next = append(next, t)
		msgs = append(msgs, llms.MessageContent{Role: llms.ChatMessageTypeHuman, Parts: t.parts[:1:1]},
			llms.MessageContent{Role: llms.ChatMessageTypeAI, Parts: t.parts[1:2:2]})
	})
	// The turns that left the window are let go; the array is the next call's.
	clear(cc.turns)
	cc.turns, cc.spare = next, cc.turns[:0]
	size := int64(cap(cc.turns)+cap(cc.spare)) * int64(unsafe.Sizeof(renderedTurn{}))
	for _, t := range cc.turns {
		// The texts, the rendered texts, and the parts and their boxes.
		size += int64(len(t.user) + len(t.reply) + 2*32)
		for _, p := range t.parts {
			if text, ok := p.(llms.TextContent); ok {
				size += int64(len(text.Text))
			}
		}
	}
	cc.size.Store(size)
	return msgs
}

// turns calls f with each answered user message and its reply, in order.
func (c Chat) turns(f func(user, reply string)) {
	if c.Messages == nil {
		return
	}
	var pending string
	waiting := false
	for i, n := 0, c.Messages.Len(); i < n; i++ {
		role, content := c.Messages.Message(i)
		switch {
		case role == RoleUser:
			pending, waiting = content, true
		case role == RoleAssistant && waiting && content != "":
			f(pending, content)
			waiting = false
		}
	}
}

// History returns c as a DSPy History: one {Input: message, Output: reply}
// value per turn.
func (c Chat) History() History {
	h := History{Messages: []Values{}}
	c.turns(func(user, reply string) {
		h.Messages = append(h.Messages, Values{c.Input: user, c.Output: reply})
	})
	return h
}

// MarshalJSON encodes c as its History, so that traces and saved states hold
// the DSPy form.
func (c Chat) MarshalJSON() ([]byte, error) { return json.Marshal(c.History()) }

// len is an upper bound of c's turn count.
func (c Chat) len() int {
	if c.Messages == nil {
		return 0
	}
	return c.Messages.Len() / 2
}

// chatTurns appends c's turns to msgs, each as the user and assistant messages
// that the History turn {c.Input: message, c.Output: reply} renders as, without
// building that turn.
func (pr *prompt) chatTurns(msgs []llms.MessageContent, c Chat) []llms.MessageContent {
	var in, out *Field
	for i := range pr.rest.inputs {
		if pr.rest.inputs[i].Name == c.Input {
			in = &pr.rest.inputs[i]
		}
	}
	for i := range pr.rest.outputs {
		if pr.rest.outputs[i].Name == c.Output {
			out = &pr.rest.outputs[i]
		}
	}
	// The messages' texts are built in one allocation each, of their final
	// size: a chat turn renders its whole history on every call, or with a
	// cache the turns that are new.
	render := func(parts []llms.ContentPart, user, reply string) [2]llms.MessageContent {
		var u string
		if in != nil {
			// What strings.TrimSpace(marker + "\n" + text) is: the marker starts
			// with no space, and an empty text leaves the marker alone.
			u = joinBlock(in.Name, strings.TrimRightFunc(user, unicode.IsSpace), "")
		}
		a := "\n\n" + completedMarker + "\n"
		if out != nil {
			a = joinBlock(out.Name, reply, a)
		}
		parts[0], parts[1] = llms.TextContent{Text: u}, llms.TextContent{Text: a}
		return [2]llms.MessageContent{{Role: llms.ChatMessageTypeHuman, Parts: parts[:1:1]}, {Role: llms.ChatMessageTypeAI, Parts: parts[1:2:2]}}
	}
	if cc := c.Cache; cc != nil && cc.mu.TryLock() {
		defer cc.mu.Unlock()
		var inName, outName string
		if in != nil {
			inName = in.Name
		}
		if out != nil {
			outName = out.Name
		}
		// A kept turn's two parts share an array of their own.
		return cc.render(msgs, c, inName, outName, func(user, reply string) []llms.ContentPart {
			parts := make([]llms.ContentPart, 2)
			render(parts, user, reply)
			return parts
		})
	}
	// The messages are strings, which formatInput renders as they are: they go to
	// joinBlock directly, not boxed into an any for each message of every turn.
	// The messages' single parts share one array.
	parts := make([]llms.ContentPart, 2*c.len())
	c.turns(func(user, reply string) {
		m := render(parts[:2:2], user, reply)
		parts = parts[2:]
		msgs = append(msgs, m[0], m[1])
	})
	return msgs
}

// joinBlock is marker(name), then "\n" and text when text is not empty, then
// suffix, in one allocation.
func joinBlock(name, text, suffix string) string {
	var b strings.Builder
	b.Grow(len(markerOpen) + len(name) + len(markerClose) + 1 + len(text) + len(suffix))
	b.WriteString(markerOpen)
	b.WriteString(name)
	b.WriteString(markerClose)
	if text != "" || suffix != "" {
		b.WriteByte('\n')
	}
	b.WriteString(text)
	b.WriteString(suffix)
	return b.String()
}
