package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/persistence"
)

// adminUser is a user as administrators see it.
type adminUser struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	Roles     []string  `json:"roles"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func viewUser(u persistence.User) adminUser {
	return adminUser{ID: u.ID, Email: u.Email, Name: u.Name, Roles: u.Roles, Disabled: u.Disabled,
		CreatedAt: u.CreatedAt.UTC(), UpdatedAt: u.UpdatedAt.UTC()}
}

// adminUsersPage is the body of GET /api/v1/admin/users.
type adminUsersPage struct {
	Users      []adminUser `json:"users" doc:"oldest first"`
	NextCursor string      `json:"next_cursor" doc:"empty on the last page"`
}

// auditEntry is an entry of the audit log as administrators see it.
type auditEntry struct {
	ID         string          `json:"id"`
	ActorID    string          `json:"actor_id" doc:"the acting user; empty for the system"`
	Action     string          `json:"action" doc:"e.g. auth.login, user.roles.set, agent.create (see the README)"`
	TargetType string          `json:"target_type"`
	TargetID   string          `json:"target_id"`
	Detail     json.RawMessage `json:"detail,omitempty" doc:"a JSON object, when the action records one"`
	IP         string          `json:"ip" doc:"the client address"`
	CreatedAt  time.Time       `json:"created_at"`
}

// auditPage is the body of GET /api/v1/admin/audit.
type auditPage struct {
	Entries    []auditEntry `json:"entries" doc:"newest first"`
	NextCursor string       `json:"next_cursor" doc:"empty on the last page"`
}

// nodeFigures is the body of GET /api/v1/admin/figures: a few counters of
// this node's metrics, for a console that shows them live.
type nodeFigures struct {
	Turns        float64   `json:"turns" doc:"chat turns this node's sessions answered since it started (kowai_chat_turns_total)"`
	TurnErrors   float64   `json:"turn_errors" doc:"of those, the turns that ended in an error: every outcome but ok and replayed"`
	ModelErrors  float64   `json:"model_errors" doc:"failed model calls on this node since it started (kowai_llm_errors_total)"`
	ModelCostUSD float64   `json:"model_cost_usd" doc:"the cost of this node's model calls since it started, in USD (kowai_llm_cost_usd_total)"`
	At           time.Time `json:"at" doc:"when the counters were read; rates are differences between two reads"`
	// Today is the whole cluster's model usage since midnight, from the usage
	// ledger, where the counters above are this node's since it started.
	Today *usageToday `json:"today,omitempty" doc:"every user's model usage since 00:00 UTC, from the usage ledger: the whole cluster's, not only this node's"`
}

// usageToday is the cluster's model usage since Since.
type usageToday struct {
	Since   time.Time `json:"since" doc:"00:00 UTC of the day"`
	Tokens  int64     `json:"tokens" doc:"prompt and completion tokens"`
	CostUSD float64   `json:"cost_usd" doc:"cost in USD, at the configured prices"`
}

// readFigures sums the counters of nodeFigures from g.
func readFigures(g prometheus.Gatherer) (nodeFigures, error) {
	out := nodeFigures{At: time.Now().UTC()}
	families, err := g.Gather()
	if err != nil {
		return out, fmt.Errorf("gateway: read the node's metrics: %w", err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			v := m.GetCounter().GetValue()
			switch f.GetName() {
			case "kowai_chat_turns_total":
				out.Turns += v
				for _, l := range m.GetLabel() {
					if l.GetName() == "outcome" && l.GetValue() != "ok" && l.GetValue() != "replayed" {
						out.TurnErrors += v
					}
				}
			case "kowai_llm_errors_total":
				out.ModelErrors += v
			case "kowai_llm_cost_usd_total":
				out.ModelCostUSD += v
			}
		}
	}
	return out, nil
}

// rolesRequest is the body of PUT /api/v1/admin/users/{id}/roles.
type rolesRequest struct {
	Roles []string `json:"roles" doc:"the user's new roles: user, premium, moderator, admin"`
}

// Validate implements Validator.
func (r rolesRequest) Validate() []FieldError {
	if len(r.Roles) == 0 || len(r.Roles) > len(auth.Roles()) {
		return []FieldError{{Field: "roles", Message: "must list 1 to 4 roles"}}
	}
	for _, name := range r.Roles {
		if _, err := auth.ParseRole(name); err != nil {
			return []FieldError{fieldOf(err)}
		}
	}
	return nil
}

// canonical returns the roles deduplicated, least privileged first.
func (r rolesRequest) canonical() []string {
	var out []string
	for _, role := range auth.Roles() {
		if slices.Contains(r.Roles, string(role)) {
			out = append(out, string(role))
		}
	}
	return out
}

// adminRoutes serves /api/v1/admin.
type adminRoutes struct {
	users   persistence.Users
	audit   persistence.AuditLog
	auth    AuthService
	cluster func() any
	// metrics is the node's metrics registry, when it can be read.
	metrics prometheus.Gatherer
	// usage, optional, sums the cluster's usage ledger.
	usage UsageTotals
}

func (a adminRoutes) list(c *fiber.Ctx) error {
	req, err := pageRequest(c)
	if err != nil {
		return err
	}
	page, err := a.users.List(c.UserContext(), req)
	if err != nil {
		return listProblem(err)
	}
	out := adminUsersPage{Users: make([]adminUser, len(page.Items)), NextCursor: page.NextCursor}
	for i, u := range page.Items {
		out.Users[i] = viewUser(u)
	}
	return c.JSON(out)
}

// target loads the user named by the path, or 404.
func (a adminRoutes) target(c *fiber.Ctx) (persistence.User, error) {
	id, err := pathID(c, "id")
	if err != nil {
		return persistence.User{}, err
	}
	u, err := a.users.Get(c.UserContext(), id)
	if errors.Is(err, persistence.ErrNotFound) {
		return u, NewError(http.StatusNotFound, "no such user")
	}
	return u, err
}

// keepsAnAdmin refuses a change that would leave no enabled admin: the
// server would then have nobody able to administer it. Two admins demoting
// each other at the same moment can still race past it.
func (a adminRoutes) keepsAnAdmin(c *fiber.Ctx, u persistence.User) error {
	if u.Disabled || !slices.Contains(u.Roles, string(auth.RoleAdmin)) {
		return nil
	}
	n, err := a.users.CountWithRole(c.UserContext(), string(auth.RoleAdmin))
	if err != nil {
		return err
	}
	if n <= 1 {
		return NewError(http.StatusConflict, "this is the last admin; make another user admin first")
	}
	return nil
}

// record appends an audit entry for a change made to a user.
func (a adminRoutes) record(c *fiber.Ctx, p auth.Principal, action, targetID string, detail map[string]any) error {
	return recordAudit(c, a.audit, p.UserID, action, "user", targetID, detail)
}

// setRoles replaces a user's roles, then revokes the user's sessions so no
// token with the old roles outlives the change.
func (a adminRoutes) setRoles(c *fiber.Ctx) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	req, err := Decode[rolesRequest](c)
	if err != nil {
		return err
	}
	u, err := a.target(c)
	if err != nil {
		return err
	}
	roles := req.canonical()
	if !slices.Contains(roles, string(auth.RoleAdmin)) {
		if err := a.keepsAnAdmin(c, u); err != nil {
			return err
		}
	}
	ctx := c.UserContext()
	if err := a.users.UpdateRoles(ctx, u.ID, roles); err != nil {
		return err
	}
	if err := a.auth.RevokeUserSessions(ctx, u.ID); err != nil {
		return err
	}
	if err := a.record(c, p, auditRolesSet, u.ID, map[string]any{"from": u.Roles, "to": roles}); err != nil {
		return err
	}
	u.Roles = roles
	return c.JSON(viewUser(u))
}

// remove erases a user and their data. Sessions are revoked first: with Redis, revocation
// lives outside the database and deleting the rows alone would leave the
// user's access tokens valid until they expire.
func (a adminRoutes) remove(c *fiber.Ctx) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	u, err := a.target(c)
	if err != nil {
		return err
	}
	if u.ID == p.UserID {
		return NewError(http.StatusConflict, "you cannot delete your own account")
	}
	if err := a.keepsAnAdmin(c, u); err != nil {
		return err
	}
	ctx := c.UserContext()
	if err := a.auth.RevokeUserSessions(ctx, u.ID); err != nil {
		return err
	}
	// The same erasure as DELETE /users/me: everything of the user goes, in one
	// transaction with its audit entry, which keeps counts and roles, not the email.
	var detailErr error
	_, err = a.users.Erase(ctx, u.ID, func(e persistence.Erasure) persistence.AuditEntry {
		raw, err := json.Marshal(map[string]any{"roles": u.Roles, "conversations": e.Conversations, "messages": e.Messages,
			"feedback": e.Feedback, "agents": e.Agents, "workflow_runs": e.WorkflowRuns, "sessions": e.Sessions})
		detailErr = err
		return persistence.AuditEntry{ActorID: p.UserID, Action: auditUserDelete, TargetType: "user", TargetID: u.ID, Detail: raw, IP: ClientAddr(c)}
	})
	if errors.Is(err, persistence.ErrNotFound) {
		return NewError(http.StatusNotFound, "no such user")
	} else if err = errors.Join(err, detailErr); err != nil {
		return err
	}
	return c.SendStatus(http.StatusNoContent)
}

// auditLog serves a page of the audit log, newest first.
func (a adminRoutes) auditLog(c *fiber.Ctx) error {
	req, err := pageRequest(c)
	if err != nil {
		return err
	}
	page, err := a.audit.List(c.UserContext(), req)
	if err != nil {
		return listProblem(err)
	}
	out := auditPage{Entries: make([]auditEntry, len(page.Items)), NextCursor: page.NextCursor}
	for i, e := range page.Items {
		out.Entries[i] = auditEntry{ID: e.ID, ActorID: e.ActorID, Action: e.Action, TargetType: e.TargetType, TargetID: e.TargetID,
			Detail: e.Detail, IP: e.IP, CreatedAt: e.CreatedAt.UTC()}
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(out)
}

// figures serves this node's live figures.
func (a adminRoutes) figures(c *fiber.Ctx) error {
	if a.metrics == nil {
		return NewError(http.StatusNotFound, "this node does not offer its figures")
	}
	f, err := readFigures(a.metrics)
	if err != nil {
		return err
	}
	if a.usage != nil {
		since := f.At.Truncate(24 * time.Hour)
		t, err := a.usage.AllTotal(c.UserContext(), since)
		if err != nil {
			return err
		}
		f.Today = &usageToday{Since: since, Tokens: t.Tokens, CostUSD: t.CostUSD}
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(f)
}

func (a adminRoutes) clusterInfo(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(a.cluster())
}

// mountAdmin registers /api/v1/admin.
func (s *Server) mountAdmin(a adminRoutes, authed fiber.Handler, rl rateLimits) {
	forbidden := []int{http.StatusForbidden}
	s.Route(fiber.MethodGet, "/api/v1/admin/users", Op{Summary: "A page of users (admins and moderators)", Tag: "Admin", Auth: true,
		Query: pageQuery(), Response: adminUsersPage{}, Errors: append(forbidden, http.StatusBadRequest)},
		authed, rl.user("admin.users.list"), auth.RequirePermission(auth.PermAdminUsersRead), a.list)
	s.Route(fiber.MethodPut, "/api/v1/admin/users/:id/roles", Op{Summary: "Replace a user's roles and revoke their sessions (admins)", Tag: "Admin", Auth: true,
		Request: rolesRequest{}, Response: adminUser{}, Errors: append(forbidden, http.StatusNotFound, http.StatusConflict)},
		authed, rl.user("admin.users.roles"), auth.RequirePermission(auth.PermAdminUsers), a.setRoles)
	s.Route(fiber.MethodDelete, "/api/v1/admin/users/:id", Op{Summary: "Delete a user with their data (admins; not yourself, not the last admin)", Tag: "Admin", Auth: true,
		Status: http.StatusNoContent, Errors: append(forbidden, http.StatusBadRequest, http.StatusNotFound, http.StatusConflict)},
		authed, rl.user("admin.users.delete"), auth.RequirePermission(auth.PermAdminUsers), a.remove)
	s.Route(fiber.MethodGet, "/api/v1/admin/audit", Op{Summary: "A page of the audit log, newest first (admins)", Tag: "Admin", Auth: true,
		Query: pageQuery(), Response: auditPage{}, Errors: append(forbidden, http.StatusBadRequest)},
		authed, rl.user("admin.audit"), auth.RequirePermission(auth.PermAdminUsers), a.auditLog)
	s.Route(fiber.MethodGet, "/api/v1/admin/cluster", Op{Summary: "Cluster members, this node and actor counts per kind (moderators and admins)", Tag: "Admin", Auth: true,
		Response: map[string]any{}, Errors: forbidden},
		authed, rl.user("admin.cluster"), auth.RequirePermission(auth.PermAdminCluster), a.clusterInfo)
	s.Route(fiber.MethodGet, "/api/v1/admin/figures", Op{Summary: "This node's chat turns, turn errors, model errors and model cost since it started, and the cluster's model usage today (moderators and admins)", Tag: "Admin", Auth: true,
		Description: "Counters of the node that answers, read from its metrics; each node counts only its own work. Rates are differences between two reads. `today` sums every user's usage ledger since 00:00 UTC: the whole cluster's.",
		Response:    nodeFigures{}, Errors: append(forbidden, http.StatusNotFound)},
		authed, rl.user("admin.figures"), auth.RequirePermission(auth.PermAdminCluster), a.figures)
}
