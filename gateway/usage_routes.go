package gateway

import (
	"errors"
	"net/http"

	"github.com/gofiber/fiber/v2"

	"github.com/kowai/kowai/budgets"
	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/persistence"
)

// Audit actions of budget overrides.
const (
	auditBudgetSet    = "user.budget.set"
	auditBudgetDelete = "user.budget.delete"
)

// budgetView is a user's limits as GET/PUT /api/v1/admin/users/{id}/budget
// answer them.
type budgetView struct {
	UserID string         `json:"user_id"`
	Limits budgets.Limits `json:"limits" doc:"daily and monthly token and dollar limits; 0 is no limit"`
	// Override is false when the limits are those of the user's roles.
	Override bool `json:"override" doc:"true when an admin set these limits, false when they are the user's roles' (KOWAI_BUDGETS)"`
}

// budgetRequest is the body of PUT /api/v1/admin/users/{id}/budget.
type budgetRequest struct {
	DayTokens   int64   `json:"day_tokens" doc:"tokens (prompt + completion) per UTC day; 0 is no limit"`
	DayUSD      float64 `json:"day_usd" doc:"US dollars per UTC day; 0 is no limit"`
	MonthTokens int64   `json:"month_tokens" doc:"tokens per UTC month; 0 is no limit"`
	MonthUSD    float64 `json:"month_usd" doc:"US dollars per UTC month; 0 is no limit"`
}

// Validate implements Validator.
func (r budgetRequest) Validate() []FieldError {
	var f []FieldError
	for _, m := range []struct {
		name string
		neg  bool
	}{{"day_tokens", r.DayTokens < 0}, {"day_usd", r.DayUSD < 0}, {"month_tokens", r.MonthTokens < 0}, {"month_usd", r.MonthUSD < 0}} {
		if m.neg {
			f = append(f, FieldError{Field: m.name, Message: "must not be negative (0 is no limit)"})
		}
	}
	return f
}

// usageRoutes serves the caller's usage and the admins' budget overrides.
type usageRoutes struct {
	budgets *budgets.Enforcer
	users   persistence.Users
	audit   persistence.AuditLog
}

func (u usageRoutes) mine(c *fiber.Ctx) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	r, err := u.budgets.Report(c.UserContext(), p.UserID)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(r)
}

// target is the user named by the path, or 404.
func (u usageRoutes) target(c *fiber.Ctx) (string, error) {
	id, err := pathID(c, "id")
	if err != nil {
		return "", err
	}
	if _, err := u.users.Get(c.UserContext(), id); errors.Is(err, persistence.ErrNotFound) {
		return "", NewError(http.StatusNotFound, "no such user")
	} else if err != nil {
		return "", err
	}
	return id, nil
}

func (u usageRoutes) view(c *fiber.Ctx, id string) error {
	l, override, err := u.budgets.Limits(c.UserContext(), id)
	if err != nil {
		return err
	}
	return c.JSON(budgetView{UserID: id, Limits: l, Override: override})
}

func (u usageRoutes) get(c *fiber.Ctx) error {
	id, err := u.target(c)
	if err != nil {
		return err
	}
	return u.view(c, id)
}

func (u usageRoutes) set(c *fiber.Ctx) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	req, err := Decode[budgetRequest](c)
	if err != nil {
		return err
	}
	l := budgets.Limits(req)
	id, err := u.target(c)
	if err != nil {
		return err
	}
	if err := u.budgets.SetOverride(c.UserContext(), id, l); err != nil {
		return err
	}
	if err := recordAudit(c, u.audit, p.UserID, auditBudgetSet, "user", id, map[string]any{"day_tokens": l.DayTokens,
		"day_usd": l.DayUSD, "month_tokens": l.MonthTokens, "month_usd": l.MonthUSD}); err != nil {
		return err
	}
	return u.view(c, id)
}

func (u usageRoutes) remove(c *fiber.Ctx) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	id, err := u.target(c)
	if err != nil {
		return err
	}
	if err := u.budgets.DeleteOverride(c.UserContext(), id); err != nil {
		return err
	}
	if err := recordAudit(c, u.audit, p.UserID, auditBudgetDelete, "user", id, map[string]any{}); err != nil {
		return err
	}
	return u.view(c, id)
}

// mountUsage registers GET /api/v1/users/me/usage and the admin budget routes.
func (s *Server) mountUsage(u usageRoutes, authed fiber.Handler, rl rateLimits) {
	s.Route(fiber.MethodGet, "/api/v1/users/me/usage", Op{Summary: "Your model usage today and this month (UTC): tokens and cost, by agent and model, with your limits", Tag: "Auth", Auth: true,
		Response: budgets.Report{}}, authed, rl.user("users.me.usage"), auth.RequirePermission(auth.PermChatRead), u.mine)
	admin := auth.RequirePermission(auth.PermAdminUsers)
	errs := []int{http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound}
	s.Route(fiber.MethodGet, "/api/v1/admin/users/:id/budget", Op{Summary: "A user's spending limits, and whether an admin set them (admins)", Tag: "Admin", Auth: true,
		Response: budgetView{}, Errors: errs}, authed, rl.user("admin.users.budget"), admin, u.get)
	s.Route(fiber.MethodPut, "/api/v1/admin/users/:id/budget", Op{Summary: "Give a user limits of their own instead of their roles' (admins; 0 is no limit)", Tag: "Admin", Auth: true,
		Request: budgetRequest{}, Response: budgetView{}, Errors: errs}, authed, rl.user("admin.users.budget"), admin, u.set)
	s.Route(fiber.MethodDelete, "/api/v1/admin/users/:id/budget", Op{Summary: "Return a user to their roles' limits (admins)", Tag: "Admin", Auth: true,
		Response: budgetView{}, Errors: errs}, authed, rl.user("admin.users.budget"), admin, u.remove)
}
