package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/kowai/kowai/agents"
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
	maxVariantNameBytes      = 64
	maxVariantWeight         = 10000
)

// agentVariant is one weighted A/B variant of an agent.
type agentVariant struct {
	Name         string          `json:"name" doc:"1 to 64 letters, digits, '-', '_' or '.'; unique within the agent; 'canary-' starts only canaries"`
	Weight       int             `json:"weight" doc:"1 to 10000: the variant's share of conversations is its weight over the sum of weights (a canary's is its percent)"`
	Model        string          `json:"model,omitempty" doc:"a model from GET /api/v1/models; empty for the agent's model"`
	Instructions string          `json:"instructions,omitempty" doc:"replaces the agent's instructions; empty for the agent's"`
	Program      json.RawMessage `json:"program,omitempty" doc:"compiled program state (the JSON kowai optimize writes) the variant runs; it must fit the agent's type and signature"`
	Canary       *agentCanary    `json:"canary,omitempty" doc:"read only: set on the canary that POST /api/v1/agents/{id}/programs deployed; PUT and PATCH keep the canary as it is"`
}

// agentCanary is a canary variant's deployment and decision rule.
type agentCanary struct {
	Percent              int       `json:"percent" doc:"the canary's share of conversations, in percent"`
	MinTurns             int       `json:"min_turns" doc:"canary turns before it is promoted or rolled back"`
	MinRatings           int       `json:"min_ratings" doc:"ratings of canary replies promotion waits for, and that each side needs before mean ratings are compared"`
	MaxErrorRateIncrease float64   `json:"max_error_rate_increase" doc:"rolled back when its error rate exceeds the current version's by more than this"`
	MaxFeedbackDrop      float64   `json:"max_feedback_drop" doc:"rolled back when its mean rating (-1 to 1) is below the current version's by more than this"`
	Version              string    `json:"version" doc:"the program state's content hash"`
	DeployedAt           time.Time `json:"deployed_at" doc:"turns and ratings since then count"`
	DeployedBy           string    `json:"deployed_by" doc:"the user who deployed it"`
}

func viewVariants(vs []persistence.Variant) []agentVariant {
	out := make([]agentVariant, len(vs))
	for i, v := range vs {
		out[i] = agentVariant{Name: v.Name, Weight: v.Weight, Model: v.Model, Instructions: v.Instructions, Program: v.Program}
		if c := v.Canary; c != nil {
			out[i].Canary = &agentCanary{Percent: c.Percent, MinTurns: c.MinTurns, MinRatings: c.MinRatings,
				MaxErrorRateIncrease: c.MaxErrorRateIncrease, MaxFeedbackDrop: c.MaxFeedbackDrop, Version: c.Version,
				DeployedAt: c.DeployedAt.UTC(), DeployedBy: c.DeployedBy}
		}
	}
	return out
}

// storedVariants are the variants of a request, without canaries (the
// programs routes deploy them; the stored one is kept by keepCanary).
func storedVariants(vs []agentVariant) []persistence.Variant {
	var out []persistence.Variant
	for _, v := range vs {
		if v.Canary != nil {
			continue
		}
		sv := persistence.Variant{Name: v.Name, Weight: v.Weight, Model: v.Model, Instructions: v.Instructions}
		if len(v.Program) > 0 && !isJSONNull(v.Program) {
			sv.Program = v.Program
		}
		out = append(out, sv)
	}
	return out
}

// keepCanary is vs with the canary of ag, if it has one.
func keepCanary(vs []persistence.Variant, ag persistence.Agent) []persistence.Variant {
	for _, v := range ag.Variants {
		if v.Canary != nil {
			vs = append(vs, v)
		}
	}
	return vs
}

// checkVariants reports what is wrong with vs, field by field.
func checkVariants(vs []agentVariant) []FieldError {
	var f []FieldError
	// A canary, sent back as read, comes on top of the variants.
	plain := 0
	for _, v := range vs {
		if v.Canary == nil {
			plain++
		}
	}
	if plain > agents.MaxVariants {
		f = append(f, FieldError{Field: "variants", Message: fmt.Sprintf("has %d variants; at most %d are allowed", plain, agents.MaxVariants)})
	}
	seen := make(map[string]bool, len(vs))
	for i, v := range vs {
		at := fmt.Sprintf("variants[%d]", i)
		switch {
		case v.Name == "" || len(v.Name) > maxVariantNameBytes || strings.IndexFunc(v.Name, notVariantNameRune) >= 0:
			f = append(f, FieldError{Field: at + ".name", Message: "must be 1 to 64 letters, digits, '-', '_' or '.'"})
		case seen[v.Name]:
			f = append(f, FieldError{Field: at + ".name", Message: fmt.Sprintf("%q names two variants; names must be unique", v.Name)})
		case v.Canary == nil && strings.HasPrefix(v.Name, canaryPrefix):
			f = append(f, FieldError{Field: at + ".name", Message: "names starting with 'canary-' are kept for canaries (POST /api/v1/agents/{id}/programs)"})
		}
		seen[v.Name] = true
		if v.Weight < 1 || v.Weight > maxVariantWeight {
			f = append(f, FieldError{Field: at + ".weight", Message: "must be from 1 to 10000"})
		}
		if len(v.Model) > maxAgentModelBytes || strings.ContainsRune(v.Model, 0) {
			f = append(f, FieldError{Field: at + ".model", Message: "is too long or contains NUL"})
		}
		if len(v.Instructions) > maxAgentInstructionBytes || strings.ContainsRune(v.Instructions, 0) {
			f = append(f, FieldError{Field: at + ".instructions", Message: "is too long or contains NUL"})
		}
		if len(v.Program) > 0 && !isJSONNull(v.Program) && !bytes.HasPrefix(bytes.TrimSpace(v.Program), []byte("{")) {
			f = append(f, FieldError{Field: at + ".program", Message: "must be a JSON object: compiled program state"})
		}
	}
	return f
}

// canaryPrefix starts the names of canary variants.
const canaryPrefix = "canary-"

func notVariantNameRune(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
}

// agentTypesView is the body of GET /api/v1/agents/types.
type agentTypesView struct {
	Types []agents.Info `json:"types"`
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
	Variants     []agentVariant  `json:"variants" doc:"weighted A/B variants; a conversation runs with one, chosen by a hash of its ID; empty for none"`
	Program      json.RawMessage `json:"program" doc:"the compiled program state the agent runs (promoted from a canary); null for its type's own program"`
	OwnerID      *string         `json:"owner_id" doc:"null for the shared built-in agents"`
	Version      int64           `json:"version" doc:"grows with every change; send it back with PUT"`
	CreatedAt    time.Time       `json:"created_at"`
	UpdatedAt    time.Time       `json:"updated_at"`
}

func viewAgent(a persistence.Agent) agentView {
	v := agentView{ID: a.ID, Name: a.Name, Type: a.Type, Instructions: a.Instructions, Signature: a.Signature,
		Model: a.Model, Config: a.Config, Variants: viewVariants(a.Variants), Version: a.Version, CreatedAt: a.CreatedAt.UTC(), UpdatedAt: a.UpdatedAt.UTC()}
	if a.OwnerID != "" {
		owner := a.OwnerID
		v.OwnerID = &owner
	}
	if len(v.Config) == 0 {
		v.Config = json.RawMessage("{}")
	}
	if len(a.Program) > 0 {
		v.Program = a.Program
	} else {
		v.Program = json.RawMessage("null")
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
	Model        string          `json:"model,omitempty" doc:"a model from GET /api/v1/models (provider:model, or offline); empty for the node's default"`
	Config       json.RawMessage `json:"config,omitempty" doc:"a JSON object following the type's config_schema"`
	Variants     []agentVariant  `json:"variants,omitempty" doc:"weighted A/B variants, at most 8; none by default"`
}

// Validate implements Validator: the checks that need no registry.
func (r createAgentRequest) Validate() []FieldError {
	var f []FieldError
	f = append(f, checkName("name", r.Name, maxAgentNameChars, true)...)
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
	return append(f, checkVariants(r.Variants)...)
}

// updateAgentRequest is the body of PUT /api/v1/agents/{id}: the whole agent
// and the version it was read at (compare-and-swap). PUT replaces every
// field, so every field is required: a field left out would otherwise be
// emptied without anyone asking for it. PATCH changes some fields.
type updateAgentRequest struct {
	Name         string          `json:"name" doc:"1 to 200 characters"`
	Type         string          `json:"type" doc:"one of GET /api/v1/agents/types"`
	Instructions *string         `json:"instructions" doc:"required; \"\" for the type's instructions"`
	Signature    *string         `json:"signature" doc:"required; \"\" for the type's signature"`
	Model        *string         `json:"model" doc:"required; \"\" for the default model"`
	Config       json.RawMessage `json:"config" doc:"required; a JSON object following the type's config_schema ({} for the defaults)"`
	Variants     *[]agentVariant `json:"variants" doc:"the A/B variants ([] for none); left out, the agent keeps its variants"`
	Version      int64           `json:"version" doc:"the version you read; 409 when the agent changed since"`
}

// fields are the agent's fields after the PUT; ag's variants stay when it sends none.
func (r updateAgentRequest) fields(ag persistence.Agent) createAgentRequest {
	deref := func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	}
	out := createAgentRequest{Name: r.Name, Type: r.Type, Instructions: deref(r.Instructions), Signature: deref(r.Signature),
		Model: deref(r.Model), Config: r.Config, Variants: viewVariants(ag.Variants)}
	if r.Variants != nil {
		out.Variants = *r.Variants
	}
	return out
}

// errReplaceMissing is the message for a field a PUT leaves out.
const errReplaceMissing = "is required: PUT replaces the whole agent (send \"\" or {} for the default, or use PATCH to change some fields)"

// Validate implements Validator.
func (r updateAgentRequest) Validate() []FieldError {
	f := r.fields(persistence.Agent{}).Validate()
	for _, c := range []struct {
		field   string
		missing bool
	}{{"instructions", r.Instructions == nil}, {"signature", r.Signature == nil}, {"model", r.Model == nil}, {"config", len(r.Config) == 0}} {
		if c.missing {
			f = append(f, FieldError{Field: c.field, Message: errReplaceMissing})
		}
	}
	if r.Version < 1 {
		f = append(f, FieldError{Field: "version", Message: "is required: the version you read"})
	}
	return f
}

// patchAgentRequest is the body of PATCH /api/v1/agents/{id}: a JSON merge
// patch (RFC 7396) of the agent's fields plus the version it was read at.
// A field left out keeps its value; null resets an optional field to its
// default; config is merged key by key the same way.
type patchAgentRequest struct {
	Name         json.RawMessage `json:"name,omitempty" doc:"a string of 1 to 200 characters"`
	Type         json.RawMessage `json:"type,omitempty" doc:"a string, one of GET /api/v1/agents/types"`
	Instructions json.RawMessage `json:"instructions,omitempty" doc:"a string, or null for the type's instructions"`
	Signature    json.RawMessage `json:"signature,omitempty" doc:"a string, or null for the type's signature"`
	Model        json.RawMessage `json:"model,omitempty" doc:"a string, or null for the default model"`
	Config       json.RawMessage `json:"config,omitempty" doc:"a JSON merge patch of the config object; null resets it to {}"`
	Variants     json.RawMessage `json:"variants,omitempty" doc:"the A/B variants, replaced as a whole; null or [] for none"`
	Version      int64           `json:"version" doc:"the version you read; 409 when the agent changed since"`
}

// Validate implements Validator: the shape of the patch; the patched agent
// is validated as a whole afterwards.
func (r patchAgentRequest) Validate() []FieldError {
	var f []FieldError
	if r.Version < 1 {
		f = append(f, FieldError{Field: "version", Message: "is required: the version you read"})
	}
	for _, c := range []struct {
		field     string
		raw       json.RawMessage
		removable bool
	}{{"name", r.Name, false}, {"type", r.Type, false}, {"instructions", r.Instructions, true}, {"signature", r.Signature, true}, {"model", r.Model, true}} {
		switch {
		case len(c.raw) == 0:
		case isJSONNull(c.raw) && !c.removable:
			f = append(f, FieldError{Field: c.field, Message: "cannot be removed"})
		case isJSONNull(c.raw):
		case c.raw[0] != '"':
			f = append(f, FieldError{Field: c.field, Message: "must be a string"})
		}
	}
	if len(r.Config) > 0 && !isJSONNull(r.Config) && r.Config[0] != '{' {
		f = append(f, FieldError{Field: "config", Message: "must be a JSON object (a merge patch) or null"})
	}
	if len(r.Variants) > 0 && !isJSONNull(r.Variants) && r.Variants[0] != '[' {
		f = append(f, FieldError{Field: "variants", Message: "must be an array of variants or null"})
	}
	return f
}

// apply returns the fields of ag with the patch applied.
func (r patchAgentRequest) apply(ag persistence.Agent) (createAgentRequest, error) {
	out := createAgentRequest{Name: ag.Name, Type: ag.Type, Instructions: ag.Instructions, Signature: ag.Signature,
		Model: ag.Model, Config: ag.Config, Variants: viewVariants(ag.Variants)}
	for _, c := range []struct {
		raw json.RawMessage
		to  *string
	}{{r.Name, &out.Name}, {r.Type, &out.Type}, {r.Instructions, &out.Instructions}, {r.Signature, &out.Signature}, {r.Model, &out.Model}} {
		switch {
		case len(c.raw) == 0:
		case isJSONNull(c.raw):
			*c.to = ""
		default:
			if err := json.Unmarshal(c.raw, c.to); err != nil {
				return out, fmt.Errorf("apply agent patch: %w", err)
			}
		}
	}
	switch {
	case isJSONNull(r.Variants):
		out.Variants = nil
	case len(r.Variants) > 0:
		var vs []agentVariant
		if err := json.Unmarshal(r.Variants, &vs); err != nil {
			return out, Validation(FieldError{Field: "variants", Message: "must be an array of {name, weight, model, instructions}"})
		}
		out.Variants = vs
	}
	switch {
	case isJSONNull(r.Config):
		out.Config = json.RawMessage("{}")
	case len(r.Config) > 0:
		merged, err := mergePatch(out.Config, r.Config)
		if err != nil {
			return out, err
		}
		out.Config = merged
	}
	return out, nil
}

func isJSONNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// mergePatch applies the JSON merge patch (RFC 7396) patch to target.
func mergePatch(target, patch json.RawMessage) (json.RawMessage, error) {
	p, err := decodeNumbers(patch)
	if err != nil {
		return nil, err
	}
	var t any = map[string]any{}
	if len(target) > 0 {
		if t, err = decodeNumbers(target); err != nil {
			return nil, err
		}
	}
	out, err := json.Marshal(mergeValue(t, p))
	if err != nil {
		return nil, fmt.Errorf("merge patch: %w", err)
	}
	return out, nil
}

func mergeValue(target, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	tm, ok := target.(map[string]any)
	if !ok {
		tm = map[string]any{}
	}
	for k, v := range pm {
		if v == nil {
			delete(tm, k)
			continue
		}
		tm[k] = mergeValue(tm[k], v)
	}
	return tm
}

// decodeNumbers decodes JSON keeping numbers exactly as written.
func decodeNumbers(raw json.RawMessage) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("merge patch: %w", err)
	}
	return v, nil
}

// agentRoutes serves /api/v1/agents.
type agentRoutes struct {
	agents            persistence.Agents
	writer            AgentWriter
	types             func() []agents.Info
	validateSignature func(agentType, signature string) error
	validateConfig    func(agentType string, config json.RawMessage) error
	// checkProgram, optional, reports whether compiled program state fits an
	// agent and returns its content hash; without it variants carry none.
	checkProgram func(spec agents.Spec, state json.RawMessage) (string, error)
	// programs, optional, deploys, promotes and rolls back compiled programs
	// (the agent grains); without it /agents/{id}/programs is not served.
	programs ProgramWriter
	audit    persistence.AuditLog
	models   ModelCatalog
	// stats, optional, reads what GET /api/v1/agents/{id}/stats computes.
	stats persistence.Stats
}

// record appends an audit entry for a change made to agent ag by p.
func (a agentRoutes) record(c *fiber.Ctx, p auth.Principal, action string, ag persistence.Agent) error {
	return recordAudit(c, a.audit, p.UserID, action, "agent", ag.ID,
		map[string]any{"name": ag.Name, "type": ag.Type, "owner_id": ag.OwnerID, "version": ag.Version})
}

// check applies the registry's rules: a known type, a signature that
// parses, a config its type accepts. Messages from the validators are shown
// to the client, as they describe the client's own input.
//
// The model must be one the node serves and p may use: with only that wrong,
// the answer is 422 with the field "model".
func (a agentRoutes) check(p auth.Principal, r createAgentRequest) error {
	known := false
	for _, t := range a.types() {
		known = known || t.Name == r.Type
	}
	var f []FieldError
	if !known {
		f = append(f, FieldError{Field: "type", Message: "is not a registered agent type; see GET /api/v1/agents/types"})
	}
	if r.Signature != "" {
		if err := a.validateSignature(r.Type, r.Signature); err != nil {
			f = append(f, FieldError{Field: "signature", Message: err.Error()})
		}
	}
	if known && a.validateConfig != nil {
		if err := a.validateConfig(r.Type, r.Config); err != nil {
			f = append(f, FieldError{Field: "config", Message: err.Error()})
		}
	}
	if len(f) == 0 {
		spec := agents.Spec{ID: "new", Name: r.Name, Type: r.Type, Instructions: r.Instructions, Signature: r.Signature, Config: r.Config}
		for i, v := range r.Variants {
			if len(v.Program) == 0 || isJSONNull(v.Program) || v.Canary != nil {
				continue
			}
			if a.checkProgram == nil {
				f = append(f, FieldError{Field: fmt.Sprintf("variants[%d].program", i), Message: "this node cannot run compiled programs"})
				continue
			}
			if _, err := a.checkProgram(spec, v.Program); err != nil {
				f = append(f, FieldError{Field: fmt.Sprintf("variants[%d].program", i), Message: err.Error()})
			}
		}
	}
	if len(f) > 0 {
		return Validation(f...)
	}
	if fe := checkModel(a.models, p, r.Model); fe != nil {
		f = append(f, *fe)
	}
	for i, v := range r.Variants {
		if v.Model == "" {
			continue
		}
		if fe := checkModel(a.models, p, v.Model); fe != nil {
			fe.Field = fmt.Sprintf("variants[%d].model", i)
			f = append(f, *fe)
		}
	}
	if len(f) > 0 {
		e := NewError(http.StatusUnprocessableEntity, "the agent's model cannot be used; see errors")
		e.Fields = f
		return e
	}
	return nil
}

// programsStillFit refuses a change of ag to fields after which its compiled
// program or its canary's would no longer fit (another type or signature).
func (a agentRoutes) programsStillFit(ag persistence.Agent, fields createAgentRequest) error {
	if a.checkProgram == nil {
		return nil
	}
	spec := agents.Spec{ID: ag.ID, Name: fields.Name, Type: fields.Type, Instructions: fields.Instructions, Signature: fields.Signature, Config: fields.Config}
	type state struct {
		what string
		raw  json.RawMessage
	}
	states := []state{{"program", ag.Program}}
	for _, v := range ag.Variants {
		if v.Canary != nil {
			states = append(states, state{"canary", v.Program})
		}
	}
	var f []FieldError
	for _, st := range states {
		if len(st.raw) == 0 {
			continue
		}
		if _, err := a.checkProgram(spec, st.raw); err != nil {
			f = append(f, FieldError{Field: "type", Message: fmt.Sprintf("the agent's %s (compiled program state) would not fit: %v", st.what, err)})
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
	if err := a.check(p, req); err != nil {
		return err
	}
	ag, err := a.writer.Create(c.UserContext(), persistence.Agent{OwnerID: p.UserID, Name: strings.TrimSpace(req.Name), Type: req.Type,
		Instructions: req.Instructions, Signature: req.Signature, Model: req.Model, Config: req.Config,
		Variants: storedVariants(req.Variants)})
	if err != nil {
		return err
	}
	if err := a.record(c, p, auditAgentCreate, ag); err != nil {
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
	return a.replace(c, p, ag, req.fields(ag), req.Version)
}

// patch serves PATCH /api/v1/agents/{id}.
func (a agentRoutes) patch(c *fiber.Ctx) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	req, err := Decode[patchAgentRequest](c)
	if err != nil {
		return err
	}
	ag, err := a.writable(c, p)
	if err != nil {
		return err
	}
	fields, err := req.apply(ag)
	if err != nil {
		return err
	}
	if f := fields.Validate(); len(f) > 0 {
		return Validation(f...)
	}
	return a.replace(c, p, ag, fields, req.Version)
}

// replace stores fields as the agent's, if it is still at version, on
// behalf of p.
func (a agentRoutes) replace(c *fiber.Ctx, p auth.Principal, ag persistence.Agent, fields createAgentRequest, version int64) error {
	if err := a.check(p, fields); err != nil {
		return err
	}
	if err := a.programsStillFit(ag, fields); err != nil {
		return err
	}
	ag.Name, ag.Type, ag.Instructions, ag.Signature, ag.Model, ag.Config, ag.Version =
		strings.TrimSpace(fields.Name), fields.Type, fields.Instructions, fields.Signature, fields.Model, fields.Config, version
	ag.Variants = keepCanary(storedVariants(fields.Variants), ag)
	updated, err := a.writer.Update(c.UserContext(), ag)
	switch {
	case errors.Is(err, persistence.ErrConflict):
		return NewError(http.StatusConflict, "the agent changed since you read it; read it again and retry with its version")
	case errors.Is(err, persistence.ErrNotFound):
		return errNoAgent()
	case err != nil:
		return err
	}
	if err := a.record(c, p, auditAgentUpdate, updated); err != nil {
		return err
	}
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
	if err := a.writer.Delete(c.UserContext(), ag.ID); errors.Is(err, persistence.ErrNotFound) {
		return errNoAgent()
	} else if err != nil {
		return err
	}
	if err := a.record(c, p, auditAgentDelete, ag); err != nil {
		return err
	}
	return c.SendStatus(http.StatusNoContent)
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
		Request: createAgentRequest{}, Response: agentView{}, Status: http.StatusCreated, Errors: []int{http.StatusForbidden, http.StatusUnprocessableEntity}},
		authed, rl.user("agents.create"), write, a.create)
	s.Route(fiber.MethodGet, "/api/v1/agents/types", Op{Summary: "The registered agent types with their signatures and config schemas", Tag: "Agents", Auth: true,
		Response: agentTypesView{}, Errors: []int{http.StatusForbidden}},
		authed, rl.user("agents.types"), read, a.listTypes)
	s.Route(fiber.MethodGet, "/api/v1/agents/:id", Op{Summary: "One agent", Tag: "Agents", Auth: true,
		Response: agentView{}, Errors: []int{http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound}},
		authed, rl.user("agents.get"), read, a.get)
	if a.stats != nil {
		s.Route(fiber.MethodGet, "/api/v1/agents/:id/stats", Op{Summary: "An agent's figures per A/B variant: turns, error rate, latency, tokens, cost and feedback with a 95% interval (its owner, moderators and admins)", Tag: "Agents", Auth: true,
			Query:    []Param{{Name: "days", Type: "integer", Description: "the window, 1 to 90 days back from now (default 7)"}},
			Response: agentStatsView{}, Errors: []int{http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound}},
			authed, rl.user("agents.stats"), read, a.getStats)
	}
	s.Route(fiber.MethodPut, "/api/v1/agents/:id", Op{Summary: "Replace an agent: every field is required (its owner or an admin; version compare-and-swap)", Tag: "Agents", Auth: true,
		Request: updateAgentRequest{}, Response: agentView{}, Errors: []int{http.StatusForbidden, http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity}},
		authed, rl.user("agents.update"), write, a.update)
	s.Route(fiber.MethodPatch, "/api/v1/agents/:id", Op{Summary: "Change some fields of an agent (JSON merge patch; its owner or an admin; version compare-and-swap)", Tag: "Agents", Auth: true,
		Request: patchAgentRequest{}, Response: agentView{}, Errors: []int{http.StatusForbidden, http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity}},
		authed, rl.user("agents.update"), write, a.patch)
	s.Route(fiber.MethodDelete, "/api/v1/agents/:id", Op{Summary: "Delete an agent (its owner or an admin)", Tag: "Agents", Auth: true,
		Status: http.StatusNoContent, Errors: []int{http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound}},
		authed, rl.user("agents.delete"), write, a.remove)
}
