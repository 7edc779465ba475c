package actors

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/workflows"
)

// Defaults applied by NewScheduler to zero fields of SchedulerDeps.
const (
	// DefaultScheduleInterval is how often a node claims due schedules.
	DefaultScheduleInterval = time.Second
	// DefaultScheduleLease is how long a node's claim on a tick lasts; a tick whose
	// node died before it started the run is due again for the others after it.
	DefaultScheduleLease = 5 * time.Second
	// DefaultMissedAfter: a tick later than this is missed, and the schedule's
	// catch-up policy decides what happens to it. Later ticks within it (a node's
	// claim that lapsed, a slow poll) fire one by one.
	DefaultMissedAfter = time.Minute
)

// scheduleRunNamespace is the UUIDv5 namespace of the run IDs of schedule ticks.
var scheduleRunNamespace = uuid.MustParse("5b0e4c1e-7a53-4d5c-9d0f-6f3c2a1b9e47")

// ScheduleRunID is the run ID of a schedule's tick: a UUIDv5 of the schedule ID and
// the tick's instant, so every node that fires the same tick starts the same run, and
// the run's primary key with StartRun's idempotency makes a second start a no-op.
func ScheduleRunID(scheduleID string, tick time.Time) string {
	return uuid.NewSHA1(scheduleRunNamespace, []byte(scheduleID+"@"+tick.UTC().Format(time.RFC3339Nano))).String()
}

// SchedulerDeps are the scheduler's dependencies. Schedules is required; Caller may be
// set later with SetCaller.
type SchedulerDeps struct {
	Schedules persistence.WorkflowSchedules
	// Caller reaches the run grains; the cluster node's client.
	Caller GrainCaller
	// NodeID names this node in claim_owner (default: a random ID).
	NodeID string
	// Interval, Lease, MissedAfter: see the Default* values. Batch bounds the
	// schedules claimed per round (default DefaultClaimBatch).
	Interval    time.Duration
	Lease       time.Duration
	MissedAfter time.Duration
	Batch       int
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
	// Metrics registers the schedule counters; nil leaves them unregistered.
	Metrics prometheus.Registerer
}

// Scheduler fires the ticks of workflow schedules, each exactly once across the
// cluster: every node claims due schedules (a version compare-and-swap, so one node
// gets a tick), starts the tick's run under ScheduleRunID, and only then moves the
// schedule to its next tick. A node that dies between claim and advance leaves the
// tick claimed; the claim lapses after Lease and another node fires the same tick,
// which starts the same run ID (no second run).
//
// Construction order: NewScheduler; SetCaller before the cluster node starts; Run(ctx)
// once it started.
type Scheduler struct {
	deps    SchedulerDeps
	log     *slog.Logger
	caller  atomic.Pointer[GrainCaller]
	metrics *scheduleMetrics
}

// NewScheduler validates deps and returns the scheduler. Errors wrap ErrInvalidDeps.
func NewScheduler(deps SchedulerDeps) (*Scheduler, error) {
	if deps.Schedules == nil {
		return nil, fmt.Errorf("%w: Schedules is required", ErrInvalidDeps)
	}
	deps.Interval = cmp.Or(deps.Interval, DefaultScheduleInterval)
	deps.Lease = cmp.Or(deps.Lease, DefaultScheduleLease)
	deps.MissedAfter = cmp.Or(deps.MissedAfter, DefaultMissedAfter)
	deps.Batch = cmp.Or(deps.Batch, DefaultClaimBatch)
	deps.NodeID = cmp.Or(deps.NodeID, uuid.NewString())
	if deps.Now == nil {
		deps.Now = time.Now
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Scheduler{deps: deps, log: log.With("component", "workflow-scheduler")}
	var err error
	if s.metrics, err = newScheduleMetrics(deps.Metrics); err != nil {
		return nil, err
	}
	if deps.Caller != nil {
		s.SetCaller(deps.Caller)
	}
	return s, nil
}

// SetCaller sets the grain client; call it before the cluster node starts.
func (s *Scheduler) SetCaller(c GrainCaller) { s.caller.Store(&c) }

// maxRoundsPerTick bounds the claim rounds of one tick, so a backlog of late ticks
// is worked off quickly without one node looping forever.
const maxRoundsPerTick = 50

// Run fires due ticks every Interval until ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	return claimLoop{interval: s.deps.Interval, full: 1, maxRounds: maxRoundsPerTick,
		log: s.log, failMsg: "schedule round failed", round: s.FireDue}.run(ctx)
}

// FireDue claims one batch of due schedules and handles the tick of each (fire,
// skip or catch up); it returns how many it claimed.
func (s *Scheduler) FireDue(ctx context.Context) (int, error) {
	c := s.caller.Load()
	if c == nil {
		return 0, errors.New("actors: schedule round before SetCaller")
	}
	claimed, err := s.deps.Schedules.ClaimDueSchedules(ctx, s.deps.Now(), s.deps.NodeID, s.deps.Lease, s.deps.Batch)
	for _, sc := range claimed {
		if ctx.Err() != nil {
			break
		}
		s.fire(ctx, *c, sc)
	}
	return len(claimed), err
}

// fire handles the claimed tick sc.NextFireAt. A transient failure to start the run
// leaves the claim in place, so the tick is fired again after the lease.
func (s *Scheduler) fire(ctx context.Context, caller GrainCaller, sc persistence.WorkflowSchedule) {
	now := s.deps.Now()
	claimedVersion := sc.Version
	next := sc
	next.Version, next.ClaimOwner, next.UpdatedAt = sc.Version+1, "", now
	spec, err := workflows.ParseScheduleIn(sc.Spec, sc.Timezone)
	if err != nil {
		// Validated when stored; a spec this build no longer accepts stops the schedule.
		next.Enabled, next.NextFireAt, next.DueAt, next.LastError = false, time.Time{}, time.Time{}, err.Error()
		s.save(ctx, next, claimedVersion)
		return
	}
	tick := sc.NextFireAt
	fireTick, nextTick := true, spec.Next(tick)
	if now.Sub(tick) > s.deps.MissedAfter {
		nextTick = spec.Next(now)
		if sc.CatchUp != persistence.CatchUpRunOnce {
			fireTick = false
			s.metrics.fires.WithLabelValues("skipped").Inc()
			s.log.Info("missed schedule tick skipped", "schedule_id", sc.ID, "tick", tick)
			next.LastError = ""
		}
	}
	if fireTick {
		runID := ScheduleRunID(sc.ID, tick)
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := actorpb.As[*actorpb.RunAck](caller.Call(cctx, KindWorkflowRun, runID, &actorpb.StartRun{
			CorrelationId: "schedule:" + sc.ID, RunId: runID, Workflow: sc.Workflow, OwnerId: sc.OwnerID,
			ParametersJson: string(sc.Parameters), WebhookUrl: sc.WebhookURL}))
		cancel()
		switch code := actorpb.CodeOf(err); {
		case err == nil:
			s.metrics.fires.WithLabelValues("fired").Inc()
			next.LastRunID, next.LastFiredAt, next.LastError = runID, tick, ""
		case code == actorpb.Code_CODE_INVALID_ARGUMENT || code == actorpb.Code_CODE_FORBIDDEN:
			// The workflow is gone or its parameters no longer validate: the tick
			// cannot start a run now or later; record why and go on.
			s.metrics.fires.WithLabelValues("refused").Inc()
			next.LastError = err.Error()
			s.log.Warn("schedule tick refused", "schedule_id", sc.ID, "tick", tick, "error", err)
		default:
			s.metrics.fires.WithLabelValues("retried").Inc()
			s.log.Warn("schedule tick not started; it is due again after the claim", "schedule_id", sc.ID, "tick", tick, "error", err)
			return
		}
	}
	next.NextFireAt, next.DueAt = nextTick, nextTick
	if nextTick.IsZero() {
		next.Enabled = false
	}
	s.save(ctx, next, claimedVersion)
}

func (s *Scheduler) save(ctx context.Context, next persistence.WorkflowSchedule, expected int64) {
	err := s.deps.Schedules.SaveSchedule(ctx, next, expected)
	switch {
	case err == nil:
	case errors.Is(err, persistence.ErrConflict), errors.Is(err, persistence.ErrNotFound):
		// Changed or deleted by its owner since the claim: their version stands.
		s.log.Debug("schedule changed while its tick fired", "schedule_id", next.ID, "error", err)
	default:
		// The claim lapses and the tick fires again, under the same run ID.
		s.log.Warn("schedule not advanced", "schedule_id", next.ID, "error", err)
	}
}

// scheduleMetrics are the scheduler's counters.
type scheduleMetrics struct {
	fires *prometheus.CounterVec
}

func newScheduleMetrics(reg prometheus.Registerer) (*scheduleMetrics, error) {
	m := &scheduleMetrics{
		fires: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kowai_workflow_schedule_fires_total",
			Help: "Schedule ticks this node handled, by outcome: fired (run started), skipped (missed, catch-up skip), refused (the run was refused: workflow or parameters invalid), retried (not started, fired again after the claim)."},
			[]string{"outcome"}),
	}
	if reg != nil {
		if err := reg.Register(m.fires); err != nil {
			return nil, fmt.Errorf("%w: register schedule metrics: %w", ErrInvalidDeps, err)
		}
	}
	return m, nil
}
