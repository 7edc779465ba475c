package persistence

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/doug-martin/goqu/v9"
)

// Run and step states (API.md). The workflow engine defines the same values.
const (
	StatusPending   = "pending"
	StatusRunning   = "running"
	StatusRetrying  = "retrying"
	StatusPaused    = "paused"
	StatusCompleted = "completed"
	StatusFailed    = "failed"
	StatusCancelled = "cancelled"
)

// WorkflowRun is one execution of a named workflow. The row is also the run grain's
// snapshot: every change is a compare-and-swap on Version (SaveRun), so of two
// activations of one run only one can write.
type WorkflowRun struct {
	ID string
	// Name is the registered workflow's name.
	Name string
	// OwnerID is empty for runs started by the system.
	OwnerID string
	// ParentID is the run that started this one as a sub-workflow, or empty.
	ParentID   string
	Status     string
	Parameters json.RawMessage
	Result     json.RawMessage
	Error      string
	// Waiting describes the input a paused run waits for (JSON), nil when none.
	Waiting json.RawMessage
	// Spend is the run's model usage so far (JSON), nil when none.
	Spend   json.RawMessage
	Version int64
	// DueAt is when a node must look at the run: the wake-up time while it sleeps,
	// the end of a claim or of a new run's wait for its grain, now for a run released
	// by its grain or by a lapsed node (ReclaimLapsed). Zero (NULL) when nothing is
	// due: executing (its node's heartbeat covers it), waiting for input, or finished.
	DueAt time.Time
	// LeaseOwner names the node that last claimed or executed the run, and
	// LeaseEpoch that node's process (Heartbeat): an executing run belongs to them.
	LeaseOwner string
	LeaseEpoch int64
	// ContinuedAs is the run that continues this one (continue-as-new), and
	// ContinuedFrom the run this one continues; empty when none.
	ContinuedAs   string
	ContinuedFrom string
	// WebhookURL receives the run's final state (empty: no notification); set at
	// creation only.
	WebhookURL string
	CreatedAt  time.Time
	UpdatedAt  time.Time
	StartedAt  time.Time
	FinishedAt time.Time
}

// RunFilter selects runs for ListRuns. OwnerID empty means every owner.
type RunFilter struct {
	OwnerID string
	Name    string
	Status  string
}

// WorkflowStep is one journal entry of a run, unique by (RunID, Seq).
type WorkflowStep struct {
	RunID    string
	Seq      int
	Name     string
	Kind     string
	Status   string
	Output   json.RawMessage
	Error    string
	Attempts int
	// Spend is the step's model usage (JSON), nil when none.
	Spend      json.RawMessage
	CacheHit   bool
	WakeAt     time.Time
	StartedAt  time.Time
	FinishedAt time.Time
	// Events are events written with this step's row instead of as rows of their
	// own (a completed step's only: a retry deletes failed ones): its own, and
	// the run's (StepSeq 0) that commit with it. The event log (Events,
	// LastEventSeq) reads them with the others. StepInsert stores them; Steps
	// does not read them back.
	Events []WorkflowEvent
}

// WorkflowEvent is one state change of a run or one of its steps, numbered per run
// from 1 (unique by (RunID, Seq)): the source of GET /workflows/{id}/events.
type WorkflowEvent struct {
	RunID string
	Seq   int64
	// StepSeq is the step's sequence number; 0 for the run itself.
	StepSeq int
	Status  string
	// Attempt is the step's attempt a "running" event starts; such events are written
	// before the attempt runs, so they count attempts across crashes.
	Attempt   int
	Data      json.RawMessage
	CreatedAt time.Time
}

// WorkflowRuns stores workflow runs, their journal and their events.
type WorkflowRuns interface {
	// CreateRun stores r (ID, status pending, version 1 and times filled in when
	// empty). An existing ID is ErrDuplicate.
	CreateRun(ctx context.Context, r WorkflowRun) (WorkflowRun, error)
	// GetRun returns the run with this ID, or ErrNotFound.
	GetRun(ctx context.Context, id string) (WorkflowRun, error)
	// ListRuns pages the runs matching f, newest first.
	ListRuns(ctx context.Context, f RunFilter, req PageRequest) (Page[WorkflowRun], error)
	// SaveRun replaces the run's state with r if its stored version is still
	// expected (r.Version must be greater); otherwise ErrConflict, or ErrNotFound.
	SaveRun(ctx context.Context, r WorkflowRun, expected int64) error
	// ClaimDue takes up to limit runs whose DueAt has passed at now, oldest due first,
	// moves their DueAt to now+lease and their LeaseOwner to owner, and returns them.
	// A run another node claims at the same time goes to one of them only.
	ClaimDue(ctx context.Context, now time.Time, owner string, lease time.Duration, limit int) ([]WorkflowRun, error)
	// Heartbeat records that node's process epoch is alive until until.
	Heartbeat(ctx context.Context, node string, epoch int64, until time.Time) error
	// ReclaimLapsed makes due, at now, the executing runs (running or retrying,
	// nothing due) of every node process whose heartbeat lapsed before now, up to
	// limit runs, each with a version compare-and-swap (which fences an activation
	// still executing one); it returns how many it made due. Node rows lapsed for
	// longer than NodeRetention are deleted once they own no executing run.
	ReclaimLapsed(ctx context.Context, now time.Time, limit int) (int, error)
	// OwnedRuns returns the version of every run that node's process epoch
	// executes (running or retrying, nothing due), by run ID.
	OwnedRuns(ctx context.Context, node string, epoch int64) (map[string]int64, error)
	// Steps returns the run's journal by Seq.
	Steps(ctx context.Context, runID string) ([]WorkflowStep, error)
	// AppendStep adds one journal entry; a taken (RunID, Seq) is ErrDuplicate.
	AppendStep(ctx context.Context, s WorkflowStep) error
	// DeleteFailedSteps removes the run's failed journal entries (retry).
	DeleteFailedSteps(ctx context.Context, runID string) error
	// Events returns up to limit of the run's events after seq after, in order.
	Events(ctx context.Context, runID string, after int64, limit int) ([]WorkflowEvent, error)
	// LastEventSeq returns the run's highest event number, 0 when none.
	LastEventSeq(ctx context.Context, runID string) (int64, error)
	// Attempts returns, per step, the highest attempt a "running" event recorded.
	Attempts(ctx context.Context, runID string) (map[int]int, error)
	// CountActive counts the runs of workflow name that are running or retrying,
	// only ownerID's when it is not empty.
	CountActive(ctx context.Context, name, ownerID string) (int, error)
}

// WorkflowStore implements WorkflowRuns on a DB.
type WorkflowStore struct{ db *DB }

var _ WorkflowRuns = (*WorkflowStore)(nil)

// NewWorkflowStore returns the workflow repository of db.
func NewWorkflowStore(db *DB) *WorkflowStore { return &WorkflowStore{db: db} }

var (
	runCols = []any{"id", "name", "owner_id", "parent_id", "status", "parameters", "result", "error", "waiting", "spend",
		"version", "due_at", "lease_owner", "created_at", "updated_at", "started_at", "finished_at", "webhook_url",
		"lease_epoch", "continued_as", "continued_from"}
	stepCols = []string{"run_id", "seq", "name", "kind", "status", "output", "error", "attempts", "spend", "cache_hit", "wake_at", "started_at", "finished_at"}
	// stepInsertCols adds the step's own events (WorkflowStep.Events).
	stepInsertCols = append(slices.Clip(stepCols), "events", "last_event_seq")
	eventCols      = []string{"run_id", "seq", "step_seq", "status", "attempt", "data", "created_at"}
)

// nullJSON is the stored form of optional JSON: NULL when empty.
func nullJSON(b json.RawMessage) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// CreateRun implements WorkflowRuns.
func (s *WorkflowStore) CreateRun(ctx context.Context, r WorkflowRun) (WorkflowRun, error) {
	if r.ID == "" {
		r.ID = newID()
	}
	if r.Status == "" {
		r.Status = StatusPending
	}
	if r.Version == 0 {
		r.Version = 1
	}
	if len(r.Parameters) == 0 {
		r.Parameters = json.RawMessage("{}")
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = time.Now()
	}
	r.CreatedAt = utc(r.CreatedAt)
	r.UpdatedAt = r.CreatedAt
	rec := runRecord(r)
	rec["id"], rec["name"], rec["owner_id"], rec["parent_id"], rec["parameters"], rec["created_at"], rec["webhook_url"] =
		r.ID, r.Name, nullString(r.OwnerID), nullString(r.ParentID), string(r.Parameters), r.CreatedAt, r.WebhookURL
	rec["continued_from"] = r.ContinuedFrom
	if _, err := s.db.Goqu.Insert("workflow_runs").Prepared(true).Rows(rec).Executor().ExecContext(ctx); err != nil {
		return WorkflowRun{}, wrap(err, "create workflow run %s", r.Name)
	}
	return r, nil
}

// RunInsert is CreateRun as an Op for the group-commit Writer, which merges the new
// runs of a batch into one statement, ahead of the batch's other Inserts: the run's
// first journal rows and events may travel in the same Ops, as a new conversation's
// first messages do with ConversationCreate. r must be complete (ID, Status, Version,
// CreatedAt set). A taken ID is ErrDuplicate.
func RunInsert(r WorkflowRun) Op {
	if len(r.Parameters) == 0 {
		r.Parameters = json.RawMessage("{}")
	}
	r.CreatedAt = utc(r.CreatedAt)
	if r.UpdatedAt.IsZero() {
		r.UpdatedAt = r.CreatedAt
	}
	rec := runRecord(r)
	rec["id"], rec["name"], rec["owner_id"], rec["parent_id"], rec["parameters"], rec["created_at"], rec["webhook_url"] =
		r.ID, r.Name, nullString(r.OwnerID), nullString(r.ParentID), string(r.Parameters), r.CreatedAt, r.WebhookURL
	rec["continued_from"] = r.ContinuedFrom
	cols := make([]string, len(runCols))
	row := make([]any, len(runCols))
	for i, c := range runCols {
		cols[i] = c.(string)
		row[i] = rec[cols[i]]
	}
	return leadInsert{Insert{Table: "workflow_runs", Cols: cols, Rows: [][]any{row}}}
}

// runRecord holds the columns SaveRun changes.
func runRecord(r WorkflowRun) goqu.Record {
	updated := r.UpdatedAt
	if updated.IsZero() {
		updated = time.Now()
	}
	return goqu.Record{
		"status": r.Status, "result": nullJSON(r.Result), "error": r.Error, "waiting": nullJSON(r.Waiting),
		"spend": nullJSON(r.Spend), "version": r.Version, "due_at": nullTime(r.DueAt), "lease_owner": r.LeaseOwner,
		"lease_epoch": r.LeaseEpoch, "continued_as": r.ContinuedAs,
		"updated_at": utc(updated), "started_at": nullTime(r.StartedAt), "finished_at": nullTime(r.FinishedAt),
	}
}

func scanRun(sc scanner) (WorkflowRun, error) {
	var (
		r                              WorkflowRun
		owner, parent                  sql.NullString
		params, result, waiting, spend []byte
		due, started, finished         sql.NullTime
	)
	if err := sc.Scan(&r.ID, &r.Name, &owner, &parent, &r.Status, &params, &result, &r.Error, &waiting, &spend,
		&r.Version, &due, &r.LeaseOwner, &r.CreatedAt, &r.UpdatedAt, &started, &finished, &r.WebhookURL,
		&r.LeaseEpoch, &r.ContinuedAs, &r.ContinuedFrom); err != nil {
		return WorkflowRun{}, err
	}
	r.OwnerID, r.ParentID, r.Parameters = owner.String, parent.String, params
	r.DueAt, r.StartedAt, r.FinishedAt = due.Time, started.Time, finished.Time
	r.Result, r.Waiting, r.Spend = rawOrNil(result), rawOrNil(waiting), rawOrNil(spend)
	return r, nil
}

func rawOrNil(b []byte) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	return b
}

// GetRun implements WorkflowRuns.
func (s *WorkflowStore) GetRun(ctx context.Context, id string) (WorkflowRun, error) {
	q := s.db.Goqu.From("workflow_runs").Prepared(true).Select(runCols...).Where(goqu.C("id").Eq(id))
	r, err := first(ctx, q, scanRun)
	if err != nil {
		return WorkflowRun{}, fmt.Errorf("get workflow run %s: %w", id, err)
	}
	return r, nil
}

// ListRuns implements WorkflowRuns. With an owner it reads the (owner_id, created_at,
// id) index; name and status filter the rows it walks.
func (s *WorkflowStore) ListRuns(ctx context.Context, f RunFilter, req PageRequest) (Page[WorkflowRun], error) {
	q := s.db.Goqu.From("workflow_runs").Prepared(true).Select(runCols...)
	if f.OwnerID != "" {
		q = q.Where(goqu.C("owner_id").Eq(f.OwnerID))
	}
	if f.Name != "" {
		q = q.Where(goqu.C("name").Eq(f.Name))
	}
	if f.Status != "" {
		q = q.Where(goqu.C("status").Eq(f.Status))
	}
	q, err := keyset(q, req, "created_at", true, timeParser)
	if err != nil {
		return Page[WorkflowRun]{}, fmt.Errorf("list workflow runs: %w", err)
	}
	rs, err := scanAll(ctx, q, scanRun)
	if err != nil {
		return Page[WorkflowRun]{}, wrap(err, "list workflow runs")
	}
	return pageOf(rs, req, func(r WorkflowRun) (string, string) { return timeKey(r.CreatedAt), r.ID }), nil
}

// SaveRun implements WorkflowRuns.
func (s *WorkflowStore) SaveRun(ctx context.Context, r WorkflowRun, expected int64) error {
	return saveRunTx(ctx, s.db.Goqu, r, expected)
}

// SaveRunOp is SaveRun as an Op for the group-commit Writer.
func SaveRunOp(r WorkflowRun, expected int64) Op {
	return versionedSave{table: "workflow_runs", what: "workflow run", id: r.ID, rec: runRecord(r), version: r.Version, expected: expected}
}

// SaveRunChangesOp is SaveRunOp(next, prev.Version) that writes only the columns
// whose values next changes from prev, the run as stored at prev.Version (read or
// written at that version): the compare-and-swap on the version guarantees the other
// columns still hold prev's values, since every write of a run's row moves its
// version. A run's final write so sets five columns instead of thirteen, and the
// runs finishing alike in a batch still share one UPDATE.
func SaveRunChangesOp(prev, next WorkflowRun) Op {
	rec := runRecord(next)
	old := runRecord(prev)
	for k, v := range rec {
		if k != "version" && k != "updated_at" && sameValue(v, old[k]) {
			delete(rec, k)
		}
	}
	return versionedSave{table: "workflow_runs", what: "workflow run", id: next.ID, rec: rec, version: next.Version, expected: prev.Version}
}

// sameValue reports whether two column values of runRecord are the same stored value.
func sameValue(a, b any) bool {
	switch a := a.(type) {
	case time.Time:
		b, ok := b.(time.Time)
		return ok && a.Equal(b)
	case string, int64, nil:
		return a == b
	}
	return false
}

func saveRunTx(ctx context.Context, q runner, r WorkflowRun, expected int64) error {
	return saveVersioned(ctx, q, "workflow_runs", "workflow run", r.ID, runRecord(r), r.Version, expected)
}

// ClaimDue implements WorkflowRuns. It reads the due_at index only up to now (no scan
// of the open runs) and claims each run with a compare-and-swap on its version, so
// nodes claiming at once split the batch between them.
func (s *WorkflowStore) ClaimDue(ctx context.Context, now time.Time, owner string, lease time.Duration, limit int) ([]WorkflowRun, error) {
	return claimDue(ctx, s.db, dueClaim[WorkflowRun]{
		table: "workflow_runs", key: "id", due: "due_at", what: "workflow run",
		cols: runCols, scan: scanRun,
		id:      func(r WorkflowRun) string { return r.ID },
		version: func(r WorkflowRun) int64 { return r.Version },
		set:     goqu.Record{"lease_owner": owner},
		claimed: func(r *WorkflowRun, until, now time.Time) {
			r.DueAt, r.LeaseOwner, r.Version, r.UpdatedAt = until, owner, r.Version+1, now
		},
	}, now, lease, limit)
}

// NodeRetention is how long a lapsed node row is kept after its runs were
// reclaimed: a node process that comes back within it (a long pause) renews the
// same row, and its executions started meanwhile stay covered.
const NodeRetention = time.Hour

// Heartbeat implements WorkflowRuns.
func (s *WorkflowStore) Heartbeat(ctx context.Context, node string, epoch int64, until time.Time) error {
	until = utc(until)
	upd := s.db.Goqu.Update("workflow_nodes").Prepared(true).Set(goqu.Record{"expires_at": until}).
		Where(goqu.C("node_id").Eq(node), goqu.C("epoch").Eq(epoch))
	n, err := rowsAffected(upd.Executor().ExecContext(ctx))
	if err != nil {
		return wrap(err, "heartbeat of node %s", node)
	}
	if n > 0 {
		return nil
	}
	ins := s.db.Goqu.Insert("workflow_nodes").Prepared(true).Rows(goqu.Record{"node_id": node, "epoch": epoch, "expires_at": until})
	if _, err := ins.Executor().ExecContext(ctx); err != nil {
		// MariaDB counts an update that changes nothing as no row: the row is there.
		if errors.Is(classify(err), ErrDuplicate) {
			return nil
		}
		return wrap(err, "heartbeat of node %s", node)
	}
	return nil
}

// ReclaimLapsed implements WorkflowRuns. It reads the lapsed node rows (the
// expires_at index, bounded by NodeRetention) and, for each, its executing runs on
// the (lease_owner, lease_epoch, status) index.
func (s *WorkflowStore) ReclaimLapsed(ctx context.Context, now time.Time, limit int) (int, error) {
	now = utc(now)
	type node struct {
		id      string
		epoch   int64
		expires time.Time
	}
	q := s.db.Goqu.From("workflow_nodes").Prepared(true).Select("node_id", "epoch", "expires_at").
		Where(goqu.C("expires_at").Lt(now)).Order(goqu.C("expires_at").Desc())
	nodes, err := scanAll(ctx, q, func(sc scanner) (node, error) {
		var n node
		return n, sc.Scan(&n.id, &n.epoch, &n.expires)
	})
	if err != nil {
		return 0, wrap(err, "find lapsed nodes")
	}
	made := 0
	for _, n := range nodes {
		if made >= limit {
			break
		}
		type owned struct {
			id      string
			version int64
		}
		rq := s.db.Goqu.From("workflow_runs").Prepared(true).Select("id", "version").
			Where(goqu.C("lease_owner").Eq(n.id), goqu.C("lease_epoch").Eq(n.epoch),
				goqu.C("status").In(StatusRunning, StatusRetrying), goqu.C("due_at").IsNull()).
			Limit(uint(limit - made))
		runs, err := scanAll(ctx, rq, func(sc scanner) (owned, error) {
			var o owned
			return o, sc.Scan(&o.id, &o.version)
		})
		if err != nil {
			return made, wrap(err, "find runs of lapsed node %s", n.id)
		}
		for _, r := range runs {
			upd := s.db.Goqu.Update("workflow_runs").Prepared(true).
				Set(goqu.Record{"due_at": now, "version": r.version + 1, "updated_at": now}).
				Where(goqu.C("id").Eq(r.id), goqu.C("version").Eq(r.version), goqu.C("due_at").IsNull())
			k, err := rowsAffected(upd.Executor().ExecContext(ctx))
			if err != nil {
				return made, wrap(err, "reclaim workflow run %s", r.id)
			}
			made += int(k)
		}
		if len(runs) == 0 && now.Sub(utc(n.expires)) > NodeRetention {
			del := s.db.Goqu.Delete("workflow_nodes").Prepared(true).
				Where(goqu.C("node_id").Eq(n.id), goqu.C("epoch").Eq(n.epoch), goqu.C("expires_at").Lt(now.Add(-NodeRetention)))
			if _, err := del.Executor().ExecContext(ctx); err != nil {
				return made, wrap(err, "delete lapsed node %s", n.id)
			}
		}
	}
	return made, nil
}

// OwnedRuns implements WorkflowRuns, on the (lease_owner, lease_epoch, status) index.
func (s *WorkflowStore) OwnedRuns(ctx context.Context, node string, epoch int64) (map[string]int64, error) {
	type owned struct {
		id      string
		version int64
	}
	q := s.db.Goqu.From("workflow_runs").Prepared(true).Select("id", "version").
		Where(goqu.C("lease_owner").Eq(node), goqu.C("lease_epoch").Eq(epoch),
			goqu.C("status").In(StatusRunning, StatusRetrying), goqu.C("due_at").IsNull())
	rs, err := scanAll(ctx, q, func(sc scanner) (owned, error) {
		var o owned
		return o, sc.Scan(&o.id, &o.version)
	})
	if err != nil {
		return nil, wrap(err, "runs of node %s", node)
	}
	out := make(map[string]int64, len(rs))
	for _, r := range rs {
		out[r.id] = r.version
	}
	return out, nil
}

func stepRow(st WorkflowStep) ([]any, error) {
	events, last, err := foldEvents(st.RunID, st.Events)
	if err != nil {
		return nil, fmt.Errorf("persistence: events of step %d of run %s: %w", st.Seq, st.RunID, err)
	}
	return []any{st.RunID, st.Seq, st.Name, st.Kind, st.Status, nullJSON(st.Output), st.Error, st.Attempts,
		nullJSON(st.Spend), st.CacheHit, nullTime(st.WakeAt), nullTime(st.StartedAt), nullTime(st.FinishedAt),
		events, last}, nil
}

// foldedEvent is the stored form of an event kept in its step's row written
// before the compact form (foldEvents); Events still reads it.
type foldedEvent struct {
	Seq       int64           `json:"seq"`
	StepSeq   int             `json:"step_seq"`
	Status    string          `json:"status"`
	Attempt   int             `json:"attempt,omitempty"`
	Data      json.RawMessage `json:"data"`
	CreatedAt time.Time       `json:"created_at"`
}

// foldEvents is the events column of run runID's step row (NULL when none) and
// the highest seq among events, in the compact form: a JSON array of arrays
//
//	[seq, step_seq, status, attempt, created_at, data, 1]
//
// with created_at in microseconds since the Unix epoch (the precision of the
// event table's DATETIME(6)), and data without its leading "run_id" member when it
// names runID (the trailing 1 says so; unfoldEvents puts it back), so that a
// task's row does not repeat, per event, what the row or the array's place says.
// Journal rows are most of what a workflow writes, and MariaDB parses, checks and
// logs every byte of them: the earlier form, an object per event with its own
// names and an RFC 3339 time beside data's own, was twice as long. It writes the
// JSON itself: the events' data is JSON the runtime encoded already, and
// re-encoding it through encoding/json (which compacts and checks every raw value
// again) cost more than the rest of a task's write.
func foldEvents(runID string, events []WorkflowEvent) (any, int64, error) {
	if len(events) == 0 {
		return nil, 0, nil
	}
	var last int64
	b := make([]byte, 0, 40*len(events)+sumDataLen(events))
	b = append(b, '[')
	for i, e := range events {
		if i > 0 {
			b = append(b, ',')
		}
		created := e.CreatedAt
		if created.IsZero() {
			created = time.Now()
		}
		data := e.Data
		if len(data) == 0 {
			data = json.RawMessage("{}")
		}
		if !json.Valid(data) {
			return nil, 0, fmt.Errorf("event %d: data is not JSON", e.Seq)
		}
		status, err := json.Marshal(e.Status)
		if err != nil {
			return nil, 0, err
		}
		b = append(b, '[')
		b = strconv.AppendInt(b, e.Seq, 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, int64(e.StepSeq), 10)
		b = append(b, ',')
		b = append(b, status...)
		b = append(b, ',')
		b = strconv.AppendInt(b, int64(e.Attempt), 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, created.UnixMicro(), 10)
		b = append(b, ',')
		if rest, ok := withoutRunID(data, runID); ok {
			b = append(b, rest...)
			b = append(b, ",1]"...)
		} else {
			b = append(b, data...)
			b = append(b, ']')
		}
		last = max(last, e.Seq)
	}
	b = append(b, ']')
	return string(b), last, nil
}

// withoutRunID returns data, a JSON object, without its first member when that is
// "run_id" naming runID (as a workflow event's data begins), and whether it was.
func withoutRunID(data json.RawMessage, runID string) (json.RawMessage, bool) {
	head := `{"run_id":"` + runID + `"`
	if runID == "" || !strings.HasPrefix(string(data), head) || strings.ContainsAny(runID, "\\\"<>&") {
		return data, false
	}
	switch rest := data[len(head):]; {
	case len(rest) > 0 && rest[0] == ',':
		return append(json.RawMessage{'{'}, rest[1:]...), true
	case len(rest) > 0 && rest[0] == '}':
		return append(json.RawMessage{'{'}, rest...), true
	}
	return data, false
}

// unfoldEvents reads the events column of run runID's step row, in either form
// foldEvents has written.
func unfoldEvents(runID string, column []byte) ([]WorkflowEvent, error) {
	if len(column) > 1 && column[0] == '[' && column[1] == '{' {
		var fs []foldedEvent
		if err := json.Unmarshal(column, &fs); err != nil {
			return nil, err
		}
		out := make([]WorkflowEvent, len(fs))
		for i, e := range fs {
			out[i] = WorkflowEvent{RunID: runID, Seq: e.Seq, StepSeq: e.StepSeq, Status: e.Status, Attempt: e.Attempt,
				Data: e.Data, CreatedAt: e.CreatedAt}
		}
		return out, nil
	}
	var rows [][]json.RawMessage
	if err := json.Unmarshal(column, &rows); err != nil {
		return nil, err
	}
	out := make([]WorkflowEvent, len(rows))
	for i, r := range rows {
		if len(r) != 6 && len(r) != 7 {
			return nil, fmt.Errorf("event %d of %d has %d fields", i+1, len(rows), len(r))
		}
		var (
			e      = WorkflowEvent{RunID: runID}
			micros int64
		)
		if err := errors.Join(json.Unmarshal(r[0], &e.Seq), json.Unmarshal(r[1], &e.StepSeq), json.Unmarshal(r[2], &e.Status),
			json.Unmarshal(r[3], &e.Attempt), json.Unmarshal(r[4], &micros)); err != nil {
			return nil, fmt.Errorf("event %d of %d: %w", i+1, len(rows), err)
		}
		e.CreatedAt = time.UnixMicro(micros).UTC()
		e.Data = r[5]
		if len(r) == 7 {
			// The data's "run_id" member was left out (withoutRunID): r[5] is
			// the rest of the object, "{}" or "{...}".
			id, err := json.Marshal(runID)
			if err != nil {
				return nil, err
			}
			data := append(json.RawMessage(`{"run_id":`), id...)
			if string(r[5]) != "{}" {
				data = append(data, ',')
			}
			e.Data = append(data, r[5][1:]...)
		}
		out[i] = e
	}
	return out, nil
}

func sumDataLen(events []WorkflowEvent) int {
	n := 0
	for _, e := range events {
		n += len(e.Data)
	}
	return n
}

// StepInsert is an Insert of journal entries for the group-commit Writer, which merges
// the entries of many runs into one statement. A taken (run_id, seq) is ErrDuplicate.
// A step whose events cannot be encoded fails the Insert's write.
func StepInsert(steps ...WorkflowStep) Op {
	rows := make([][]any, len(steps))
	for i, st := range steps {
		row, err := stepRow(st)
		if err != nil {
			return OpFunc(func(context.Context, *goqu.TxDatabase) error { return err })
		}
		rows[i] = row
	}
	return Insert{Table: "workflow_steps", Cols: stepInsertCols, Rows: rows}
}

// StepInsertAt is StepInsert for the activation that owns run runID at version: the
// rows are written only while the run's row is at that version, else the write fails
// with ErrConflict and writes none of them (RunFenced).
func StepInsertAt(runID string, version int64, steps ...WorkflowStep) Op {
	in, ok := StepInsert(steps...).(Insert)
	if !ok {
		return StepInsert(steps...) // a row could not be built: the Op fails with that error
	}
	return RunFenced(runID, version, in)
}

// EventInsertAt is EventInsert for the activation that owns run runID at version,
// fenced like StepInsertAt.
func EventInsertAt(runID string, version int64, events ...WorkflowEvent) Op {
	return RunFenced(runID, version, EventInsert(events...))
}

// RunFenced makes in, whose rows name workflow run runID in their run_id column, a
// write of the activation that owns that run at version: it commits only while the
// run's row is at that version, and fails with ErrConflict, writing nothing,
// otherwise. Submitted in one Ops with other writes, it holds them to the same
// condition. The check costs no statement of its own: the rows merge with the
// batch's ordinary rows into one INSERT, in which the run_id of one row is NULL,
// refused by the NOT NULL column, unless a subquery finds every run the
// statement's fenced rows name at its version (fencedInsertSQL: one subquery per
// statement, whatever the number of runs). On MariaDB the run's row stays
// share-locked until the commit by the subquery, a locking read inside a write
// under REPEATABLE READ (the journal and event tables have no foreign key to the
// run since migration 0016: the fence is their only check of it); on SQLite the
// write holds the database's one writer lock. So a
// compare-and-swap of the run by another activation (a claim, a start, a reclaim)
// either commits first, and the fenced write fails, or waits for the fenced
// write's commit.
//
// A run's execution numbers its events after the event log's last seq, which it
// reads after its own compare-and-swap, and writes them fenced by its version: so
// no write of a stale activation commits a seq that the activation that moved the
// run on numbered too, neither as an event row nor folded into a journal row
// (WorkflowStep.Events), where the events table's key does not see it.
func RunFenced(runID string, version int64, in Insert) Op {
	if len(in.Rows) == 0 {
		return in
	}
	rows := slices.Clone(in.Rows)
	rows[0] = append(slices.Clip(rows[0]), runFence{id: runID, version: version})
	return fencedInsert{Insert{Table: in.Table, Cols: in.Cols, Rows: rows}}
}

// runFence is the run a fenced row checks, after the row's values (RunFenced).
type runFence struct {
	id      string
	version int64
}

// fencedInsert is RunFenced's Op: an Insert whose first row ends with its runFence.
// The Writer merges it with the ordinary Inserts of its table and columns.
type fencedInsert struct{ Insert }

// Apply implements Op: a fence that does not hold is ErrConflict.
func (f fencedInsert) Apply(ctx context.Context, tx *goqu.TxDatabase) error {
	err := f.Insert.Apply(ctx, tx)
	if errors.Is(err, errNullColumn) || errors.Is(err, ErrConflict) {
		fence := f.Rows[0][len(f.Cols)].(runFence)
		return fmt.Errorf("persistence: workflow run %s is no longer at version %d: %w: %w", fence.id, fence.version, ErrConflict, err)
	}
	return err
}

// AppendStep implements WorkflowRuns. The run must exist (ErrNotFound otherwise):
// on MariaDB no foreign key checks the journal's run_id (migration 0016), so it
// reads the run first, in the transaction of the insert. Runs are never deleted
// but with their journal (account erasure), so a run it finds stays.
func (s *WorkflowStore) AppendStep(ctx context.Context, st WorkflowStep) error {
	return s.db.inTx(ctx, func(tx *goqu.TxDatabase) error {
		var n int
		q := tx.From("workflow_runs").Prepared(true).Select(goqu.COUNT("*")).Where(goqu.C("id").Eq(st.RunID))
		if _, err := q.ScanValContext(ctx, &n); err != nil {
			return wrap(err, "find workflow run %s", st.RunID)
		}
		if n == 0 {
			return fmt.Errorf("persistence: append step %d: workflow run %s: %w", st.Seq, st.RunID, ErrNotFound)
		}
		return StepInsert(st).Apply(ctx, tx)
	})
}

// Steps implements WorkflowRuns.
func (s *WorkflowStore) Steps(ctx context.Context, runID string) ([]WorkflowStep, error) {
	cols := make([]any, len(stepCols))
	for i, c := range stepCols {
		cols[i] = c
	}
	q := s.db.Goqu.From("workflow_steps").Prepared(true).Select(cols...).Where(goqu.C("run_id").Eq(runID)).Order(goqu.C("seq").Asc())
	steps, err := scanAll(ctx, q, func(sc scanner) (WorkflowStep, error) {
		var (
			st                      WorkflowStep
			output, spend           []byte
			wake, started, finished sql.NullTime
		)
		if err := sc.Scan(&st.RunID, &st.Seq, &st.Name, &st.Kind, &st.Status, &output, &st.Error, &st.Attempts,
			&spend, &st.CacheHit, &wake, &started, &finished); err != nil {
			return WorkflowStep{}, err
		}
		st.Output, st.Spend = rawOrNil(output), rawOrNil(spend)
		st.WakeAt, st.StartedAt, st.FinishedAt = wake.Time, started.Time, finished.Time
		return st, nil
	})
	if err != nil {
		return nil, wrap(err, "list steps of run %s", runID)
	}
	return steps, nil
}

// DeleteFailedSteps implements WorkflowRuns.
func (s *WorkflowStore) DeleteFailedSteps(ctx context.Context, runID string) error {
	q := s.db.Goqu.Delete("workflow_steps").Prepared(true).Where(goqu.C("run_id").Eq(runID), goqu.C("status").Eq(StatusFailed))
	if _, err := q.Executor().ExecContext(ctx); err != nil {
		return wrap(err, "delete failed steps of run %s", runID)
	}
	return nil
}

// EventInsert is an Insert of run events for the group-commit Writer.
func EventInsert(events ...WorkflowEvent) Insert {
	rows := make([][]any, len(events))
	for i, e := range events {
		created := e.CreatedAt
		if created.IsZero() {
			created = time.Now()
		}
		data := e.Data
		if len(data) == 0 {
			data = json.RawMessage("{}")
		}
		rows[i] = []any{e.RunID, e.Seq, e.StepSeq, e.Status, e.Attempt, string(data), utc(created)}
	}
	return Insert{Table: "workflow_events", Cols: eventCols, Rows: rows}
}

// Events implements WorkflowRuns. It reads the event rows after seq after and the
// events kept in step rows (the steps whose last_event_seq passed after), and
// merges them by seq.
func (s *WorkflowStore) Events(ctx context.Context, runID string, after int64, limit int) ([]WorkflowEvent, error) {
	limit = max(1, limit)
	cols := make([]any, len(eventCols))
	for i, c := range eventCols {
		cols[i] = c
	}
	q := s.db.Goqu.From("workflow_events").Prepared(true).Select(cols...).
		Where(goqu.C("run_id").Eq(runID), goqu.C("seq").Gt(after)).Order(goqu.C("seq").Asc()).Limit(uint(limit))
	evs, err := scanAll(ctx, q, func(sc scanner) (WorkflowEvent, error) {
		var e WorkflowEvent
		var data []byte
		if err := sc.Scan(&e.RunID, &e.Seq, &e.StepSeq, &e.Status, &e.Attempt, &data, &e.CreatedAt); err != nil {
			return WorkflowEvent{}, err
		}
		e.Data = data
		return e, nil
	})
	if err != nil {
		return nil, wrap(err, "list events of run %s", runID)
	}
	type folded struct {
		step   int
		events []byte
	}
	fq := s.db.Goqu.From("workflow_steps").Prepared(true).Select("seq", "events").
		Where(goqu.C("run_id").Eq(runID), goqu.C("last_event_seq").Gt(after))
	steps, err := scanAll(ctx, fq, func(sc scanner) (folded, error) {
		var f folded
		return f, sc.Scan(&f.step, &f.events)
	})
	if err != nil {
		return nil, wrap(err, "list step events of run %s", runID)
	}
	for _, f := range steps {
		fs, err := unfoldEvents(runID, f.events)
		if err != nil {
			return nil, fmt.Errorf("persistence: events of step %d of run %s: %w", f.step, runID, err)
		}
		for _, e := range fs {
			if e.Seq > after {
				evs = append(evs, e)
			}
		}
	}
	if len(steps) > 0 {
		slices.SortFunc(evs, func(a, b WorkflowEvent) int { return cmp.Compare(a.Seq, b.Seq) })
		evs = evs[:min(len(evs), limit)]
	}
	return evs, nil
}

// LastEventSeq implements WorkflowRuns, over the event rows and the events kept in
// step rows.
func (s *WorkflowStore) LastEventSeq(ctx context.Context, runID string) (int64, error) {
	var rows, folded sql.NullInt64
	q := s.db.Goqu.From("workflow_events").Prepared(true).Select(goqu.MAX("seq")).Where(goqu.C("run_id").Eq(runID))
	if err := scanOne(ctx, q, &rows); err != nil {
		return 0, wrap(err, "last event of run %s", runID)
	}
	fq := s.db.Goqu.From("workflow_steps").Prepared(true).Select(goqu.MAX("last_event_seq")).Where(goqu.C("run_id").Eq(runID))
	if err := scanOne(ctx, fq, &folded); err != nil {
		return 0, wrap(err, "last step event of run %s", runID)
	}
	return max(rows.Int64, folded.Int64), nil
}

// Attempts implements WorkflowRuns.
func (s *WorkflowStore) Attempts(ctx context.Context, runID string) (map[int]int, error) {
	q := s.db.Goqu.From("workflow_events").Prepared(true).Select("step_seq", goqu.MAX("attempt")).
		Where(goqu.C("run_id").Eq(runID), goqu.C("step_seq").Gt(0), goqu.C("status").Eq(StatusRunning)).GroupBy("step_seq")
	type pair struct{ seq, n int }
	ps, err := scanAll(ctx, q, func(sc scanner) (pair, error) {
		var p pair
		return p, sc.Scan(&p.seq, &p.n)
	})
	if err != nil {
		return nil, wrap(err, "attempts of run %s", runID)
	}
	out := make(map[int]int, len(ps))
	for _, p := range ps {
		out[p.seq] = p.n
	}
	return out, nil
}

// CountActive implements WorkflowRuns, on the (status, name, owner_id) index.
func (s *WorkflowStore) CountActive(ctx context.Context, name, ownerID string) (int, error) {
	q := s.db.Goqu.From("workflow_runs").Prepared(true).Select(goqu.COUNT("*")).
		Where(goqu.C("name").Eq(name), goqu.C("status").In(StatusRunning, StatusRetrying))
	if ownerID != "" {
		q = q.Where(goqu.C("owner_id").Eq(ownerID))
	}
	var n int
	if err := scanOne(ctx, q, &n); err != nil {
		return 0, wrap(err, "count active runs of %s", name)
	}
	return n, nil
}

// CountOpenRuns counts the runs that have not finished, by status, on the leading status
// index (its cost follows the open runs, not the history).
func (s *WorkflowStore) CountOpenRuns(ctx context.Context) (map[string]int, error) {
	q := s.db.Goqu.From("workflow_runs").Prepared(true).Select("status", goqu.COUNT("*")).
		Where(goqu.C("status").In(StatusPending, StatusRunning, StatusRetrying, StatusPaused)).GroupBy("status")
	type pair struct {
		status string
		n      int
	}
	ps, err := scanAll(ctx, q, func(sc scanner) (pair, error) {
		var p pair
		return p, sc.Scan(&p.status, &p.n)
	})
	if err != nil {
		return nil, wrap(err, "count open workflow runs")
	}
	out := make(map[string]int, len(ps))
	for _, p := range ps {
		out[p.status] = p.n
	}
	return out, nil
}
