package gateway

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/cluster"
	"github.com/kowai/kowai/internal/logging"
	"github.com/kowai/kowai/persistence"
)

// AgentWriter creates, replaces and deletes agents. persistence.Agents
// satisfies it by writing the table directly; ClusterAgents writes through
// the agent grains, which must be the only writers wherever they run.
type AgentWriter interface {
	// Create stores a and returns it with its ID, version and times.
	Create(ctx context.Context, a persistence.Agent) (persistence.Agent, error)
	// Update replaces a if it is still at a.Version: persistence.ErrConflict
	// when it changed, persistence.ErrNotFound when it is gone.
	Update(ctx context.Context, a persistence.Agent) (persistence.Agent, error)
	// Delete removes the agent, or returns persistence.ErrNotFound.
	Delete(ctx context.Context, id string) error
}

// ClusterAgents is the AgentWriter that sends every change to the agent's
// grain: the grain writes its row (the same version compare-and-swap) and
// uses the new definition for the next reply, so once a change is answered
// no node serves the old one.
type ClusterAgents struct {
	Grains cluster.GrainCaller
}

var _ AgentWriter = (*ClusterAgents)(nil)

// Create implements AgentWriter.
func (c *ClusterAgents) Create(ctx context.Context, a persistence.Agent) (persistence.Agent, error) {
	if a.ID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return persistence.Agent{}, fmt.Errorf("new agent ID: %w", err)
		}
		a.ID = id.String()
	}
	return c.put(ctx, a, true)
}

// Update implements AgentWriter.
func (c *ClusterAgents) Update(ctx context.Context, a persistence.Agent) (persistence.Agent, error) {
	return c.put(ctx, a, false)
}

func (c *ClusterAgents) put(ctx context.Context, a persistence.Agent, create bool) (persistence.Agent, error) {
	def := actorpb.DefinitionOf(a)
	got, err := actorpb.As[*actorpb.AgentDefinition](c.Grains.Call(ctx, AgentKind, a.ID,
		&actorpb.PutAgent{CorrelationId: logging.CorrelationID(ctx), Agent: def, Create: create}))
	if err != nil {
		return persistence.Agent{}, agentError(err)
	}
	return actorpb.AgentOf(got)
}

func (c *ClusterAgents) Delete(ctx context.Context, id string) error {
	_, err := actorpb.As[*actorpb.Ack](c.Grains.Call(ctx, AgentKind, id,
		&actorpb.DeleteAgent{CorrelationId: logging.CorrelationID(ctx), AgentId: id}))
	return agentError(err)
}

// agentError is err with the grain's conflict and not-found codes as the
// repository's errors, so the routes answer them alike from either writer.
func agentError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, actorpb.ErrConflict):
		return fmt.Errorf("%w: %w", persistence.ErrConflict, err)
	case errors.Is(err, actorpb.ErrNotFound):
		return fmt.Errorf("%w: %w", persistence.ErrNotFound, err)
	}
	return grainError(err)
}
