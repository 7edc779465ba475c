package actors

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
	"unsafe"

	"google.golang.org/protobuf/proto"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/signatures"
)

// Message roles in the conversation log. The user's and the assistant's are the
// roles a program's signatures.Chat pairs into turns, so the log's entries reach
// the prompt as they are.
const (
	roleUser      = signatures.RoleUser
	roleAssistant = signatures.RoleAssistant
	// roleSystem marks a recorded failure or interruption: the user's message stayed
	// without a reply.
	roleSystem = "system"
)

const (
	// replyKeySuffix turns a turn's idempotency key into its reply's, so that both
	// messages of a turn are unique in the log and a retry finds the stored reply.
	replyKeySuffix = ":reply"
	// loadTimeout bounds the reads of an activation.
	loadTimeout = 5 * time.Second
	// writeTimeout bounds the writes that record a turn's outcome, which must happen
	// even when the turn's own deadline has passed.
	writeTimeout = 10 * time.Second
	// maxSummary and summaryLine bound the running summary and each line of it.
	maxSummary  = 2000
	summaryLine = 160
	maxTitle    = 80
	// touchInterval bounds how far a conversation's updated_at may trail its last turn.
	// A session moves it with a reply at most this often, and at passivation, since an
	// UPDATE of the row and its two updated_at indexes with every reply of a busy
	// conversation costs more than the reply's own insert.
	touchInterval = time.Second
)

// sessionState is what a session keeps in memory and in its snapshot (as an
// actorpb.SessionSnapshot): everything but the log itself, plus the log's recent tail,
// so an activation needs no log scan.
type sessionState struct {
	OwnerID string
	AgentID string
	Title   string
	// AgentVersion is the version of the agent whose settings the session holds (0: not
	// known yet); BusyPolicy and HistoryWindow are those settings.
	AgentVersion  int64
	BusyPolicy    string
	HistoryWindow int
	// Summary is a running extractive summary of the messages that left the tail.
	Summary string
	// summaryBuf holds Summary at its end once with has extended it, with room for the
	// lines of later turns (see summarize); not part of the snapshot.
	summaryBuf []byte
	Turns      int64
	LastSeq    int64
	Tail       []tailEntry
}

// tailEntry is one recent message. Its role and content are the HistoryEntry that
// GenerateReply carries, shared rather than copied for every turn; entries, their
// extra and their usage are never modified once made. What only some messages have
// lives in extra, so that the tail, which a turn extends and every idle session
// keeps, holds 40 bytes per message instead of 88.
type tailEntry struct {
	*actorpb.HistoryEntry
	ID    string
	Seq   int64
	extra *entryExtra
}

// entryExtra holds a tail entry's fields that only some messages have.
type entryExtra struct {
	// Key is the message's idempotency key; ReplyTo the ID of the message a reply
	// answers.
	Key, ReplyTo string
	// Usage is a reply's model usage, nil for other messages.
	Usage *actorpb.Usage
	// Hash is the requestHash of the turn that stored the message, for messages with an
	// idempotency key; empty for older ones.
	Hash string
}

// newEntry is the tail entry of a message; its extra is made only when one of
// key, replyTo, hash and usage is set.
func newEntry(h *actorpb.HistoryEntry, id string, seq int64, key, replyTo, hash string, usage *actorpb.Usage) tailEntry {
	e := tailEntry{HistoryEntry: h, ID: id, Seq: seq}
	if key != "" || replyTo != "" || hash != "" || usage != nil {
		e.extra = &entryExtra{Key: key, ReplyTo: replyTo, Hash: hash, Usage: usage}
	}
	return e
}

// Key is e's idempotency key, or "".
func (e tailEntry) Key() string {
	if e.extra == nil {
		return ""
	}
	return e.extra.Key
}

// ReplyTo is the ID of the message e answers, or "".
func (e tailEntry) ReplyTo() string {
	if e.extra == nil {
		return ""
	}
	return e.extra.ReplyTo
}

// Hash is the requestHash stored with e, or "".
func (e tailEntry) Hash() string {
	if e.extra == nil {
		return ""
	}
	return e.extra.Hash
}

// Usage is e's model usage, nil for a message that is not a reply.
func (e tailEntry) Usage() *actorpb.Usage {
	if e.extra == nil {
		return nil
	}
	return e.extra.Usage
}

// encodeState is the snapshot form of s.
func encodeState(s sessionState) ([]byte, error) {
	pb := &actorpb.SessionSnapshot{OwnerId: s.OwnerID, AgentId: s.AgentID, Title: s.Title, BusyPolicy: s.BusyPolicy,
		AgentVersion: s.AgentVersion, HistoryWindow: int32(s.HistoryWindow), Summary: s.Summary, Turns: s.Turns, LastSeq: s.LastSeq, Tail: make([]*actorpb.TailEntry, len(s.Tail))}
	for i, e := range s.Tail {
		pb.Tail[i] = &actorpb.TailEntry{Id: e.ID, Seq: e.Seq, Role: e.GetRole(), Content: e.GetContent(), Key: e.Key(), ReplyTo: e.ReplyTo(),
			RequestHash: e.Hash(), Usage: e.Usage()}
	}
	b, err := proto.Marshal(pb)
	if err != nil {
		return nil, fmt.Errorf("encode session state: %w", err)
	}
	return b, nil
}

// decodeState is the state of snapshot form b.
func decodeState(b []byte) (sessionState, error) {
	var pb actorpb.SessionSnapshot
	if err := proto.Unmarshal(b, &pb); err != nil {
		return sessionState{}, fmt.Errorf("decode session state: %w", err)
	}
	s := sessionState{OwnerID: pb.OwnerId, AgentID: pb.AgentId, Title: pb.Title, BusyPolicy: pb.BusyPolicy,
		AgentVersion: pb.AgentVersion, HistoryWindow: int(pb.HistoryWindow), Summary: pb.Summary, Turns: pb.Turns, LastSeq: pb.LastSeq}
	if len(pb.Tail) > 0 {
		s.Tail = make([]tailEntry, len(pb.Tail))
	}
	for i, e := range pb.Tail {
		s.Tail[i] = newEntry(&actorpb.HistoryEntry{Role: e.Role, Content: e.Content}, e.Id, e.Seq, e.Key, e.ReplyTo, e.RequestHash, e.Usage)
	}
	return s, nil
}

// messageMeta is the metadata stored with each message of a turn.
type messageMeta struct {
	CorrelationID string `json:"correlation_id,omitempty"`
	ReplyTo       string `json:"reply_to,omitempty"`
	AgentID       string `json:"agent_id,omitempty"`
	Model         string `json:"model,omitempty"`
	// Usage is stored as JSON with the protocol's field names (prompt_tokens,
	// completion_tokens, cost_usd, cache_hit), zeros left out.
	Usage   *actorpb.Usage  `json:"usage,omitempty"`
	Details json.RawMessage `json:"details,omitempty"`
	Error   *errorRecord    `json:"error,omitempty"`
	// RequestHash is the requestHash of the turn, on both of its messages when it has
	// an idempotency key.
	RequestHash string `json:"request_hash,omitempty"`
}

type errorRecord struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// usageOrZero is u, or an empty usage for a message without one (answers always
// carry a usage).
func usageOrZero(u *actorpb.Usage) *actorpb.Usage {
	if u == nil {
		return &actorpb.Usage{}
	}
	return u
}

// entryOf is the tail entry of a stored message.
func entryOf(m persistence.Message) tailEntry {
	var meta messageMeta
	if len(m.Metadata) > 0 && json.Unmarshal(m.Metadata, &meta) != nil {
		meta = messageMeta{}
	}
	return entryWith(m, meta)
}

// entryWith is the tail entry of a message whose metadata is at hand, which spares a
// turn decoding the metadata it has just encoded.
func entryWith(m persistence.Message, meta messageMeta) tailEntry {
	return newEntry(&actorpb.HistoryEntry{Role: m.Role, Content: m.Content}, m.ID, m.Seq, m.IdempotencyKey, meta.ReplyTo, meta.RequestHash, meta.Usage)
}

// catchUp applies the log's tail (oldest first) to a state loaded from a snapshot,
// which lacks the turns since it was saved. It returns the state and how many of the
// log's messages the snapshot lacked. When the tail does not continue the snapshot
// (the log is behind it, or the read did not reach back to it) the log wins and the
// tail is rebuilt from it alone; only the summary of older messages is then lost.
func (s sessionState) catchUp(window int, log []persistence.Message) (sessionState, int) {
	n := len(log)
	if n == 0 || log[n-1].Seq == s.LastSeq {
		return s, 0
	}
	from := s.LastSeq
	i := slices.IndexFunc(log, func(m persistence.Message) bool { return m.Seq > from })
	if i < 0 || log[i].Seq != from+1 {
		s.Tail, s.LastSeq, i = nil, 0, 0
	}
	entries := make([]tailEntry, n-i)
	for k, m := range log[i:] {
		entries[k] = entryOf(m)
		if m.Role == roleAssistant && m.Seq > from {
			s.Turns++
		}
	}
	return s.with(window, entries...), len(entries)
}

// with returns the state after appending entries, keeping the last window in the tail
// and folding older ones into the summary. s is not modified: a running turn works on
// a copy while the session may still read the original.
//
// The tail keeps spare capacity past its end, and the new entries go there when they
// fit: the new tail is a later window of the same array, so a turn copies no tail and
// a new array (twice the kept length, the kept entries copied once; the first tail
// exactly the kept length) is made only every window/2 turns or so. Writing past the original's end leaves every element the
// original (or any older state) shows untouched. Two states derived from one original
// would share those spare slots; a session derives one at a time (one turn runs at a
// time, and a state that is not adopted is dropped), so each write lands in slots no
// kept state shows.
func (s sessionState) with(window int, entries ...tailEntry) sessionState {
	n := len(s.Tail) + len(entries)
	drop := max(0, n-window)
	fromOld := min(drop, len(s.Tail))
	fromNew := drop - fromOld
	if fromOld > 0 {
		s.Summary, s.summaryBuf = summarize(s.Summary, s.summaryBuf, s.Tail[:fromOld])
	}
	if fromNew > 0 {
		s.Summary, s.summaryBuf = summarize(s.Summary, s.summaryBuf, entries[:fromNew])
	}
	keep, added := s.Tail[fromOld:], entries[fromNew:]
	if cap(keep)-len(keep) >= len(added) {
		s.Tail = append(keep, added...)
	} else {
		// A conversation's first tail is made to measure: most conversations stay
		// idle after a turn or two, and their tail is what a session keeps.
		size := n - drop
		if len(s.Tail) > 0 {
			size *= 2
		}
		tail := make([]tailEntry, 0, size)
		tail = append(tail, keep...)
		s.Tail = append(tail, added...)
	}
	for _, e := range entries {
		s.LastSeq = max(s.LastSeq, e.Seq)
	}
	return s
}

// summarize appends one shortened line per message to the running summary, dropping
// the oldest lines beyond maxSummary, and returns the new summary and the buffer that
// holds it. The new lines are built on the stack. When buf holds summary at its end
// (the summary of the state being extended) and has room for the new lines, they are
// appended to it in place, and the new summary is a later part of the same buffer:
// the summary changes with every turn past the history window, and so a turn copies
// no summary. Otherwise the result goes to a new buffer with room for about as much
// again. Bytes past summary's end are written, never those of summary or of any
// earlier summary in buf; the caller keeps at most one live extension of a buffer
// (as with does).
func summarize(summary string, buf []byte, old []tailEntry) (string, []byte) {
	var lines [2 * (summaryLine + 16)]byte
	add := lines[:0]
	for _, e := range old {
		if e.Role == roleSystem {
			continue
		}
		add = append(add, e.Role...)
		add = append(add, ": "...)
		add = appendLine(add, e.Content, summaryLine)
		add = append(add, '\n')
	}
	if len(add) == 0 {
		return summary, buf
	}
	// Drop whole lines of the old summary until the result fits.
	cut := 0
	for len(summary)-cut+len(add) > maxSummary && cut < len(summary) {
		i := strings.IndexByte(summary[cut:], '\n')
		if i < 0 {
			cut = len(summary)
			break
		}
		cut += i + 1
	}
	if n := len(summary) - cut + len(add); n <= maxSummary {
		if !holdsAtEnd(buf, summary) || cap(buf)-len(buf) < len(add) {
			fresh := make([]byte, 0, n+maxSummary)
			buf = append(fresh, summary[cut:]...)
		}
		buf = append(buf, add...)
		return unsafe.String(&buf[len(buf)-n], n), buf
	}
	// The new lines alone are too long (only with a huge batch of messages).
	out := string(add)
	for len(out) > maxSummary {
		i := strings.IndexByte(out, '\n')
		if i < 0 {
			return truncate(out, maxSummary), nil
		}
		out = out[i+1:]
	}
	return strings.Clone(out), nil
}

// holdsAtEnd reports whether s is the last len(s) bytes of buf, in place.
func holdsAtEnd(buf []byte, s string) bool {
	return len(s) > 0 && len(buf) >= len(s) && unsafe.StringData(s) == &buf[len(buf)-len(s)]
}

// appendLine appends s to dst on one line, its words separated by single spaces,
// shortened as truncate shortens it to n bytes: it is
// truncate(strings.Join(strings.Fields(s), " "), n) without building either string.
func appendLine(dst []byte, s string, n int) []byte {
	start, written := len(dst), 0
	for word := range strings.FieldsSeq(s) {
		if written > 0 {
			dst = append(dst, ' ')
			written++
		}
		dst = append(dst, word...)
		written += len(word)
		if written > n {
			break
		}
	}
	if written <= n {
		return dst
	}
	line := dst[start:]
	for n > 0 && !utf8.RuneStart(line[n]) {
		n--
	}
	return append(dst[:start+n], "…"...)
}

// titleOf is the title a conversation gets from its first message: the message on one
// line, without the invisible characters the gateway refuses in titles (control and
// format characters such as bidirectional overrides, line and paragraph separators), at
// most maxTitle bytes.
func titleOf(content string) string {
	visible := strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) {
			return ' '
		}
		return r
	}, content)
	return truncate(strings.Join(strings.Fields(visible), " "), maxTitle)
}

// truncate shortens s to at most n bytes without splitting a character.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// withSettings is s following the agent's settings.
func (s sessionState) withSettings(a *actorpb.AgentSettings) sessionState {
	s.AgentVersion, s.BusyPolicy, s.HistoryWindow = a.GetVersion(), a.GetBusyPolicy(), int(a.GetHistoryWindow())
	return s
}

// historyWindow is how many earlier messages the agent is given: its own window once
// the session knows it, else the default one.
func (s sessionState) historyWindow() int {
	if s.AgentVersion == 0 {
		return DefaultHistoryWindow
	}
	return s.HistoryWindow
}

// tailWindow is how many messages the tail keeps: the agent's window and the message
// being answered, and at least the runtime's window (replays of recent turns are
// answered from the tail).
func (s sessionState) tailWindow(runtime int) int {
	return max(runtime, s.historyWindow()+1)
}

// history is the tail as the agent's context, without the message being answered. The
// tail holds at least the agent's window; the agent cuts it to its window.
func (s sessionState) history(exclude string) []*actorpb.HistoryEntry {
	out := make([]*actorpb.HistoryEntry, 0, len(s.Tail))
	for _, e := range s.Tail {
		if e.ID != exclude {
			out = append(out, e.HistoryEntry)
		}
	}
	return out
}

// replay returns the stored result of the turn with idempotency key, if its reply is
// in the tail, or reports a mismatch when a message of that key in the tail was stored
// by a request with another hash.
func (s sessionState) replay(convID, key, hash string) (res *actorpb.TurnResult, mismatch bool) {
	if key == "" {
		return nil, false
	}
	for _, e := range s.Tail {
		if e.Key() != key && e.Key() != key+replyKeySuffix {
			continue
		}
		if e.Hash() != "" && e.Hash() != hash {
			return nil, true
		}
		if e.Role == roleAssistant && e.Key() == key+replyKeySuffix {
			return &actorpb.TurnResult{ConversationId: convID, MessageId: e.ID, Seq: e.Seq, Response: e.Content,
				Usage: usageOrZero(e.Usage()), AgentId: s.AgentID, UserMessageId: e.ReplyTo(), Replayed: true}, false
		}
	}
	return nil, false
}

// requestHash identifies what a turn asks for: its content and the agent it names. A
// retry with the same idempotency key must ask for the same; the conversation is the
// key's scope already. The hash, not the content, is kept with the key.
func requestHash(req *actorpb.SendMessage) string {
	h := sha256.New()
	h.Write([]byte(req.GetAgentId()))
	h.Write([]byte{0})
	h.Write([]byte(req.GetContent()))
	return hex.EncodeToString(h.Sum(nil))
}

// errIdempotencyMismatch answers a request that reuses an idempotency key with another
// request.
func errIdempotencyMismatch(corr, key string) *actorpb.ErrorReply {
	return errorReply(actorpb.Code_CODE_IDEMPOTENCY_MISMATCH, corr,
		"idempotency key %q was used with another request; send a new key for a new request", key)
}
