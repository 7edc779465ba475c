package signatures

import (
	"encoding/json"
	"strings"
	"unicode"

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
	// Each message is built in one allocation of its final size, and the
	// messages' single parts share one array: a chat turn renders its whole
	// history on every call.
	parts := make([]llms.ContentPart, 2*c.len())
	text := func(role llms.ChatMessageType, s string) llms.MessageContent {
		if len(parts) == 0 {
			return llms.TextParts(role, s)
		}
		p := parts[:1:1]
		p[0], parts = llms.TextContent{Text: s}, parts[1:]
		return llms.MessageContent{Role: role, Parts: p}
	}
	// The messages are strings, which formatInput renders as they are: they go to
	// joinBlock directly, not boxed into an any for each message of every turn.
	c.turns(func(user, reply string) {
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
		msgs = append(msgs, text(llms.ChatMessageTypeHuman, u), text(llms.ChatMessageTypeAI, a))
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
