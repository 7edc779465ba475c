package streams

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Entry kinds.
const (
	// KindToken is one delta of the reply.
	KindToken = "token"
	// KindRestart says the turn is produced again from the start; Attempt
	// is the new attempt's number. Tokens before it belong to an abandoned
	// attempt.
	KindRestart = "restart"
	// KindDone is the final entry of a reply that completed; Data holds the
	// answer.
	KindDone = "done"
	// KindError is the final entry of a reply that failed; Data holds the
	// problem.
	KindError = "error"
)

// DefaultTTL is how long a stream is kept after its last append.
const DefaultTTL = 5 * time.Minute

// DefaultMaxLen bounds the entries kept per stream.
const DefaultMaxLen = 10000

var (
	// ErrNotFound is returned for a stream that does not exist (or expired),
	// and to anyone but its owner.
	ErrNotFound = errors.New("streams: stream not found")
	// ErrConflict is returned by Append for an entry whose sequence number
	// does not follow the stored ones, and by Begin for another owner's
	// stream.
	ErrConflict = errors.New("streams: conflicting append")
)

// Entry is one numbered chunk of a stream.
type Entry struct {
	// Seq numbers the entry, from 1.
	Seq int64 `json:"seq"`
	// Kind is one of the Kind constants.
	Kind string `json:"kind"`
	// Delta is a token entry's text.
	Delta string `json:"delta,omitempty"`
	// Attempt is a restart entry's new attempt number.
	Attempt int `json:"attempt,omitempty"`
	// Data is a final entry's payload (the answer or the problem), as JSON.
	Data json.RawMessage `json:"data,omitempty"`
}

// Final reports whether e ends its stream.
func (e Entry) Final() bool { return e.Kind == KindDone || e.Kind == KindError }

// Cursor is where a producer's attempt starts.
type Cursor struct {
	// Attempt is 1 for a new stream, and one more than the stored attempts
	// otherwise.
	Attempt int
	// Last is the sequence number of the last stored entry, 0 for a new
	// stream.
	Last int64
	// Finished is true when the stored stream already has its final entry;
	// the producer must then append nothing.
	Finished bool
	// Failed is true when that final entry is an error.
	Failed bool
}

// Store keeps streams. Implementations are safe for concurrent use.
type Store interface {
	// Begin opens stream id for a new attempt by owner, creating it when it
	// does not exist. It fails with ErrConflict when another owner holds id.
	Begin(ctx context.Context, id, owner string) (Cursor, error)
	// Append stores entries, whose sequence numbers must continue the
	// stream's without gaps (ErrConflict otherwise), and renews the
	// stream's TTL.
	Append(ctx context.Context, id string, entries ...Entry) error
	// Start creates stream id for owner as its first attempt when it does
	// not exist, and appends entries, if any, as Append does, in one step.
	// It stands for Begin when the caller minted the stream's ID just now,
	// so that nothing can be stored under it and the cursor would be
	// {Attempt: 1}: the stream then costs no write before its first
	// entries. On a stream of the same owner that exists it only appends;
	// another owner's stream is refused with ErrConflict.
	Start(ctx context.Context, id, owner string, entries ...Entry) error
	// Owner returns the stream's owner, or ErrNotFound.
	Owner(ctx context.Context, id string) (string, error)
	// Follow calls fn with every entry after seq after, in order: the
	// stored ones, then the live ones as they are appended. It returns nil
	// after the final entry, fn's error when fn fails, ctx's error when ctx
	// ends, and ErrNotFound when the stream does not exist (or expires).
	// With until set, a stream that does not exist yet is awaited until
	// then, woken by the same notification that brings live entries, not
	// by polling: its ID was handed out before its producer's first write.
	Follow(ctx context.Context, id string, after int64, until time.Time, fn func(Entry) error) error
}
