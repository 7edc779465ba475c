package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/persistence"
)

// Bounds of agent fields.
const (
	maxAgentNameChars        = 200
	maxAgentTypeBytes        = 100
	maxAgentModelBytes       = 200
	maxAgentInstructionBytes = 32 << 10
	maxAgentSignatureBytes   = 4 << 10
	maxAgentConfigBytes      = 64 << 10
)

// AgentType describes a registered agent type for GET /api/v1/agents/types.
type AgentType struct {
	// Name is the value of an agent's "type" field.
	Name string `json:"name"`
	// Description says what agents of this type do.
	Description string `json:"description"`
	// Signature is the type's default signature in DSPy string form.
	Signature string `json:"signature"`
	// ConfigSchema is the JSON schema of an agent's "config" object.
	ConfigSchema json.RawMessage `json:"config_schema"`
	// Tools are the tools the type's program may call.
	Tools []AgentTool `json:"tools,omitempty"`
}

// AgentTool describes one tool of an agent type.
type AgentTool struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Args        json.RawMessage `json:"args,omitempty" doc:"JSON schema of the arguments"`
}

// agentTypesView is the body of GET /api/v1/agents/types.
type agentTypesView struct {
	Types []AgentType `json:"types"`
}

// agentView is an agent as clients see it.
type agentView struct {
	ID           string          `json:"id"`
	Name         string          `json:"name"`
	Type         string          `json:"type"`
	Instructions string          `json:"instructions"`
	Signature    string          `json:"signature" doc:"DSPy string form, e.g. \"message, history -> response\"; empty means the type's"`
	Model        string          `json:"model"`
	Config       json.RawMessage `json:"config" doc:"a JSON object following the type's config_schema"`
	OwnerID      *string         `json:"owner_id" doc:"null for the shared built-in agents"`
	Version      int64           `json:"version" doc:"grows with every change; send it back with PUT"`
	CreatedAt    time.Time       `json:"created_at"`
	UpdatedAt    time.Time       `json:"updated_at"`
}

func viewAgent(a persistence.Agent) agentView {
	v := agentView{ID: a.ID, Name: a.Name, Type: a.Type, Instructions: a.Instructions, Signature: a.Signature,
		Model: a.Model, Config: a.Config, Version: a.Version, CreatedAt: a.CreatedAt.UTC(), UpdatedAt: a.UpdatedAt.UTC()}
	if a.OwnerID != "" {
		owner := a.OwnerID
		v.OwnerID = &owner
	}
	if len(v.Config) == 0 {
		v.Config = json.RawMessage("{}")
	}
	return v
}

// agentsPage is the body of GET /api/v1/agents.
type agentsPage struct {
	Agents     []agentView `json:"agents" doc:"your agents and the shared built-ins, oldest first"`
	NextCursor string      `json:"next_cursor" doc:"empty on the last page"`
}

// createAgentRequest is the body of POST /api/v1/agents.
type createAgentRequest struct {
	Name         string          `json:"name" doc:"1 to 200 characters"`
	Type         string          `json:"type" doc:"one of GET /api/v1/agents/types"`
	Instructions string          `json:"instructions,omitempty" doc:"replaces the type's instructions; at most 32 KiB"`
	Signature    string          `json:"signature,omitempty" doc:"DSPy string form; empty means the type's"`
	Model        string          `json:"model,omitempty" doc:"preferred model name"`
	Config       json.RawMessage `json:"config,omitempty" doc:"a JSON object following the type's config_schema"`
}

// Validate implements Validator: the checks that need no registry.
func (r createAgentRequest) Validate() []FieldError {
	var f []FieldError
	if n := strings.TrimSpace(r.Name); n == "" || utf8.RuneCountInString(n) > maxAgentNameChars || strings.ContainsFunc(n, unicode.IsControl) {
		f = append(f, FieldError{Field: "name", Message: "must be 1 to 200 characters without control characters"})
	}
	f = append(f, required("type", r.Type, maxAgentTypeBytes)...)
	for _, c := range []struct {
		field, v string
		max      int
	}{{"instructions", r.Instructions, maxAgentInstructionBytes}, {"signature", r.Signature, maxAgentSignatureBytes}, {"model", r.Model, maxAgentModelBytes}} {
		if len(c.v) > c.max || strings.ContainsRune(c.v, 0) {
			f = append(f, FieldError{Field: c.field, Message: "is too long or contains NUL"})
		}
	}
	if len(r.Config) > 0 && (len(r.Config) > maxAgentConfigBytes || !bytes.HasPrefix(bytes.TrimSpace(r.Config), []byte("{"))) {
		f = append(f, FieldError{Field: "config", Message: "must be a JSON object of at most 64 KiB"})
	}
	return f
}

// updateAgentRequest is the body of PUT /api/v1/agents/{id}: the whole agent
// and the version it was read at (compare-and-swap).
type updateAgentRequest struct {
	Name         string          `json:"name" doc:"1 to 200 characters"`
	Type         string          `json:"type" doc:"one of GET /api/v1/agents/types"`
	Instructions string          `json:"instructions,omitempty"`
	Signature    string          `json:"signature,omitempty"`
	Model        string          `json:"model,omitempty"`
	Config       json.RawMessage `json:"config,omitempty"`
	Version      int64           `json:"version" doc:"the version you read; 409 when the agent changed since"`
}

func (r updateAgentRequest) fields() createAgentRequest {
	return createAgentRequest{Name: r.Name, Type: r.Type, Instructions: r.Instructions, Signature: r.Signature, Model: r.Model, Config: r.Config}
}

// Validate implements Validator.
func (r updateAgentRequest) Validate() []FieldError {
	f := r.fields().Validate()
	if r.Version < 1 {
		f = append(f, FieldError{Field: "version", Message: "is required: the version you read"})
	}
	return f
}

// agentRoutes serves /api/v1/agents.
type agentRoutes struct {
	agents            persistence.Agents
	types             func() []AgentType
	validateSignature func(string) error
	validateConfig    func(agentType string, config json.RawMessage) error
	changed           func(ctx context.Context, agentID string)
}

// check applies the registry's rules: a known type, a signature that
// parses, a config its type accepts. Messages from the validators are shown
// to the client, as they describe the client's own input.
func (a agentRoutes) check(r createAgentRequest) error {
	known := false
	for _, t := range a.types() {
		known = known || t.Name == r.Type
	}
	var f []FieldError
	if !known {
		f = append(f, FieldError{Field: "type", Message: "is not a registered agent type; see GET /api/v1/agents/types"})
	}
	if r.Signature != "" {
		if err := a.validateSignature(r.Signature); err != nil {
			f = append(f, FieldError{Field: "signature", Message: err.Error()})
		}
	}
	if known && a.validateConfig != nil {
		if err := a.validateConfig(r.Type, r.Config); err != nil {
			f = append(f, FieldError{Field: "config", Message: err.Error()})
		}
	}
	if len(f) > 0 {
		return Validation(f...)
	}
	return nil
}

func errNoAgent() *Error { return NewError(http.StatusNotFound, "no such agent") }

// readable loads an agent p may see: a built-in, its own, or any with
// agents:read:any. Others are a 404, as if they did not exist.
func (a agentRoutes) readable(c *fiber.Ctx, p auth.Principal) (persistence.Agent, error) {
	id, err := pathID(c, "id")
	if err != nil {
		return persistence.Agent{}, err
	}
	ag, err := a.agents.Get(c.UserContext(), id)
	switch {
	case errors.Is(err, persistence.ErrNotFound):
		return ag, errNoAgent()
	case err != nil:
		return ag, err
	case ag.OwnerID != "" && ag.OwnerID != p.UserID && !p.Can(auth.PermAgentsReadAny):
		return ag, errNoAgent()
	}
	return ag, nil
}

// writable is readable plus the right to change: the owner, or an admin
// (the only ones who may change built-ins).
func (a agentRoutes) writable(c *fiber.Ctx, p auth.Principal) (persistence.Agent, error) {
	ag, err := a.readable(c, p)
	if err == nil && !p.CanWriteAgent(ag.OwnerID) {
		return ag, NewError(http.StatusForbidden, "only the agent's owner or an admin may change it")
	}
	return ag, err
}

func (a agentRoutes) list(c *fiber.Ctx) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	req, err := pageRequest(c)
	if err != nil {
		return err
	}
	page, err := a.agents.ListVisible(c.UserContext(), p.UserID, req)
	if err != nil {
		return listProblem(err)
	}
	out := agentsPage{Agents: make([]agentView, len(page.Items)), NextCursor: page.NextCursor}
	for i, ag := range page.Items {
		out.Agents[i] = viewAgent(ag)
	}
	return c.JSON(out)
}

func (a agentRoutes) create(c *fiber.Ctx) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	req, err := Decode[createAgentRequest](c)
	if err != nil {
		return err
	}
	if err := a.check(req); err != nil {
		return err
	}
	ag, err := a.agents.Create(c.UserContext(), persistence.Agent{OwnerID: p.UserID, Name: strings.TrimSpace(req.Name), Type: req.Type,
		Instructions: req.Instructions, Signature: req.Signature, Model: req.Model, Config: req.Config})
	if err != nil {
		return err
	}
	return c.Status(http.StatusCreated).JSON(viewAgent(ag))
}

func (a agentRoutes) get(c *fiber.Ctx) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	ag, err := a.readable(c, p)
	if err != nil {
		return err
	}
	return c.JSON(viewAgent(ag))
}

func (a agentRoutes) update(c *fiber.Ctx) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	req, err := Decode[updateAgentRequest](c)
	if err != nil {
		return err
	}
	ag, err := a.writable(c, p)
	if err != nil {
		return err
	}
	if err := a.check(req.fields()); err != nil {
		return err
	}
	ag.Name, ag.Type, ag.Instructions, ag.Signature, ag.Model, ag.Config, ag.Version =
		strings.TrimSpace(req.Name), req.Type, req.Instructions, req.Signature, req.Model, req.Config, req.Version
	updated, err := a.agents.Update(c.UserContext(), ag)
	switch {
	case errors.Is(err, persistence.ErrConflict):
		return NewError(http.StatusConflict, "the agent changed since you read it; read it again and retry with its version")
	case errors.Is(err, persistence.ErrNotFound):
		return errNoAgent()
	case err != nil:
		return err
	}
	a.notify(c, updated.ID)
	return c.JSON(viewAgent(updated))
}

func (a agentRoutes) remove(c *fiber.Ctx) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	ag, err := a.writable(c, p)
	if err != nil {
		return err
	}
	if err := a.agents.Delete(c.UserContext(), ag.ID); errors.Is(err, persistence.ErrNotFound) {
		return errNoAgent()
	} else if err != nil {
		return err
	}
	a.notify(c, ag.ID)
	return c.SendStatus(http.StatusNoContent)
}

// notify tells the running agent, if any, to reload its definition.
func (a agentRoutes) notify(c *fiber.Ctx, id string) {
	if a.changed != nil {
		a.changed(c.UserContext(), id)
	}
}

func (a agentRoutes) listTypes(c *fiber.Ctx) error {
	return c.JSON(agentTypesView{Types: a.types()})
}

// mountAgents registers /api/v1/agents. /agents/types comes before
// /agents/:id, which would otherwise match it.
func (s *Server) mountAgents(a agentRoutes, authed fiber.Handler, rl rateLimits) {
	read, write := auth.RequirePermission(auth.PermAgentsRead), auth.RequirePermission(auth.PermAgentsWrite)
	s.Route(fiber.MethodGet, "/api/v1/agents", Op{Summary: "A page of your agents and the shared built-ins", Tag: "Agents", Auth: true,
		Query: pageQuery(), Response: agentsPage{}, Errors: []int{http.StatusBadRequest, http.StatusForbidden}},
		authed, rl.user("agents.list"), read, a.list)
	s.Route(fiber.MethodPost, "/api/v1/agents", Op{Summary: "Create an agent", Tag: "Agents", Auth: true,
		Request: createAgentRequest{}, Response: agentView{}, Status: http.StatusCreated, Errors: []int{http.StatusForbidden}},
		authed, rl.user("agents.create"), write, a.create)
	s.Route(fiber.MethodGet, "/api/v1/agents/types", Op{Summary: "The registered agent types with their signatures and config schemas", Tag: "Agents", Auth: true,
		Response: agentTypesView{}, Errors: []int{http.StatusForbidden}},
		authed, rl.user("agents.types"), read, a.listTypes)
	s.Route(fiber.MethodGet, "/api/v1/agents/:id", Op{Summary: "One agent", Tag: "Agents", Auth: true,
		Response: agentView{}, Errors: []int{http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound}},
		authed, rl.user("agents.get"), read, a.get)
	s.Route(fiber.MethodPut, "/api/v1/agents/:id", Op{Summary: "Replace an agent (its owner or an admin; version compare-and-swap)", Tag: "Agents", Auth: true,
		Request: updateAgentRequest{}, Response: agentView{}, Errors: []int{http.StatusForbidden, http.StatusNotFound, http.StatusConflict}},
		authed, rl.user("agents.update"), write, a.update)
	s.Route(fiber.MethodDelete, "/api/v1/agents/:id", Op{Summary: "Delete an agent (its owner or an admin)", Tag: "Agents", Auth: true,
		Status: http.StatusNoContent, Errors: []int{http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound}},
		authed, rl.user("agents.delete"), write, a.remove)
}
