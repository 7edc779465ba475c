package persistence

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/doug-martin/goqu/v9"
)

// Agent is a configured agent. OwnerID is empty for the built-ins every user sees.
// Version starts at 1 and grows with every update.
type Agent struct {
	ID           string
	OwnerID      string
	Name         string
	Type         string
	Instructions string
	// Signature is the DSPy string form, e.g. "message, history -> response".
	Signature string
	Model     string
	// Config is a JSON object; nil is stored as {}.
	Config json.RawMessage
	// Variants are the agent's weighted A/B variants; nil for none.
	Variants []Variant
	// Program is the compiled program state the agent runs (the JSON kowai
	// optimize writes); nil for its type's own program.
	Program   json.RawMessage
	Version   int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Variant is one weighted A/B variant of an agent: a conversation assigned to it
// runs with its model, instructions and compiled program state where they are set,
// the agent's otherwise.
type Variant struct {
	Name         string `json:"name"`
	Weight       int    `json:"weight"`
	Model        string `json:"model,omitempty"`
	Instructions string `json:"instructions,omitempty"`
	// Program is compiled program state (as Agent.Program); nil for the agent's.
	Program json.RawMessage `json:"program,omitempty"`
	// Canary, set on at most one variant, makes it a canary of its Program: it
	// runs Canary.Percent percent of the conversations, outside the weights.
	Canary *Canary `json:"canary,omitempty"`
}

// Canary is a compiled program deployed to a share of an agent's conversations,
// and the rule that promotes it or rolls it back.
type Canary struct {
	// Percent of the agent's conversations run the canary (1 to 100).
	Percent int `json:"percent"`
	// MinTurns is how many canary turns the decision waits for.
	MinTurns int `json:"min_turns"`
	// MinRatings is how many ratings of canary replies promotion waits for, and
	// how many each side needs before mean ratings are compared.
	MinRatings int `json:"min_ratings"`
	// MaxErrorRateIncrease rolls the canary back when its error rate exceeds the
	// rest's by more than this (0 to 1).
	MaxErrorRateIncrease float64 `json:"max_error_rate_increase"`
	// MaxFeedbackDrop rolls the canary back when its mean rating (-1 to 1) falls
	// below the rest's by more than this.
	MaxFeedbackDrop float64 `json:"max_feedback_drop"`
	// Version is the content hash of the program state.
	Version string `json:"version"`
	// DeployedAt starts the window the decision counts turns and ratings in.
	DeployedAt time.Time `json:"deployed_at"`
	// DeployedBy is the user who deployed it.
	DeployedBy string `json:"deployed_by,omitempty"`
}

// Agents stores agent definitions.
type Agents interface {
	// Create stores a (ID, version and times filled in) and returns it.
	Create(ctx context.Context, a Agent) (Agent, error)
	// Get returns the agent with this ID, or ErrNotFound.
	Get(ctx context.Context, id string) (Agent, error)
	// ListVisible pages the agents ownerID may use: their own and the built-ins.
	ListVisible(ctx context.Context, ownerID string, req PageRequest) (Page[Agent], error)
	// Update replaces the editable fields of a if its stored version is still a.Version,
	// and returns it with the next version; ErrConflict when another update came first,
	// ErrNotFound when there is no such agent.
	Update(ctx context.Context, a Agent) (Agent, error)
	// Delete removes the agent, or returns ErrNotFound.
	Delete(ctx context.Context, id string) error
}

// AgentPrograms changes an agent's programs (deploy, promotion, rollback) together
// with their audit entries.
type AgentPrograms interface {
	// UpdateAudited is Agents.Update (the same compare-and-swap and errors) and
	// appends e in the same transaction: e is stored if and only if a is.
	UpdateAudited(ctx context.Context, a Agent, e AuditEntry) (Agent, error)
}

// AgentStore implements Agents and AgentPrograms on a DB.
type AgentStore struct{ db *DB }

var (
	_ Agents        = (*AgentStore)(nil)
	_ AgentPrograms = (*AgentStore)(nil)
)

// NewAgentStore returns the agent repository of db.
func NewAgentStore(db *DB) *AgentStore { return &AgentStore{db: db} }

var agentCols = []any{"id", "owner_id", "name", "type", "instructions", "signature", "model", "config", "variants", "program", "version", "created_at", "updated_at"}

// VariantsJSON is vs as a JSON array, or nil for none (the protocol's
// AgentDefinition.variants_json).
func VariantsJSON(vs []Variant) []byte {
	if len(vs) == 0 {
		return nil
	}
	b, err := json.Marshal(vs)
	if err != nil {
		// Variants are strings, numbers, times and valid JSON: encoding cannot fail.
		panic(fmt.Sprintf("persistence: encode variants: %v", err))
	}
	return b
}

// ParseVariants decodes a VariantsJSON array; empty input is no variants.
func ParseVariants(raw []byte) ([]Variant, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var vs []Variant
	if err := json.Unmarshal(raw, &vs); err != nil {
		return nil, fmt.Errorf("decode variants: %w", err)
	}
	return vs, nil
}

// agentVariants is the stored form of vs: NULL for none.
func agentVariants(vs []Variant) (any, error) {
	if len(vs) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(vs)
	if err != nil {
		return nil, fmt.Errorf("encode variants: %w", err)
	}
	return string(b), nil
}

func agentConfig(c json.RawMessage) (string, error) {
	if len(c) == 0 {
		return "{}", nil
	}
	if !json.Valid(c) {
		return "", errors.New("config is not valid JSON")
	}
	return string(c), nil
}

// Create implements Agents.
func (s *AgentStore) Create(ctx context.Context, a Agent) (Agent, error) {
	if a.ID == "" {
		a.ID = newID()
	}
	if a.CreatedAt.IsZero() {
		a.CreatedAt = time.Now()
	}
	a.CreatedAt = utc(a.CreatedAt)
	a.UpdatedAt, a.Version = a.CreatedAt, 1
	config, err := agentConfig(a.Config)
	if err != nil {
		return Agent{}, fmt.Errorf("create agent %s: %w", a.Name, err)
	}
	a.Config = json.RawMessage(config)
	variants, err := agentVariants(a.Variants)
	if err != nil {
		return Agent{}, fmt.Errorf("create agent %s: %w", a.Name, err)
	}
	if len(a.Program) > 0 && !json.Valid(a.Program) {
		return Agent{}, fmt.Errorf("create agent %s: program is not valid JSON", a.Name)
	}
	var owner any
	if a.OwnerID != "" {
		owner = a.OwnerID
	}
	q := s.db.Goqu.Insert("agents").Prepared(true).Rows(goqu.Record{
		"id": a.ID, "owner_id": owner, "name": a.Name, "type": a.Type, "instructions": a.Instructions,
		"signature": a.Signature, "model": a.Model, "config": config, "variants": variants, "program": nullJSON(a.Program),
		"version": a.Version, "created_at": a.CreatedAt, "updated_at": a.UpdatedAt,
	})
	if _, err := q.Executor().ExecContext(ctx); err != nil {
		return Agent{}, wrap(err, "create agent %s", a.Name)
	}
	return a, nil
}

func (s *AgentStore) selectAgents() *goqu.SelectDataset {
	return s.db.Goqu.From("agents").Prepared(true).Select(agentCols...)
}

func scanAgent(r scanner) (Agent, error) {
	var (
		a        Agent
		owner    sql.NullString
		config   []byte
		variants []byte
		program  []byte
	)
	if err := r.Scan(&a.ID, &owner, &a.Name, &a.Type, &a.Instructions, &a.Signature, &a.Model, &config, &variants, &program,
		&a.Version, &a.CreatedAt, &a.UpdatedAt); err != nil {
		return Agent{}, err
	}
	vs, err := ParseVariants(variants)
	if err != nil {
		return Agent{}, fmt.Errorf("agent %s: %w", a.ID, err)
	}
	a.Variants = vs
	if len(program) > 0 {
		a.Program = json.RawMessage(program)
	}
	a.OwnerID, a.Config = owner.String, json.RawMessage(config)
	return a, nil
}

// Get implements Agents.
func (s *AgentStore) Get(ctx context.Context, id string) (Agent, error) {
	a, err := first(ctx, s.selectAgents().Where(goqu.C("id").Eq(id)), scanAgent)
	if err != nil {
		return Agent{}, fmt.Errorf("get agent %s: %w", id, err)
	}
	return a, nil
}

// ListVisible implements Agents, in ID (creation) order.
func (s *AgentStore) ListVisible(ctx context.Context, ownerID string, req PageRequest) (Page[Agent], error) {
	q := s.selectAgents().Where(goqu.Or(goqu.C("owner_id").Eq(ownerID), goqu.C("owner_id").IsNull()))
	q, err := keyset(q, req, "id", false, stringParser)
	if err != nil {
		return Page[Agent]{}, fmt.Errorf("list agents of %s: %w", ownerID, err)
	}
	as, err := scanAll(ctx, q, scanAgent)
	if err != nil {
		return Page[Agent]{}, wrap(err, "list agents of %s", ownerID)
	}
	return pageOf(as, req, func(a Agent) (string, string) { return a.ID, a.ID }), nil
}

// Update implements Agents. Owner and creation time never change.
func (s *AgentStore) Update(ctx context.Context, a Agent) (Agent, error) {
	n, err := updateAgent(ctx, s.db.Goqu, a)
	if err != nil {
		return Agent{}, err
	}
	return s.updated(ctx, a, n)
}

// UpdateAudited implements AgentPrograms: Update and the audit entry e in one
// transaction, so the change is recorded exactly when it is made.
func (s *AgentStore) UpdateAudited(ctx context.Context, a Agent, e AuditEntry) (Agent, error) {
	var n int64
	err := s.db.inTx(ctx, func(tx *goqu.TxDatabase) error {
		var err error
		if n, err = updateAgent(ctx, tx, a); err != nil || n == 0 {
			return err
		}
		_, err = appendAudit(ctx, tx, e)
		return err
	})
	if err != nil {
		return Agent{}, err
	}
	return s.updated(ctx, a, n)
}

// updateAgent writes a if its stored version is still a.Version and returns the
// rows changed (0 or 1).
func updateAgent(ctx context.Context, r runner, a Agent) (int64, error) {
	config, err := agentConfig(a.Config)
	if err != nil {
		return 0, fmt.Errorf("update agent %s: %w", a.ID, err)
	}
	variants, err := agentVariants(a.Variants)
	if err != nil {
		return 0, fmt.Errorf("update agent %s: %w", a.ID, err)
	}
	if len(a.Program) > 0 && !json.Valid(a.Program) {
		return 0, fmt.Errorf("update agent %s: program is not valid JSON", a.ID)
	}
	now := utc(time.Now())
	q := r.Update("agents").Prepared(true).Set(goqu.Record{
		"name": a.Name, "type": a.Type, "instructions": a.Instructions, "signature": a.Signature,
		"model": a.Model, "config": config, "variants": variants, "program": nullJSON(a.Program), "version": a.Version + 1, "updated_at": now,
	}).Where(goqu.C("id").Eq(a.ID), goqu.C("version").Eq(a.Version))
	n, err := rowsAffected(q.Executor().ExecContext(ctx))
	if err != nil {
		return 0, wrap(err, "update agent %s", a.ID)
	}
	return n, nil
}

// updated returns the agent after an update of a that changed n rows: the
// stored agent, or ErrConflict / ErrNotFound when nothing changed.
func (s *AgentStore) updated(ctx context.Context, a Agent, n int64) (Agent, error) {
	if n == 0 {
		if _, err := s.Get(ctx, a.ID); err != nil {
			return Agent{}, fmt.Errorf("update agent: %w", err)
		}
		return Agent{}, fmt.Errorf("update agent %s: stored version is not %d: %w", a.ID, a.Version, ErrConflict)
	}
	return s.Get(ctx, a.ID)
}

// Delete implements Agents.
func (s *AgentStore) Delete(ctx context.Context, id string) error {
	return s.db.deleteByID(ctx, "agents", id)
}
