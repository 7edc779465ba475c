package gateway

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kowai/kowai/gateway/streams"
)

// TestStreamIDs: minted IDs are signed for their owner and tell when they
// were minted; a key the gateway minted names one stream per conversation,
// the same on every node sharing the key; nothing else passes as signed.
func TestStreamIDs(t *testing.T) {
	at := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	ids := newStreamIDs(testStreamKey)
	ids.now = func() time.Time { return at }
	other := newStreamIDs(testStreamKey) // another node
	stranger := newStreamIDs(nil)        // a node with another key

	id := ids.mint("u1")
	if !isUUID(id) || uuid.MustParse(id).Version() != 8 {
		t.Fatalf("minted %q", id)
	}
	if when, ok := other.minted(id, "u1"); !ok || !when.Equal(at) {
		t.Fatalf("minted(own id) = %v %v, want %v", when, ok, at)
	}
	tampered := uuid.MustParse(id)
	tampered[3] ^= 1
	for name, c := range map[string]struct {
		ids       *streamIDs
		id, owner string
	}{
		"another owner": {ids, id, "u2"},
		"another key":   {stranger, id, "u1"},
		"tampered":      {ids, tampered.String(), "u1"},
		"random":        {ids, uuid.NewString(), "u1"},
		"derived":       {ids, uuid.NewSHA1(streamSpace, []byte("x")).String(), "u1"},
		"not a UUID":    {ids, "stream", "u1"},
	} {
		if _, ok := c.ids.minted(c.id, c.owner); ok {
			t.Errorf("%s: %q passes as signed for %s", name, c.id, c.owner)
		}
	}

	key := ids.mintKey("u1")
	a1, ok1 := ids.forKey("u1", "conv-a", key)
	a2, ok2 := other.forKey("u1", "conv-a", key)
	b, okb := ids.forKey("u1", "conv-b", key)
	if !ok1 || !ok2 || !okb || a1 != a2 || a1 == b {
		t.Fatalf("forKey: %s %v, on another node %s %v, another conversation %s %v", a1, ok1, a2, ok2, b, okb)
	}
	if when, ok := ids.minted(a1, "u1"); !ok || !when.Equal(at) {
		t.Fatalf("a key's stream is not signed with the key's time: %v %v", when, ok)
	}
	for name, c := range map[string]struct{ owner, key string }{
		"another owner's key": {"u2", key},
		"a client's key":      {"u1", "retry-1"},
		"unsigned minted":     {"u1", mintedKeyPrefix + uuid.NewString()},
	} {
		if id, ok := ids.forKey(c.owner, "conv-a", c.key); ok {
			t.Errorf("%s: forKey gave %s", name, id)
		}
	}

	// A signed ID is awaited announcedGrace from its minting, at most from
	// now when the minting node's clock ran ahead.
	for _, c := range []struct {
		name  string
		now   time.Time
		owner string
		want  time.Time
	}{
		{"just minted", at, "u1", at.Add(announcedGrace)},
		{"a little later", at.Add(time.Second), "u1", at.Add(announcedGrace)},
		{"too late", at.Add(announcedGrace), "u1", time.Time{}},
		{"minted ahead of this clock", at.Add(-time.Hour), "u1", at.Add(-time.Hour).Add(announcedGrace)},
		{"another owner", at, "u2", time.Time{}},
	} {
		ids.now = func() time.Time { return c.now }
		if got := ids.awaitUntil(id, c.owner); !got.Equal(c.want) {
			t.Errorf("%s: awaitUntil %v, want %v", c.name, got, c.want)
		}
	}
}

// countingStore counts a store's Owner look-ups.
type countingStore struct {
	streams.Store
	owners atomic.Int64
}

func (s *countingStore) Owner(ctx context.Context, id string) (string, error) {
	s.owners.Add(1)
	return s.Store.Owner(ctx, id)
}

// TestStreamLookup: a stream the store does not hold is awaited only when
// its ID is signed for the caller and young; anything else answers 404
// after one look-up, without retrying.
func TestStreamLookup(t *testing.T) {
	ctx := t.Context()
	store := &countingStore{Store: streams.NewMemory(streams.MemoryOptions{})}
	cs := &chatStreams{store: store, ids: newStreamIDs(testStreamKey)}
	at := time.Now().Truncate(time.Millisecond) // IDs hold milliseconds
	cs.ids.now = func() time.Time { return at }
	announced := cs.ids.mint("u1")
	stored := cs.ids.mint("u1")
	if err := store.Start(ctx, stored, "u1"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, id, user string
		later          time.Duration
		want           time.Time // zero with wantErr: 404
		wantErr        bool
	}{
		{"stored", stored, "u1", 0, time.Time{}, false},
		{"stored, another user", stored, "u2", 0, time.Time{}, true},
		{"announced", announced, "u1", time.Second, at.Add(announcedGrace), false},
		{"announced, another user", announced, "u2", 0, time.Time{}, true},
		{"announced long ago", announced, "u1", announcedGrace, time.Time{}, true},
		{"never issued", uuid.NewString(), "u1", 0, time.Time{}, true},
	} {
		cs.ids.now = func() time.Time { return at.Add(c.later) }
		before := store.owners.Load()
		until, err := cs.lookup(ctx, c.id, c.user)
		if looks := store.owners.Load() - before; looks != 1 {
			t.Errorf("%s: %d look-ups, want 1", c.name, looks)
		}
		if c.wantErr {
			if asError(err).Status != http.StatusNotFound {
				t.Errorf("%s: %v, want 404", c.name, err)
			}
			continue
		}
		if err != nil || !until.Equal(c.want) {
			t.Errorf("%s: until %v %v, want %v", c.name, until, err, c.want)
		}
	}
}

// heldStore holds every Start until release is closed: a producer whose
// first write is slow, so its stream's ID is out before the stream is.
type heldStore struct {
	streams.Store
	release chan struct{}
}

func (s heldStore) Start(ctx context.Context, id, owner string, entries ...streams.Entry) error {
	select {
	case <-s.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.Store.Start(ctx, id, owner, entries...)
}

// TestResumeAwaitsAnAnnouncedStream: a client resumes, on the other node,
// a reply whose stream ID it has from the response's headers while the
// producer's first write has not reached the store: over SSE and over
// WebSocket the resume waits for the stream and gets the whole reply, and
// the WebSocket connection serves its other frames meanwhile (an unknown
// stream's resume answers 404 at once). Another user, or an ID never
// issued, gets 404 at once.
func TestResumeAwaitsAnAnnouncedStream(t *testing.T) {
	for name, stores := range storesUnderTest(t) {
		t.Run(name, func(t *testing.T) {
			sa, sb := stores(t)
			release := make(chan struct{})
			var once atomic.Bool
			releaseStarts := func() {
				if once.CompareAndSwap(false, true) {
					close(release)
				}
			}
			t.Cleanup(releaseStarts)
			deltas := make(chan string)
			chat := newStepChat(deltas)
			a := gatewayWith(t, heldStore{sa, release}, chat)
			b := gatewayWith(t, heldStore{sb, release}, chat)
			r := openSSE(t, http.MethodPost, a.url+"/api/v1/chat/message", "good-u1", `{"content":"tell me"}`, nil)
			sid := r.res.Header.Get("X-Kowai-Stream-Id")
			chat.waitStarted(t, 1)
			if _, err := sb.Owner(t.Context(), sid); !errors.Is(err, streams.ErrNotFound) {
				t.Fatalf("the stream is stored before its first write: %v", err)
			}

			// Another user, and an ID never issued: 404 at once.
			for _, c := range []struct{ id, token string }{{sid, "good-u2"}, {uuid.NewString(), "good-u1"}, {forged(sid), "good-u1"}} {
				req, _ := http.NewRequest(http.MethodGet, b.url+"/api/v1/chat/streams/"+c.id, nil)
				req.Header.Set("Accept", "text/event-stream")
				req.Header.Set("Authorization", "Bearer "+c.token)
				res, err := sseClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				if res.StatusCode != http.StatusNotFound {
					t.Fatalf("resume of %s by %s: status %d", c.id, c.token, res.StatusCode)
				}
			}

			resumed := openSSE(t, http.MethodGet, b.url+"/api/v1/chat/streams/"+sid, "good-u1", "", nil)
			ws, _, err := wsDial(t, b, "good-u1")
			if err != nil {
				t.Fatal(err)
			}
			if err := ws.WriteJSON(map[string]any{"type": "resume", "stream_id": sid, "id": "held"}); err != nil {
				t.Fatal(err)
			}
			if err := ws.WriteJSON(map[string]any{"type": "resume", "stream_id": uuid.NewString(), "id": "unknown"}); err != nil {
				t.Fatal(err)
			}
			// Still held: the second resume's answer cannot wait for the first.
			if f := readFrame(t, ws); f.Type != "error" || f.Status != http.StatusNotFound || f.ID != "unknown" {
				t.Fatalf("resume of an unknown stream while another waits: %+v", f)
			}

			releaseStarts()
			deltas <- "one "
			deltas <- "two"
			close(deltas)
			for name, reader := range map[string]*sseReader{"resumed": resumed, "first": r} {
				if text, final := reader.readReply(t, sid, 0); text != "one two" || final.Event != "done" {
					t.Fatalf("%s reader: %q then %+v", name, text, final)
				}
			}
			var text string
			for {
				f := readFrame(t, ws)
				if f.ID != "held" || f.StreamID != sid {
					t.Fatalf("websocket resume frame %+v", f)
				}
				if f.Type == "done" {
					if text != "one two" || f.Response != "one two" {
						t.Fatalf("websocket resume: %q then %+v", text, f)
					}
					break
				}
				text += f.Delta
			}
		})
	}
}

// forged returns id with its signature changed.
func forged(id string) string {
	u := uuid.MustParse(id)
	u[15] ^= 0x55
	return u.String()
}
