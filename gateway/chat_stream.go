package gateway

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/kowai/kowai/gateway/streams"
	"github.com/kowai/kowai/internal/logging"
)

// sseHeartbeat is how often a chat event stream sends a ": ping" comment,
// so proxies keep it open and a gone client is noticed.
const sseHeartbeat = 15 * time.Second

// sseOpenWait is how long an event stream's first ping waits for the first
// event to go out with it: a reply whose first event is stored within it
// reaches its client in one write with the headers instead of two, and no
// event waits for the ping.
const sseOpenWait = 50 * time.Millisecond

// sseQueue bounds the events waiting for one slow SSE client; a client
// further behind is dropped, and resumes with Last-Event-ID.
const sseQueue = 1024

// streamAppendTimeout bounds one write to the stream store.
const streamAppendTimeout = 5 * time.Second

// streamSpace is the UUID namespace of stream IDs derived from a turn's
// user, conversation and idempotency key.
var streamSpace = uuid.MustParse("b6f1e0c2-3d4a-4e59-8a7b-1c2d3e4f5a6b")

// streamIDFor names the stream of a turn's reply. A turn with an
// idempotency key gets an ID derived from its user, conversation and key,
// so a retry of the turn (on any node, after the first attempt's node died)
// appends to the same stream as a new attempt: a signed one for a key the
// gateway minted (see streamIDs.forKey), since that stream is announced
// before it is stored. Any other turn gets a fresh signed one.
func (cs *chatStreams) streamIDFor(t ChatTurn) string {
	if t.IdempotencyKey == "" {
		return cs.ids.mint(t.UserID)
	}
	if id, ok := cs.ids.forKey(t.UserID, t.ConversationID, t.IdempotencyKey); ok {
		return id
	}
	return uuid.NewSHA1(streamSpace, []byte(t.UserID+"\x00"+t.ConversationID+"\x00"+t.IdempotencyKey)).String()
}

// streamRetries bounds how often a streamed turn with an idempotency key is
// sent again when its conversation was moving between nodes (503); the
// waits between the tries double from chatStreams.retryDelay.
const streamRetries = 4

// defaultStreamRetryDelay is the first wait before a streamed turn is sent
// again.
const defaultStreamRetryDelay = 500 * time.Millisecond

// chatStreams records streamed replies in a streams.Store and serves them.
type chatStreams struct {
	store      streams.Store
	ids        *streamIDs
	log        *slog.Logger
	heartbeat  time.Duration
	retryDelay time.Duration
}

// recorder numbers one attempt's entries, stores them in order and hands
// each to emit once it is stored, so a client never holds an entry that a
// reader on another node could not find. Stores are batched: entries that
// arrive while a write is in flight go together in the next.
type recorder struct {
	cs    *chatStreams
	ctx   context.Context
	id    string
	owner string
	emit  func(streams.Entry)
	// created is false while the stream of a fresh turn is not written
	// yet; its first write (Start) creates it.
	created atomic.Bool

	mu      sync.Mutex
	next    int64
	pending []streams.Entry
	closed  bool
	wake    chan struct{}
	done    chan struct{}
	// broken is set once the store failed: the reply still reaches its
	// client, but is no longer resumable.
	broken bool
	// restart is the attempt number of a restart entry still to be written
	// before this attempt's first entry (0 when none is due).
	restart int
	// produced is set once the current attempt added an entry; wrote once
	// any attempt of this recorder did.
	produced, wrote bool
}

// open names the stream of turn's reply and opens it for a new attempt.
// The stream of a turn without an idempotency key, or with one the gateway
// minted for it just now, has a fresh ID (signed, with a random nonce),
// under which nothing can be stored: it starts as a first attempt without
// asking the store, and is created by its recorder (fresh). Any other turn's stream is begun in the
// store; one that already ended in an error is not reused: the turn gets a
// fresh ID.
func (cs *chatStreams) open(ctx context.Context, turn ChatTurn) (id string, cur streams.Cursor, fresh bool, err error) {
	id = cs.streamIDFor(turn)
	if turn.IdempotencyKey == "" || turn.FreshKey {
		return id, streams.Cursor{Attempt: 1}, true, nil
	}
	cur, err = cs.store.Begin(ctx, id, turn.UserID)
	if err == nil && cur.Failed {
		id = cs.ids.mint(turn.UserID)
		cur, err = cs.store.Begin(ctx, id, turn.UserID)
	}
	if err != nil {
		return "", streams.Cursor{}, false, err
	}
	return id, cur, false, nil
}

// record starts recording an attempt at cur, in a stream that open found
// fresh (not stored yet) or not. A second or later attempt starts with a
// restart entry, written with the attempt's first token or answer: a retry
// the session refuses (the first attempt still runs, say) leaves the stream
// to that attempt.
func (cs *chatStreams) record(ctx context.Context, id, owner string, cur streams.Cursor, fresh bool, emit func(streams.Entry)) *recorder {
	r := &recorder{cs: cs, ctx: context.WithoutCancel(ctx), id: id, owner: owner, emit: emit, next: cur.Last + 1,
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	r.created.Store(!fresh)
	if cur.Attempt > 1 {
		r.restart = cur.Attempt
	}
	go r.loop()
	return r
}

// add numbers e and queues it.
func (r *recorder) add(e streams.Entry) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	if r.restart > 0 && e.Kind != streams.KindError {
		r.pending = append(r.pending, streams.Entry{Seq: r.next, Kind: streams.KindRestart, Attempt: r.restart})
		r.next++
	}
	r.restart = 0
	r.produced, r.wrote = true, true
	e.Seq = r.next
	r.next++
	r.pending = append(r.pending, e)
	r.closed = e.Final()
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// delta records one token; it is the onDelta of ChatBackend.Send.
func (r *recorder) delta(d string) { r.add(streams.Entry{Kind: streams.KindToken, Delta: d}) }

// finish records the final entry and waits until every entry is stored
// and emitted. It reports false, recording nothing, for a failed retry that
// produced nothing: the caller tells its client without the stream.
func (r *recorder) finish(reply ChatReply, err error) bool {
	r.mu.Lock()
	silent := err != nil && r.restart > 0 && !r.wrote
	if silent {
		r.closed = true
	}
	r.mu.Unlock()
	switch {
	case silent:
		select {
		case r.wake <- struct{}{}:
		default:
		}
	case err != nil:
		r.add(streams.Entry{Kind: streams.KindError, Data: mustJSON(r.cs.problemOf(r.ctx, err))})
	default:
		r.add(streams.Entry{Kind: streams.KindDone, Data: mustJSON(reply)})
	}
	<-r.done
	return !silent
}

// retry prepares the recorder for the turn being sent again: when the
// attempt that failed produced anything, the next one starts with a restart
// entry, numbered as the store counts attempts.
func (r *recorder) retry() error {
	r.mu.Lock()
	produced := r.produced
	r.mu.Unlock()
	if !produced {
		return nil
	}
	// The attempt's entries may still be on their way to a stream that
	// does not exist yet: create it first (Start is idempotent), or Begin
	// would count this attempt as the first.
	if !r.created.Load() {
		if err := r.cs.store.Start(r.ctx, r.id, r.owner); err != nil {
			return err
		}
		r.created.Store(true)
	}
	cur, err := r.cs.store.Begin(r.ctx, r.id, r.owner)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.restart, r.produced = cur.Attempt, false
	r.mu.Unlock()
	return nil
}

// sendRecorded runs turn, recording its reply in rec. A turn with an
// idempotency key whose conversation was moving between nodes (503) is sent
// again, up to streamRetries times: the session, moved to a survivor, runs
// it again (or answers the stored reply), and the stream says it restarted.
func (cs *chatStreams) sendRecorded(ctx context.Context, chat ChatBackend, turn ChatTurn, rec *recorder) (ChatReply, error) {
	delay := cs.retryDelay
	for i := 0; ; i++ {
		reply, err := chat.Send(ctx, turn, rec.delta)
		if err == nil || turn.IdempotencyKey == "" || i >= streamRetries || asError(err).Status != http.StatusServiceUnavailable {
			return reply, err
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return reply, err
		}
		delay *= 2
		if rerr := rec.retry(); rerr != nil {
			cs.log.WarnContext(ctx, "stream store failed; not retrying the turn", "stream_id", rec.id, "error", rerr)
			return reply, err
		}
		// The first attempt may have created the conversation and stored the
		// message under the key: the retry's session must read what is stored.
		turn.Fresh, turn.FreshKey = false, false
	}
}

// store writes batch, creating the stream with it when it is not yet.
func (r *recorder) store(batch []streams.Entry) error {
	ctx, cancel := context.WithTimeout(r.ctx, streamAppendTimeout)
	defer cancel()
	if r.created.Load() {
		return r.cs.store.Append(ctx, r.id, batch...)
	}
	if err := r.cs.store.Start(ctx, r.id, r.owner, batch...); err != nil {
		return err
	}
	r.created.Store(true)
	return nil
}

func (r *recorder) loop() {
	defer close(r.done)
	// A fresh stream is written at once, with the entries already added if
	// any (a fast model's whole reply, often), so that it exists from the
	// start of the turn, as a begun one does: a retry after this node died
	// counts the next attempt.
	first := !r.created.Load()
	for {
		if !first {
			<-r.wake
		}
		r.mu.Lock()
		batch, closed := r.pending, r.closed
		r.pending = nil
		r.mu.Unlock()
		if (len(batch) > 0 || first) && !r.broken {
			if err := r.store(batch); err != nil {
				r.broken = true
				r.cs.log.WarnContext(r.ctx, "stream store failed; the reply is no longer resumable", "stream_id", r.id, "error", err)
			}
		}
		first = false
		for _, e := range batch {
			r.emit(e)
		}
		if closed {
			r.mu.Lock()
			rest := len(r.pending)
			r.mu.Unlock()
			if rest == 0 {
				return
			}
			select {
			case r.wake <- struct{}{}:
			default:
			}
		}
	}
}

// problemOf renders err as the problem fields of an error event or frame;
// internal errors are logged and reported without detail.
func (cs *chatStreams) problemOf(ctx context.Context, err error) problem {
	e := asError(err)
	if e.Status >= 500 {
		cs.log.ErrorContext(ctx, "streamed turn failed", "status", e.Status, "error", err)
	}
	return problem{Type: "about:blank", Title: e.Title, Status: e.Status, Detail: e.Detail,
		CorrelationID: logging.CorrelationID(ctx), Errors: e.Fields}
}

// wantsEventStream reports whether the client asked for Server-Sent Events.
func wantsEventStream(c *fiber.Ctx) bool {
	return strings.Contains(c.Get(fiber.HeaderAccept), "text/event-stream")
}

// sseSink queues a stream's events for one SSE client; the response's
// body writer drains it. A client that falls sseQueue events behind, or
// whose connection fails, is dropped: gone closes, and the producer goes on.
type sseSink struct {
	id   string
	ch   chan []byte
	gone chan struct{}
	once sync.Once
}

func newSSESink(id string) *sseSink {
	return &sseSink{id: id, ch: make(chan []byte, sseQueue), gone: make(chan struct{})}
}

func (s *sseSink) drop() { s.once.Do(func() { close(s.gone) }) }

// entry queues e as an event; it fails once the client is gone.
func (s *sseSink) entry(e streams.Entry) error {
	var data []byte
	switch e.Kind {
	case streams.KindToken:
		data = mustJSON(struct {
			Seq   int64  `json:"seq"`
			Delta string `json:"delta"`
		}{e.Seq, e.Delta})
	case streams.KindRestart:
		data = mustJSON(struct {
			Seq     int64 `json:"seq"`
			Attempt int   `json:"attempt"`
		}{e.Seq, e.Attempt})
	default:
		data = e.Data
	}
	var b strings.Builder
	b.WriteString("id: ")
	b.WriteString(s.id)
	b.WriteByte(':')
	b.WriteString(strconv.FormatInt(e.Seq, 10))
	b.WriteString("\nevent: ")
	b.WriteString(e.Kind)
	b.WriteString("\ndata: ")
	b.Write(data)
	b.WriteString("\n\n")
	return s.send([]byte(b.String()))
}

// fail queues an error event without an ID, for failures outside the
// stream (it could not be read).
func (s *sseSink) fail(p problem) {
	_ = s.send([]byte("event: error\ndata: " + string(mustJSON(p)) + "\n\n"))
}

func (s *sseSink) send(b []byte) error {
	select {
	case <-s.gone:
		return errSSEGone
	case s.ch <- b:
		return nil
	default:
		s.drop()
		return errSSEGone
	}
}

// errSSEGone stops a producer whose SSE client is gone.
var errSSEGone = errors.New("sse client gone")

// write drains the sink into w until closed is closed and the queue is
// empty, sending heartbeats. Events queued together go out in one flush:
// a client gets every event as soon as it is stored, without a write per
// token when the model is faster than the connection.
func (s *sseSink) write(w *bufio.Writer, heartbeat time.Duration, closed <-chan struct{}) {
	defer s.drop()
	// The headers go out with a first ping (the response body writer sends
	// nothing before a byte of body), and with the first event when it
	// comes within sseOpenWait: a client learns the stream ID, and that the
	// turn was accepted, no later than the first token and sseOpenWait.
	if _, err := w.WriteString(": ping\n\n"); err != nil {
		return
	}
	// drain writes b and every event queued behind it, then flushes.
	drain := func(b []byte) bool {
		for {
			if _, err := w.Write(b); err != nil {
				return false
			}
			select {
			case b = <-s.ch:
				continue
			default:
			}
			return w.Flush() == nil
		}
	}
	open := time.NewTimer(sseOpenWait)
	defer open.Stop()
	select {
	case b := <-s.ch:
		if !drain(b) {
			return
		}
	case <-open.C:
		if w.Flush() != nil {
			return
		}
	case <-closed:
		// The loop below drains the queue; what stays buffered is flushed
		// when write returns.
	}
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		select {
		case b := <-s.ch:
			if !drain(b) {
				return
			}
		case <-tick.C:
			if _, err := w.WriteString(": ping\n\n"); err != nil || w.Flush() != nil {
				return
			}
		case <-closed:
			select {
			case b := <-s.ch:
				drain(b)
			default:
			}
			return
		}
	}
}

// serveSSE answers with stream streamID as an event stream that reaches the
// client unbuffered and uncompressed: sink's events, with heartbeats, until
// finished is closed and sink is drained.
func (cs *chatStreams) serveSSE(c *fiber.Ctx, streamID string, sink *sseSink, finished <-chan struct{}) error {
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set("X-Accel-Buffering", "no")
	c.Set(fiber.HeaderContentEncoding, "identity")
	c.Set("X-Kowai-Stream-Id", streamID)
	heartbeat := cs.heartbeat
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		sink.write(w, heartbeat, finished)
	})
	return nil
}

// streamTurn runs turn and answers with its reply as Server-Sent Events,
// recording it for resumption. The turn goes on when the client leaves.
// The response's headers, sent before the first token, name the stream
// (X-Kowai-Stream-Id), the turn's conversation (X-Kowai-Conversation-Id) and
// its idempotency key (Idempotency-Key, minted by postMessage when the
// client sent none): the same request retried with that key, on any node,
// continues the same stream, with a restart event when the first attempt's
// node died.
func (cs *chatStreams) streamTurn(c *fiber.Ctx, chat ChatBackend, turn ChatTurn) error {
	ctx := context.WithoutCancel(c.UserContext())
	id, cur, fresh, err := cs.open(ctx, turn)
	if err != nil {
		return err
	}
	c.Set("Idempotency-Key", turn.IdempotencyKey)
	c.Set(ConversationHeader, turn.ConversationID)
	sink := newSSESink(id)
	finished := make(chan struct{})
	if cur.Finished {
		// A retry of a turn whose stream completed: the session replays the
		// stored answer (or refuses a mismatched retry), and the stream is
		// sent again as it was.
		go func() {
			defer close(finished)
			if _, err := chat.Send(ctx, turn, nil); err != nil {
				sink.fail(cs.problemOf(ctx, err))
				return
			}
			if err := cs.store.Follow(ctx, id, 0, time.Time{}, sink.entry); err != nil && !errors.Is(err, errSSEGone) {
				sink.fail(cs.problemOf(ctx, err))
			}
		}()
	} else {
		go func() {
			defer close(finished)
			rec := cs.record(ctx, id, turn.UserID, cur, fresh, func(e streams.Entry) { _ = sink.entry(e) })
			reply, err := cs.sendRecorded(ctx, chat, turn, rec)
			if !rec.finish(reply, err) {
				sink.fail(cs.problemOf(ctx, err))
			}
		}()
	}
	return cs.serveSSE(c, id, sink, finished)
}

// parseAfter reads where a resumed stream starts: Last-Event-ID
// ("<stream_id>:<seq>" as sent, or a bare "<seq>"), else ?after=N, else 0.
func parseAfter(c *fiber.Ctx, streamID string) (int64, error) {
	field, raw := "Last-Event-ID", c.Get("Last-Event-ID")
	if raw == "" {
		field, raw = "after", c.Query("after")
	}
	if raw == "" {
		return 0, nil
	}
	if sid, seq, ok := strings.Cut(raw, ":"); ok {
		if !strings.EqualFold(sid, streamID) {
			return 0, Validation(FieldError{Field: field, Message: "names another stream"})
		}
		raw = seq
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || n < 0 {
		return 0, Validation(FieldError{Field: field, Message: "must be an event id of this stream or a sequence number >= 0"})
	}
	return n, nil
}

// errNoStream is the answer for a stream that does not exist, expired, or
// is not the caller's.
func errNoStream() *Error {
	return NewError(http.StatusNotFound, "no such stream (it may have expired)")
}

// lookup checks that userID may follow stream id, and returns until when
// the stream is to be awaited (zero: it must be stored now). A stream the
// store holds must be the caller's. One it does not hold is awaited when its
// ID is signed for the caller and young enough that its producer's first
// write may still come (the ID was announced in a response's headers before
// that write); any other answers 404 at once.
func (cs *chatStreams) lookup(ctx context.Context, id, userID string) (time.Time, error) {
	owner, err := cs.store.Owner(ctx, id)
	switch {
	case errors.Is(err, streams.ErrNotFound):
		if until := cs.ids.awaitUntil(id, userID); !until.IsZero() {
			return until, nil
		}
		return time.Time{}, errNoStream()
	case err != nil:
		return time.Time{}, err
	case owner != userID:
		return time.Time{}, errNoStream()
	}
	return time.Time{}, nil
}

// resume serves GET /api/v1/chat/streams/{stream_id}: the stream's entries
// after Last-Event-ID, the live ones, then its final event.
func (cs *chatStreams) resume(c *fiber.Ctx) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	id := c.Params("stream_id")
	if !isUUID(id) {
		return Validation(FieldError{Field: "stream_id", Message: "must be a UUID"})
	}
	// Fiber's params alias a reused buffer, and ToLower may return its
	// argument; the ID outlives the handler.
	id = strings.Clone(strings.ToLower(id))
	after, err := parseAfter(c, id)
	if err != nil {
		return err
	}
	ctx := context.WithoutCancel(c.UserContext())
	until, err := cs.lookup(ctx, id, p.UserID)
	if err != nil {
		return err
	}
	sink := newSSESink(id)
	finished := make(chan struct{})
	followCtx, cancel := context.WithCancel(ctx)
	go func() {
		defer close(finished)
		defer cancel()
		go func() {
			select {
			case <-sink.gone:
				cancel()
			case <-followCtx.Done():
			}
		}()
		err := cs.store.Follow(followCtx, id, after, until, sink.entry)
		switch {
		case err == nil, errors.Is(err, errSSEGone), errors.Is(err, context.Canceled):
		case errors.Is(err, streams.ErrNotFound):
			sink.fail(cs.problemOf(ctx, errNoStream()))
		default:
			sink.fail(cs.problemOf(ctx, err))
		}
	}()
	return cs.serveSSE(c, id, sink, finished)
}
