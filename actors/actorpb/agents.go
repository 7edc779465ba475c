package actorpb

import (
	"fmt"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kowai/kowai/persistence"
)

// AgentOf is the stored form of d: the agent grain writes it, and the gateway
// reads the grain's answer with it. Malformed variants are an error.
func AgentOf(d *AgentDefinition) (persistence.Agent, error) {
	vs, err := persistence.ParseVariants(d.GetVariantsJson())
	if err != nil {
		return persistence.Agent{}, fmt.Errorf("agent %s: %w", d.GetId(), err)
	}
	ag := persistence.Agent{ID: d.GetId(), OwnerID: d.GetOwnerId(), Name: d.GetName(), Type: d.GetType(),
		Instructions: d.GetInstructions(), Signature: d.GetSignature(), Model: d.GetModel(), Config: d.GetConfigJson(),
		Version: d.GetVersion(), Variants: vs}
	if p := d.GetProgramJson(); len(p) > 0 {
		ag.Program = p
	}
	if t := d.GetCreatedAt(); t != nil {
		ag.CreatedAt = t.AsTime()
	}
	if t := d.GetUpdatedAt(); t != nil {
		ag.UpdatedAt = t.AsTime()
	}
	return ag, nil
}

// DefinitionOf is the protocol form of ag, as PutAgent carries it and the
// agent grain answers it.
func DefinitionOf(ag persistence.Agent) *AgentDefinition {
	d := &AgentDefinition{Id: ag.ID, OwnerId: ag.OwnerID, Name: ag.Name, Type: ag.Type, Instructions: ag.Instructions,
		Signature: ag.Signature, Model: ag.Model, ConfigJson: ag.Config, Version: ag.Version,
		VariantsJson: persistence.VariantsJSON(ag.Variants), ProgramJson: ag.Program}
	if !ag.CreatedAt.IsZero() {
		d.CreatedAt = timestamppb.New(ag.CreatedAt)
	}
	if !ag.UpdatedAt.IsZero() {
		d.UpdatedAt = timestamppb.New(ag.UpdatedAt)
	}
	return d
}
