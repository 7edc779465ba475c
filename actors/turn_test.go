package actors

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
	"github.com/kowai/kowai/signatures/lm"
)

// appendsFailAfter fails every write of messages once ready is closed, so the
// failure comes while the agent runs.
type appendsFailAfter struct {
	LogWriter
	ready <-chan struct{}
}

func (f *appendsFailAfter) Submit(ctx context.Context, op persistence.Op) error {
	if !writesMessages(op) {
		return f.LogWriter.Submit(ctx, op)
	}
	return f.AppendMessages(ctx)
}

// writesMessages reports whether op appends messages.
func writesMessages(op persistence.Op) bool {
	switch op := op.(type) {
	case persistence.Insert:
		return op.Table == "messages"
	case persistence.Ops:
		return slices.ContainsFunc(op, writesMessages)
	}
	return false
}

func (f *appendsFailAfter) AppendMessages(ctx context.Context, _ ...persistence.Message) error {
	select {
	case <-f.ready:
	case <-ctx.Done():
		return ctx.Err()
	}
	return fmt.Errorf("injected: %w", persistence.ErrUnavailable)
}

// The user's message commits while the agent starts on it: the model is
// called before the message is durable (here the write fails only once the
// model was called). When the message cannot be stored, the turn answers
// unavailable, the model call is cancelled, and the log holds nothing of the
// turn. Before the overlap, the write came first and this turn timed out.
func TestUserMessageCommitsWhileTheAgentStarts(t *testing.T) {
	called, cancelled := make(chan struct{}), make(chan struct{})
	var calledOnce, cancelledOnce sync.Once
	model := lm.Func{ID: "test:blocking", Fn: func(ctx context.Context, _ *lm.Request) (*lm.Response, error) {
		calledOnce.Do(func() { close(called) })
		<-ctx.Done()
		cancelledOnce.Do(func() { close(cancelled) })
		return nil, ctx.Err()
	}}
	h := newHarness(t, persisttest.SQLite(t), harnessOptions{model: model, deps: func(d *Deps) {
		d.Writer = &appendsFailAfter{LogWriter: d.Writer, ready: called}
	}})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := h.send(ctx, conv1, 0, "hello", "k1"); !errors.Is(err, actorpb.ErrUnavailable) {
		t.Fatalf("turn whose message could not be stored: %v, want unavailable", err)
	}
	select {
	case <-cancelled:
	case <-ctx.Done():
		t.Fatal("the model call went on after the user's message failed to commit")
	}
	if msgs := h.logOf(conv1); len(msgs) != 0 {
		t.Fatalf("log %+v, want nothing of the failed turn", msgs)
	}
}

// countingMessages counts the look-ups of stored messages by idempotency key.
type countingMessages struct {
	persistence.Messages
	lookups atomic.Int64
}

func (c *countingMessages) GetByIdempotencyKey(ctx context.Context, conversationID, key string) (persistence.Message, error) {
	c.lookups.Add(1)
	return c.Messages.GetByIdempotencyKey(ctx, conversationID, key)
}

// A turn whose idempotency key the gateway minted just now (fresh_key) skips the
// look-ups of a stored reply and message; a key the client brings is looked up, and
// a retry with it still gets the stored reply.
func TestFreshKeySkipsLookups(t *testing.T) {
	var msgs *countingMessages
	h := newHarness(t, persisttest.SQLite(t), harnessOptions{deps: func(d *Deps) {
		msgs = &countingMessages{Messages: d.Messages}
		d.Messages = msgs
	}})
	h.mustSend(conv1, 0, "first", "")
	send := func(content, key string, freshKey bool) *actorpb.TurnResult {
		t.Helper()
		res, err := actorpb.As[*actorpb.TurnResult](h.grains.Call(t.Context(), KindSession, conv1, &actorpb.SendMessage{
			CorrelationId: "corr-" + key, IdempotencyKey: key, ConversationId: conv1, UserId: h.users[0],
			Content: content, FreshKey: freshKey}))
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	before := msgs.lookups.Load()
	first := send("minted", "kowai-minted", true)
	if n := msgs.lookups.Load() - before; n != 0 {
		t.Fatalf("a turn with a fresh key looked it up %d times", n)
	}
	before = msgs.lookups.Load()
	send("brought", "client-key", false)
	if n := msgs.lookups.Load() - before; n == 0 {
		t.Fatal("a turn with the client's key did not look it up")
	}
	if again := send("minted", "kowai-minted", false); !again.GetReplayed() || again.GetMessageId() != first.GetMessageId() {
		t.Fatalf("retry with the minted key: %+v, want the stored reply %s", again, first.GetMessageId())
	}
	h.checkLog(conv1, roleUser, roleAssistant, roleUser, roleAssistant, roleUser, roleAssistant)
}

// messageWrites records the row counts of the message writes handed to the writer.
type messageWrites struct {
	LogWriter
	mu   sync.Mutex
	rows []int
}

func (m *messageWrites) Submit(ctx context.Context, op persistence.Op) error {
	if n := messageRows(op); n > 0 {
		m.mu.Lock()
		m.rows = append(m.rows, n)
		m.mu.Unlock()
	}
	return m.LogWriter.Submit(ctx, op)
}

func (m *messageWrites) counts() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.rows)
}

// messageRows counts the messages op appends.
func messageRows(op persistence.Op) int {
	switch op := op.(type) {
	case persistence.Insert:
		if op.Table == "messages" {
			return len(op.Rows)
		}
	case persistence.Ops:
		n := 0
		for _, o := range op {
			n += messageRows(o)
		}
		return n
	}
	return 0
}

// A reply back within the user message's grace commits together with the message:
// the writer is handed one write of both, on a first turn (with the conversation's
// row) as on the next, and never the message alone.
func TestFastReplyCommitsWithTheUserMessage(t *testing.T) {
	var w *messageWrites
	h := newHarness(t, persisttest.SQLite(t), harnessOptions{deps: func(d *Deps) {
		w = &messageWrites{LogWriter: d.Writer}
		d.Writer = w
		d.UserMessageGrace = time.Minute // every reply is back by then
	}})
	h.mustSend(conv1, 0, "first", "")
	h.mustSend(conv1, 0, "second", "k2")
	if got := w.counts(); !slices.Equal(got, []int{2, 2}) {
		t.Fatalf("message writes of %v rows, want [2 2]: one write of the user's message and the reply per turn", got)
	}
	h.checkLog(conv1, roleUser, roleAssistant, roleUser, roleAssistant)
}

// The grace does not hold the user's message back for a slow model: once it ends, the
// message is committed while the model still runs.
func TestUserMessageDurableWhileTheModelRuns(t *testing.T) {
	db := persisttest.SQLite(t)
	store := persistence.NewMessageStore(db)
	model := lm.Func{ID: "test:waits", Fn: func(ctx context.Context, _ *lm.Request) (*lm.Response, error) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		for {
			page, err := store.ListByConversation(ctx, conv1, persistence.Forward, persistence.PageRequest{Limit: 10})
			if err == nil && len(page.Items) == 1 && page.Items[0].Role == roleUser {
				return &lm.Response{Text: chatReply("stored first")}, nil
			}
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("the user's message was not stored while the model ran: %w", ctx.Err())
			case <-time.After(5 * time.Millisecond):
			}
		}
	}}
	h := newHarness(t, db, harnessOptions{model: model})
	if res := h.mustSend(conv1, 0, "hello", ""); res.GetResponse() != "stored first" {
		t.Fatalf("reply %q", res.GetResponse())
	}
	h.checkLog(conv1, roleUser, roleAssistant)
}
