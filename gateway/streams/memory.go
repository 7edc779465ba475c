package streams

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Memory is the in-process Store of a single node. Streams expire TTL after
// their last append; expired streams are swept as new ones begin, at most
// once per TTL.
type Memory struct {
	ttl    time.Duration
	maxLen int
	now    func() time.Time

	mu        sync.Mutex
	streams   map[string]*memStream
	lastSweep time.Time
	// created, when a follower awaits a stream not created yet, is closed
	// (and dropped) as the next stream is created.
	created chan struct{}
}

type memStream struct {
	owner    string
	attempts int
	first    int64 // sequence number of entries[head]
	// entries[head:] are the kept entries; the dropped ones before head are
	// compacted away once they are as many as maxLen, so an append to a
	// stream at its bound costs O(1) amortised instead of a copy of all
	// its entries.
	entries []Entry
	head    int
	expires time.Time
	// changed is closed and replaced on every append.
	changed chan struct{}
}

var _ Store = (*Memory)(nil)

// MemoryOptions configures NewMemory; zero values mean the defaults.
type MemoryOptions struct {
	// TTL is how long a stream is kept after its last append (DefaultTTL).
	TTL time.Duration
	// MaxLen bounds the entries kept per stream (DefaultMaxLen); older
	// entries are dropped first.
	MaxLen int
	// Clock replaces time.Now in tests.
	Clock func() time.Time
}

// NewMemory returns an empty in-process store.
func NewMemory(opts MemoryOptions) *Memory {
	m := &Memory{ttl: opts.TTL, maxLen: opts.MaxLen, now: opts.Clock, streams: map[string]*memStream{}}
	if m.ttl <= 0 {
		m.ttl = DefaultTTL
	}
	if m.maxLen <= 0 {
		m.maxLen = DefaultMaxLen
	}
	if m.now == nil {
		m.now = time.Now
	}
	return m
}

// get returns the live stream id; the caller holds mu.
func (m *Memory) get(id string) *memStream {
	s := m.streams[id]
	if s != nil && !m.now().Before(s.expires) {
		delete(m.streams, id)
		close(s.changed)
		return nil
	}
	return s
}

// sweep drops expired streams; the caller holds mu.
func (m *Memory) sweep() {
	now := m.now()
	for id, s := range m.streams {
		if !now.Before(s.expires) {
			delete(m.streams, id)
			close(s.changed)
		}
	}
}

// Begin implements Store.
func (m *Memory) Begin(_ context.Context, id, owner string) (Cursor, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.get(id)
	if s == nil {
		s = m.create(id, owner)
	}
	if s.owner != owner {
		return Cursor{}, fmt.Errorf("stream %s: %w", id, ErrConflict)
	}
	s.attempts++
	s.expires = m.now().Add(m.ttl)
	kept := s.entries[s.head:]
	c := Cursor{Attempt: s.attempts, Last: s.first - 1 + int64(len(kept))}
	if n := len(kept); n > 0 {
		c.Finished, c.Failed = kept[n-1].Final(), kept[n-1].Kind == KindError
	}
	return c, nil
}

// Append implements Store.
func (m *Memory) Append(_ context.Context, id string, entries ...Entry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.get(id)
	if s == nil {
		return fmt.Errorf("stream %s: %w", id, ErrNotFound)
	}
	return m.append(s, id, entries)
}

// Start implements Store.
func (m *Memory) Start(_ context.Context, id, owner string, entries ...Entry) error {
	if owner == "" {
		return fmt.Errorf("stream %s: start without an owner", id)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.get(id)
	if s != nil {
		if s.owner != owner {
			return fmt.Errorf("stream %s: %w", id, ErrConflict)
		}
		return m.append(s, id, entries)
	}
	// A refused batch creates nothing.
	for i, e := range entries {
		if e.Seq != int64(i)+1 {
			return fmt.Errorf("stream %s: seq %d, want %d: %w", id, e.Seq, i+1, ErrConflict)
		}
	}
	s = m.create(id, owner)
	s.attempts = 1
	return m.append(s, id, entries)
}

// create adds an empty stream of owner, expiring TTL from now; the caller
// holds mu.
func (m *Memory) create(id, owner string) *memStream {
	now := m.now()
	if now.Sub(m.lastSweep) >= m.ttl {
		m.lastSweep = now
		m.sweep()
	}
	s := &memStream{owner: owner, first: 1, expires: now.Add(m.ttl), changed: make(chan struct{})}
	m.streams[id] = s
	if m.created != nil {
		close(m.created)
		m.created = nil
	}
	return s
}

// append stores entries in s and wakes its followers; the caller holds mu.
func (m *Memory) append(s *memStream, id string, entries []Entry) error {
	// A batch is stored whole or not at all.
	next := s.first + int64(len(s.entries)-s.head)
	for i, e := range entries {
		if e.Seq != next+int64(i) {
			return fmt.Errorf("stream %s: seq %d after %d: %w", id, e.Seq, next-1+int64(i), ErrConflict)
		}
	}
	s.entries = append(s.entries, entries...)
	if over := len(s.entries) - s.head - m.maxLen; over > 0 {
		clear(s.entries[s.head : s.head+over]) // let dropped deltas and data be collected
		s.head += over
		s.first += int64(over)
		if s.head >= m.maxLen {
			n := copy(s.entries, s.entries[s.head:])
			clear(s.entries[n:])
			s.entries, s.head = s.entries[:n], 0
		}
	}
	s.expires = m.now().Add(m.ttl)
	close(s.changed)
	s.changed = make(chan struct{})
	return nil
}

// Owner implements Store.
func (m *Memory) Owner(_ context.Context, id string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.get(id)
	if s == nil {
		return "", fmt.Errorf("stream %s: %w", id, ErrNotFound)
	}
	return s.owner, nil
}

// Follow implements Store.
func (m *Memory) Follow(ctx context.Context, id string, after int64, until time.Time, fn func(Entry) error) error {
	for {
		m.mu.Lock()
		s := m.get(id)
		if s == nil {
			wait := until.Sub(m.now())
			if wait <= 0 {
				m.mu.Unlock()
				return fmt.Errorf("stream %s: %w", id, ErrNotFound)
			}
			if m.created == nil {
				m.created = make(chan struct{})
			}
			created := m.created
			m.mu.Unlock()
			if err := awaitCreated(ctx, created, wait); err != nil {
				return err
			}
			continue
		}
		// Once the stream exists it may expire like any other.
		until = time.Time{}
		kept := s.entries[s.head:]
		start := max(after+1-s.first, 0)
		var batch []Entry
		if start < int64(len(kept)) {
			batch = append(batch, kept[start:]...)
		}
		changed := s.changed
		m.mu.Unlock()
		for _, e := range batch {
			if err := fn(e); err != nil {
				return err
			}
			after = e.Seq
			if e.Final() {
				return nil
			}
		}
		if len(batch) > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// awaitCreated waits for created to close, for at most wait; it returns
// ctx's error when ctx ends first.
func awaitCreated(ctx context.Context, created <-chan struct{}, wait time.Duration) error {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-created:
	case <-t.C:
	}
	return nil
}
