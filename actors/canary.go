package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/persistence"
)

// Audit actions of an agent's compiled programs.
const (
	AuditProgramDeploy   = "agent.program.deploy"
	AuditProgramPromote  = "agent.program.promote"
	AuditProgramRollback = "agent.program.rollback"
)

// Decisions on a canary (DecideProgram.decision).
const (
	DecisionPromote  = "promote"
	DecisionRollback = "rollback"
)

// canaryVariantPrefix starts the name of a canary variant; the rest is the state's
// content hash, so successive canaries keep apart in the statistics.
const canaryVariantPrefix = "canary-"

// maxCanaryTurnsRead bounds the turns an activation reads to recount a canary.
const maxCanaryTurnsRead = 100_000

// canaryRun is an agent's canary variant and what its decision has counted since it
// was deployed: index 0 is the rest of the agent's turns (the current version), 1 the
// canary's.
type canaryRun struct {
	variant compiledVariant
	stored  persistence.Variant
	policy  persistence.Canary
	turns   [2]int64
	failed  [2]int64
	up      [2]int64
	down    [2]int64
}

// same reports whether c and o are one deployment.
func (c *canaryRun) same(o *canaryRun) bool {
	return c != nil && o != nil && c.policy.Version == o.policy.Version && c.policy.DeployedAt.Equal(o.policy.DeployedAt)
}

// keepCounts returns next with the counts of the canary the grain tracked when it
// is the same deployment (a PUT of the agent keeps its canary running); a canary new
// to this activation is recounted from the stored turns and ratings.
func (a *agentGrain) keepCounts(next *canaryRun, correlationID string) *canaryRun {
	switch {
	case next == nil:
		return nil
	case next.same(a.canary):
		next.turns, next.failed, next.up, next.down = a.canary.turns, a.canary.failed, a.canary.up, a.canary.down
		return next
	case a.rt.deps.Stats == nil:
		return next
	}
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	defer cancel()
	turns, err := a.rt.deps.Stats.AgentTurns(ctx, a.identity, next.policy.DeployedAt, maxCanaryTurnsRead)
	if err != nil {
		a.log.Warn("canary turns not read; counting from now", "agent_id", a.identity, "correlation_id", correlationID, "error", err)
		return next
	}
	for _, t := range turns {
		side := next.side(t.Variant)
		next.turns[side]++
		if t.Failed {
			next.failed[side]++
		}
	}
	a.readRatings(ctx, next, correlationID)
	return next
}

// side is the index of the counts a turn of variant belongs to.
func (c *canaryRun) side(variant string) int {
	if variant == c.variant.name {
		return 1
	}
	return 0
}

// readRatings sets c's rating counts from the stored feedback since its deploy.
func (a *agentGrain) readRatings(ctx context.Context, c *canaryRun, correlationID string) {
	fb, err := a.rt.deps.Stats.AgentFeedback(ctx, a.identity, c.policy.DeployedAt)
	if err != nil {
		a.log.Warn("canary ratings not read", "agent_id", a.identity, "correlation_id", correlationID, "error", err)
		return
	}
	c.up, c.down = [2]int64{}, [2]int64{}
	for _, f := range fb {
		side := c.side(f.Variant)
		c.up[side] += f.Up
		c.down[side] += f.Down
	}
}

// countTurn counts a finished reply in the decision of the canary it started under,
// and decides when the counts allow.
func (a *agentGrain) countTurn(job *replyJob, failed bool) {
	c := a.canary
	if c == nil || job.canary != c {
		return
	}
	side := 0
	if job.onCanary {
		side = 1
	}
	c.turns[side]++
	if failed {
		c.failed[side]++
	}
	a.evaluate(job.req.GetCorrelationId())
}

// onFeedback reads the ratings of the agent's canary again after one of its replies
// was rated.
func (a *agentGrain) onFeedback(req *actorpb.ProgramFeedback) any {
	corr := req.GetCorrelationId()
	if e := a.ensureLoaded(corr); e != nil {
		return e
	}
	if a.canary == nil || a.rt.deps.Stats == nil {
		return &actorpb.Ack{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	defer cancel()
	a.readRatings(ctx, a.canary, corr)
	a.evaluate(corr)
	return &actorpb.Ack{}
}

// evaluate promotes or rolls back the canary when its counts decide it.
func (a *agentGrain) evaluate(correlationID string) {
	c := a.canary
	decision, reason := decideCanary(c.policy, c.turns, c.failed, c.up, c.down)
	if decision == "" {
		return
	}
	if _, e := a.decide(correlationID, "", decision, reason); e != nil {
		a.log.Warn("canary decision not applied", "agent_id", a.identity, "correlation_id", correlationID,
			"decision", decision, "error", e.GetMessage())
	}
}

// decideCanary is the rule of a canary: nothing before it ran p.MinTurns turns; then
// a rollback when its error rate exceeds the rest's by more than
// p.MaxErrorRateIncrease, or when both sides have p.MinRatings ratings (at least one)
// and its mean rating is below the rest's by more than p.MaxFeedbackDrop; else a
// promotion once it has p.MinRatings ratings and so has the rest, so that the two can
// be compared (a canary at 100 percent has no rest: its own ratings do). Index 0 of
// the counts is the rest of the agent's turns, 1 the canary's.
func decideCanary(p persistence.Canary, turns, failed, up, down [2]int64) (decision, reason string) {
	if turns[1] < int64(max(p.MinTurns, 1)) {
		return "", ""
	}
	rate := func(i int) float64 {
		if turns[i] == 0 {
			return 0
		}
		return float64(failed[i]) / float64(turns[i])
	}
	if rate(1) > rate(0)+p.MaxErrorRateIncrease {
		return DecisionRollback, fmt.Sprintf("error rate %.3f over %d turns exceeds the current version's %.3f over %d turns by more than %.3f",
			rate(1), turns[1], rate(0), turns[0], p.MaxErrorRateIncrease)
	}
	ratings := [2]int64{up[0] + down[0], up[1] + down[1]}
	need := int64(max(p.MinRatings, 1))
	if ratings[0] >= need && ratings[1] >= need {
		mean := func(i int) float64 { return float64(up[i]-down[i]) / float64(ratings[i]) }
		if mean(1) < mean(0)-p.MaxFeedbackDrop {
			return DecisionRollback, fmt.Sprintf("mean rating %.3f over %d ratings is below the current version's %.3f over %d ratings by more than %.3f",
				mean(1), ratings[1], mean(0), ratings[0], p.MaxFeedbackDrop)
		}
	}
	if ratings[1] < int64(p.MinRatings) || ratings[0] < int64(p.MinRatings) && p.Percent < 100 {
		return "", ""
	}
	return DecisionPromote, fmt.Sprintf("error rate %.3f over %d turns and %d ratings are within the margins", rate(1), turns[1], ratings[1])
}

// onDeploy attaches compiled program state to the agent as its canary.
func (a *agentGrain) onDeploy(req *actorpb.DeployProgram) any {
	corr := req.GetCorrelationId()
	if e := a.ensureLoaded(corr); e != nil {
		return e
	}
	if req.GetVersion() != 0 && req.GetVersion() != a.agent.Version {
		return errorReply(actorpb.Code_CODE_CONFLICT, corr, "agent %s changed since it was read", a.identity)
	}
	if a.rt.deps.Programs == nil {
		return errorReply(actorpb.Code_CODE_UNAVAILABLE, corr, "this node cannot deploy programs")
	}
	state := json.RawMessage(req.GetStateJson())
	version, err := a.rt.types.CheckProgram(specOf(a.agent), state)
	if err != nil {
		return errorReply(actorpb.Code_CODE_INVALID_ARGUMENT, corr, "%v", err)
	}
	p := persistence.Canary{Percent: int(req.GetPercent()), MinTurns: int(req.GetMinTurns()), MinRatings: int(req.GetMinRatings()),
		MaxErrorRateIncrease: req.GetMaxErrorRateIncrease(), MaxFeedbackDrop: req.GetMaxFeedbackDrop(),
		Version: version, DeployedAt: a.rt.deps.Now().UTC(), DeployedBy: req.GetUserId()}
	if p.Percent < 1 || p.Percent > 100 || p.MinTurns < 1 || p.MinRatings < 0 || p.MaxErrorRateIncrease < 0 || p.MaxFeedbackDrop < 0 {
		return errorReply(actorpb.Code_CODE_INVALID_ARGUMENT, corr, "canary settings out of range")
	}
	name := canaryVariantPrefix + strings.TrimPrefix(version, "sha256:")
	next := a.agent
	next.Variants = make([]persistence.Variant, 0, len(a.agent.Variants)+1)
	replaced := ""
	for _, v := range a.agent.Variants {
		switch {
		case v.Canary != nil:
			replaced = v.Canary.Version
		case v.Name == name:
			return errorReply(actorpb.Code_CODE_INVALID_ARGUMENT, corr, "the agent has a variant called %s already", name)
		default:
			next.Variants = append(next.Variants, v)
		}
	}
	next.Variants = append(next.Variants, persistence.Variant{Name: name, Weight: p.Percent, Program: state, Canary: &p})
	detail := map[string]any{"program_version": version, "variant": name, "percent": p.Percent, "min_turns": p.MinTurns,
		"min_ratings": p.MinRatings, "max_error_rate_increase": p.MaxErrorRateIncrease, "max_feedback_drop": p.MaxFeedbackDrop}
	if replaced != "" {
		detail["replaces"] = replaced
	}
	stored, e := a.write(corr, next, req.GetUserId(), AuditProgramDeploy, detail)
	if e != nil {
		return e
	}
	a.rt.metrics.deploys.WithLabelValues("deployed", "manual").Inc()
	a.log.Info("program deployed as canary", "agent_id", a.identity, "correlation_id", corr, "program_version", version, "percent", p.Percent)
	return actorpb.DefinitionOf(stored)
}

// onDecide promotes or rolls back the agent's canary on a user's request.
func (a *agentGrain) onDecide(req *actorpb.DecideProgram) any {
	corr := req.GetCorrelationId()
	if e := a.ensureLoaded(corr); e != nil {
		return e
	}
	d := req.GetDecision()
	if d != DecisionPromote && d != DecisionRollback {
		return errorReply(actorpb.Code_CODE_INVALID_ARGUMENT, corr, "decision %q: want promote or rollback", d)
	}
	stored, e := a.decide(corr, req.GetUserId(), d, "requested by a user")
	if e != nil {
		return e
	}
	return actorpb.DefinitionOf(stored)
}

// decide applies decision to the agent's canary on behalf of userID ("" for the
// grain's own rule): a promotion makes its state the agent's program; either way the
// canary variant goes. The write is a compare-and-swap on the agent's version with
// its audit entry in the same transaction, so of two activations of the agent only
// one applies a decision.
func (a *agentGrain) decide(corr, userID, decision, reason string) (persistence.Agent, *actorpb.ErrorReply) {
	c := a.canary
	if c == nil {
		return persistence.Agent{}, errorReply(actorpb.Code_CODE_NOT_FOUND, corr, "agent %s has no canary", a.identity)
	}
	if a.rt.deps.Programs == nil {
		return persistence.Agent{}, errorReply(actorpb.Code_CODE_UNAVAILABLE, corr, "this node cannot change programs")
	}
	next := a.agent
	next.Variants = make([]persistence.Variant, 0, len(a.agent.Variants))
	for _, v := range a.agent.Variants {
		if v.Canary == nil {
			next.Variants = append(next.Variants, v)
		}
	}
	action, outcome := AuditProgramRollback, "rolled_back"
	if decision == DecisionPromote {
		next.Program, action, outcome = c.stored.Program, AuditProgramPromote, "promoted"
	}
	trigger := "manual"
	if userID == "" {
		trigger = "automatic"
	}
	detail := map[string]any{"program_version": c.policy.Version, "variant": c.variant.name, "trigger": trigger, "reason": reason,
		"canary_turns": c.turns[1], "canary_failed": c.failed[1], "current_turns": c.turns[0], "current_failed": c.failed[0],
		"canary_ratings": c.up[1] + c.down[1], "current_ratings": c.up[0] + c.down[0]}
	stored, e := a.write(corr, next, userID, action, detail)
	if e != nil {
		return persistence.Agent{}, e
	}
	a.rt.metrics.deploys.WithLabelValues(outcome, trigger).Inc()
	a.log.Info("canary decided", "agent_id", a.identity, "correlation_id", corr, "decision", decision, "trigger", trigger,
		"program_version", c.policy.Version, "reason", reason)
	return stored, nil
}

// write stores next (at the version the grain holds) with its audit entry and uses
// it.
func (a *agentGrain) write(corr string, next persistence.Agent, userID, action string, detail map[string]any) (persistence.Agent, *actorpb.ErrorReply) {
	raw, err := json.Marshal(detail)
	if err != nil {
		return persistence.Agent{}, errorReply(actorpb.Code_CODE_INTERNAL, corr, "audit detail: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	stored, err := a.rt.deps.Programs.UpdateAudited(ctx, next, persistence.AuditEntry{ActorID: userID, Action: action,
		TargetType: "agent", TargetID: a.identity, Detail: raw})
	switch {
	case errors.Is(err, persistence.ErrConflict):
		// Another activation (or a PUT through it) changed the agent: read it again.
		a.loaded = false
		return persistence.Agent{}, errorReply(actorpb.Code_CODE_CONFLICT, corr, "agent %s changed since it was read", a.identity)
	case errors.Is(err, persistence.ErrNotFound):
		a.loaded = false
		return persistence.Agent{}, errorReply(actorpb.Code_CODE_NOT_FOUND, corr, "agent %s does not exist", a.identity)
	case err != nil:
		a.loaded = false
		a.log.Error("agent program write failed", "agent_id", a.identity, "correlation_id", corr, "action", action, "error", err)
		return persistence.Agent{}, errorReply(actorpb.Code_CODE_UNAVAILABLE, corr, "agent %s cannot be saved now", a.identity)
	}
	if e := a.use(stored, corr); e != nil {
		return persistence.Agent{}, e
	}
	return stored, nil
}
