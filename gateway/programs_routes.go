package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/gofiber/fiber/v2"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/agents"
	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/internal/logging"
	"github.com/kowai/kowai/persistence"
)

// Defaults of a canary's settings (POST /api/v1/agents/{id}/programs).
const (
	DefaultCanaryPercent              = 10
	DefaultCanaryMinTurns             = 100
	DefaultCanaryMinRatings           = 10
	DefaultCanaryMaxErrorRateIncrease = 0.05
	DefaultCanaryMaxFeedbackDrop      = 0.2
)

// Bounds of a canary's settings.
const (
	maxCanaryMinTurns   = 1_000_000
	maxCanaryMinRatings = 1_000_000
	maxProgramBytes     = 512 << 10
)

// Decisions on a canary, as the programs routes name them.
const (
	decisionPromote  = "promote"
	decisionRollback = "rollback"
)

// ProgramWriter deploys compiled programs to agents and decides their canaries;
// ClusterAgents does it through the agent grains, which audit each change and
// promote or roll back canaries by themselves.
type ProgramWriter interface {
	// Deploy attaches state to the agent as a canary with the settings of c
	// (Percent, MinTurns, MinRatings and the margins), on behalf of userID; version,
	// when not 0, is the agent version the caller read (persistence.ErrConflict
	// when it changed).
	Deploy(ctx context.Context, agentID, userID string, state json.RawMessage, c persistence.Canary, version int64) (persistence.Agent, error)
	// Decide promotes ("promote") or rolls back ("rollback") the agent's canary;
	// persistence.ErrNotFound when it has none.
	Decide(ctx context.Context, agentID, userID, decision string) (persistence.Agent, error)
	// Rated tells the agent that one of its replies was rated.
	Rated(ctx context.Context, agentID string) error
}

var _ ProgramWriter = (*ClusterAgents)(nil)

// Deploy implements ProgramWriter.
func (c *ClusterAgents) Deploy(ctx context.Context, agentID, userID string, state json.RawMessage, p persistence.Canary, version int64) (persistence.Agent, error) {
	got, err := actorpb.As[*actorpb.AgentDefinition](c.Grains.Call(ctx, AgentKind, agentID, &actorpb.DeployProgram{
		CorrelationId: logging.CorrelationID(ctx), UserId: userID, StateJson: state, Percent: int32(p.Percent),
		MinTurns: int32(p.MinTurns), MinRatings: int32(p.MinRatings), MaxErrorRateIncrease: p.MaxErrorRateIncrease,
		MaxFeedbackDrop: p.MaxFeedbackDrop, Version: version}))
	if err != nil {
		return persistence.Agent{}, agentError(err)
	}
	return actorpb.AgentOf(got)
}

// Decide implements ProgramWriter.
func (c *ClusterAgents) Decide(ctx context.Context, agentID, userID, decision string) (persistence.Agent, error) {
	got, err := actorpb.As[*actorpb.AgentDefinition](c.Grains.Call(ctx, AgentKind, agentID, &actorpb.DecideProgram{
		CorrelationId: logging.CorrelationID(ctx), UserId: userID, Decision: decision}))
	if err != nil {
		return persistence.Agent{}, agentError(err)
	}
	return actorpb.AgentOf(got)
}

// Rated implements ProgramWriter.
func (c *ClusterAgents) Rated(ctx context.Context, agentID string) error {
	_, err := actorpb.As[*actorpb.Ack](c.Grains.Call(ctx, AgentKind, agentID, &actorpb.ProgramFeedback{
		CorrelationId: logging.CorrelationID(ctx), AgentId: agentID}))
	return agentError(err)
}

// deployProgramRequest is the body of POST /api/v1/agents/{id}/programs.
type deployProgramRequest struct {
	State                json.RawMessage `json:"state" doc:"the compiled program state, as kowai optimize writes it (format, program, version, predictors); it must fit the agent's type and signature"`
	Percent              *int            `json:"percent,omitempty" doc:"the canary's share of the agent's conversations, 1 to 100 (default 10)"`
	MinTurns             *int            `json:"min_turns,omitempty" doc:"canary turns before it is promoted or rolled back, 1 to 1000000 (default 100)"`
	MinRatings           *int            `json:"min_ratings,omitempty" doc:"ratings of canary replies promotion waits for, and that each side needs before mean ratings are compared, 0 to 1000000 (default 10)"`
	MaxErrorRateIncrease *float64        `json:"max_error_rate_increase,omitempty" doc:"roll back when the canary's error rate exceeds the current version's by more than this, 0 to 1 (default 0.05)"`
	MaxFeedbackDrop      *float64        `json:"max_feedback_drop,omitempty" doc:"roll back when the canary's mean rating (-1 to 1) is below the current version's by more than this, 0 to 2 (default 0.2)"`
	Version              int64           `json:"version,omitempty" doc:"the agent version you read; 409 when it changed since (0 or absent: any)"`
}

// Validate implements Validator.
func (r deployProgramRequest) Validate() []FieldError {
	var f []FieldError
	switch {
	case len(r.State) == 0 || isJSONNull(r.State):
		f = append(f, FieldError{Field: "state", Message: "is required: the compiled program state kowai optimize writes"})
	case !bytes.HasPrefix(bytes.TrimSpace(r.State), []byte("{")):
		f = append(f, FieldError{Field: "state", Message: "must be a JSON object: the compiled program state kowai optimize writes"})
	case len(r.State) > maxProgramBytes:
		f = append(f, FieldError{Field: "state", Message: "is larger than 512 KiB"})
	}
	if r.Percent != nil && (*r.Percent < 1 || *r.Percent > 100) {
		f = append(f, FieldError{Field: "percent", Message: "must be from 1 to 100"})
	}
	if r.MinTurns != nil && (*r.MinTurns < 1 || *r.MinTurns > maxCanaryMinTurns) {
		f = append(f, FieldError{Field: "min_turns", Message: "must be from 1 to 1000000"})
	}
	if r.MinRatings != nil && (*r.MinRatings < 0 || *r.MinRatings > maxCanaryMinRatings) {
		f = append(f, FieldError{Field: "min_ratings", Message: "must be from 0 to 1000000"})
	}
	if r.MaxErrorRateIncrease != nil && !(*r.MaxErrorRateIncrease >= 0 && *r.MaxErrorRateIncrease <= 1) {
		f = append(f, FieldError{Field: "max_error_rate_increase", Message: "must be from 0 to 1"})
	}
	if r.MaxFeedbackDrop != nil && !(*r.MaxFeedbackDrop >= 0 && *r.MaxFeedbackDrop <= 2) {
		f = append(f, FieldError{Field: "max_feedback_drop", Message: "must be from 0 to 2"})
	}
	if r.Version < 0 {
		f = append(f, FieldError{Field: "version", Message: "must not be negative"})
	}
	return f
}

// canary is the request's settings with the defaults filled in.
func (r deployProgramRequest) canary() persistence.Canary {
	c := persistence.Canary{Percent: DefaultCanaryPercent, MinTurns: DefaultCanaryMinTurns, MinRatings: DefaultCanaryMinRatings,
		MaxErrorRateIncrease: DefaultCanaryMaxErrorRateIncrease, MaxFeedbackDrop: DefaultCanaryMaxFeedbackDrop}
	if r.Percent != nil {
		c.Percent = *r.Percent
	}
	if r.MinTurns != nil {
		c.MinTurns = *r.MinTurns
	}
	if r.MinRatings != nil {
		c.MinRatings = *r.MinRatings
	}
	if r.MaxErrorRateIncrease != nil {
		c.MaxErrorRateIncrease = *r.MaxErrorRateIncrease
	}
	if r.MaxFeedbackDrop != nil {
		c.MaxFeedbackDrop = *r.MaxFeedbackDrop
	}
	return c
}

// deployProgram serves POST /api/v1/agents/{id}/programs.
func (a agentRoutes) deployProgram(c *fiber.Ctx) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	req, err := Decode[deployProgramRequest](c)
	if err != nil {
		return err
	}
	ag, err := a.writable(c, p)
	if err != nil {
		return err
	}
	spec := agents.Spec{ID: ag.ID, Name: ag.Name, Type: ag.Type, Instructions: ag.Instructions, Signature: ag.Signature, Config: ag.Config}
	if _, err := a.checkProgram(spec, req.State); err != nil {
		return Validation(FieldError{Field: "state", Message: err.Error()})
	}
	stored, err := a.programs.Deploy(c.UserContext(), ag.ID, p.UserID, req.State, req.canary(), req.Version)
	switch {
	case errors.Is(err, persistence.ErrConflict):
		return NewError(http.StatusConflict, "the agent changed since you read it; read it again and retry with its version")
	case errors.Is(err, persistence.ErrNotFound):
		return errNoAgent()
	case err != nil:
		return err
	}
	return c.Status(http.StatusCreated).JSON(viewAgent(stored))
}

// decideProgram serves POST /api/v1/agents/{id}/programs/promote and /rollback.
func (a agentRoutes) decideProgram(decision string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		p, err := principal(c)
		if err != nil {
			return err
		}
		ag, err := a.writable(c, p)
		if err != nil {
			return err
		}
		stored, err := a.programs.Decide(c.UserContext(), ag.ID, p.UserID, decision)
		switch {
		case errors.Is(err, persistence.ErrNotFound):
			return NewError(http.StatusNotFound, "the agent has no canary")
		case errors.Is(err, persistence.ErrConflict):
			return NewError(http.StatusConflict, "the agent changed meanwhile; read it again")
		case err != nil:
			return err
		}
		return c.JSON(viewAgent(stored))
	}
}

// mountPrograms registers /api/v1/agents/{id}/programs.
func (s *Server) mountPrograms(a agentRoutes, authed fiber.Handler, rl rateLimits) {
	if a.programs == nil || a.checkProgram == nil {
		return
	}
	write := auth.RequirePermission(auth.PermAgentsWrite)
	s.Route(fiber.MethodPost, "/api/v1/agents/:id/programs", Op{Summary: "Deploy compiled program state to an agent as a canary at a percentage; " +
		"it is promoted or rolled back by its rule over its first turns and ratings (its owner or an admin)", Tag: "Agents", Auth: true,
		Request: deployProgramRequest{}, Response: agentView{}, Status: http.StatusCreated,
		Errors: []int{http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound, http.StatusConflict}},
		authed, rl.user("agents.programs"), write, a.deployProgram)
	s.Route(fiber.MethodPost, "/api/v1/agents/:id/programs/promote", Op{Summary: "Promote an agent's canary now: its program becomes the agent's (its owner or an admin)", Tag: "Agents", Auth: true,
		Response: agentView{}, Errors: []int{http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound, http.StatusConflict}},
		authed, rl.user("agents.programs"), write, a.decideProgram(decisionPromote))
	s.Route(fiber.MethodPost, "/api/v1/agents/:id/programs/rollback", Op{Summary: "Roll an agent's canary back now (its owner or an admin)", Tag: "Agents", Auth: true,
		Response: agentView{}, Errors: []int{http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound, http.StatusConflict}},
		authed, rl.user("agents.programs"), write, a.decideProgram(decisionRollback))
}
