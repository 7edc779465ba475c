package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/kowai/kowai/signatures/lm"
)

// Kind says what a journal entry recorded.
type Kind string

// Entry kinds.
const (
	// KindTask is a plain Go function (Task, Go, Map).
	KindTask Kind = "task"
	// KindAgent is a turn on an agent (Agent).
	KindAgent Kind = "agent"
	// KindProgram is a signature program (Program).
	KindProgram Kind = "program"
	// KindChild is a sub-workflow, awaited (Child).
	KindChild Kind = "child"
	// KindSleep is a durable timer; its entry holds the wake-up time.
	KindSleep Kind = "sleep"
	// KindInput is human input (WaitForInput); its entry is written by
	// Executor.SupplyInput.
	KindInput Kind = "input"
)

// Entry is one journaled step of a run, unique by (RunID, Seq). Seq numbers
// are assigned in program order, starting at 1, so a replay meets the same
// step at the same Seq.
type Entry struct {
	RunID string `json:"run_id"`
	Seq   int    `json:"seq"`
	Name  string `json:"name"`
	Kind  Kind   `json:"kind"`
	// Status is StatusCompleted or StatusFailed.
	Status string `json:"status"`
	// Output is the step's JSON result (completed entries).
	Output json.RawMessage `json:"output,omitempty"`
	// Error is the failure (failed entries).
	Error string `json:"error,omitempty"`
	// Attempts counts the executions this result took, crashed ones included.
	Attempts int `json:"attempts"`
	// Usage is the model spend of agent and program steps.
	Usage lm.Usage `json:"usage"`
	// CacheHit is set when the result came from the task cache.
	CacheHit bool `json:"cache_hit,omitempty"`
	// WakeAt is a sleep's wake-up time.
	WakeAt     time.Time `json:"wake_at,omitzero"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
}

// ErrDuplicateEntry means the journal already holds an entry at (RunID,
// Seq): another activation of the run wrote it first. The executor treats
// it as fencing: this activation is stale and stops.
var ErrDuplicateEntry = errors.New("workflows: journal entry already exists")

// Journal is where a run's steps are recorded. Implementations must make
// Append atomic and unique per (RunID, Seq).
type Journal interface {
	// Load returns the run's entries ordered by Seq.
	Load(ctx context.Context, runID string) ([]Entry, error)
	// Append records e, or returns an error wrapping ErrDuplicateEntry when
	// (e.RunID, e.Seq) exists. It returns once e is durable.
	Append(ctx context.Context, e Entry) error
	// DeleteFailed removes the run's failed entries so that a retried run
	// executes those steps again, keeping every completed one.
	DeleteFailed(ctx context.Context, runID string) error
}

// DeferredJournal is a Journal that can take a step's result before it is
// durable, so that the result and whatever the run does next can share one
// commit. Defer queues e for the journal's next write and returns at once (an
// error only when the journal has failed or closed); Flush writes everything
// deferred so far, with Append's contract (an error wrapping ErrDuplicateEntry
// when another activation journaled first), and returns once it is durable. An
// Append writes what was deferred before it in the same commit.
//
// The executor defers the results of the steps it executes and flushes before
// any step starts an attempt and before the workflow waits for a step that has
// not finished, so no step starts, and no workflow blocks, on a result that is
// not durable. What is still deferred when Executor.Run returns belongs to the
// caller: it writes those entries in the commit that records the run's Outcome,
// or drops them when the Outcome is interrupted (those steps run again on
// resume, as if their node had died just before journaling them).
type DeferredJournal interface {
	Journal
	Defer(e Entry) error
	Flush(ctx context.Context) error
}

// MemoryJournal is an in-process Journal for tests and examples.
type MemoryJournal struct {
	mu   sync.Mutex
	runs map[string][]Entry
	// Appends counts successful appends.
	appends int
}

var _ Journal = (*MemoryJournal)(nil)

// NewMemoryJournal returns an empty journal.
func NewMemoryJournal() *MemoryJournal { return &MemoryJournal{runs: map[string][]Entry{}} }

// Load implements Journal.
func (j *MemoryJournal) Load(_ context.Context, runID string) ([]Entry, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.runs[runID]), nil
}

// Append implements Journal.
func (j *MemoryJournal) Append(_ context.Context, e Entry) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	es := j.runs[e.RunID]
	i, found := slices.BinarySearchFunc(es, e.Seq, func(x Entry, seq int) int { return x.Seq - seq })
	if found {
		return fmt.Errorf("%w: run %s seq %d", ErrDuplicateEntry, e.RunID, e.Seq)
	}
	j.runs[e.RunID] = slices.Insert(es, i, e)
	j.appends++
	return nil
}

// DeleteFailed implements Journal.
func (j *MemoryJournal) DeleteFailed(_ context.Context, runID string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.runs[runID] = slices.DeleteFunc(j.runs[runID], func(e Entry) bool { return e.Status == StatusFailed })
	return nil
}

// Appends returns how many entries were appended so far.
func (j *MemoryJournal) Appends() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.appends
}
