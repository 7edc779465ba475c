package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/workflows"
)

// scheduleRequest is the body of POST /api/v1/workflows/schedules and of PUT
// /api/v1/workflows/schedules/{id} (which replaces every field).
type scheduleRequest struct {
	Workflow   string          `json:"workflow" doc:"a registered workflow's name"`
	Parameters json.RawMessage `json:"parameters,omitempty" doc:"a JSON object following the workflow's parameter schema"`
	Spec       string          `json:"spec" doc:"five cron fields (minute hour day-of-month month day-of-week; *, lists, ranges, steps, JAN-DEC, SUN-SAT), a macro (@hourly, @daily, @weekly, @monthly, @yearly) or @every DURATION (at least 1s)"`
	Timezone   string          `json:"timezone,omitempty" doc:"IANA time zone the cron fields are read in; default UTC"`
	CatchUp    string          `json:"catch_up,omitempty" doc:"what happens to ticks missed by more than a minute (no node running): skip (default) or run_once"`
	Enabled    *bool           `json:"enabled,omitempty" doc:"default true; a disabled schedule keeps its settings and fires nothing"`
	WebhookURL string          `json:"webhook_url,omitempty" doc:"every run the schedule starts notifies this URL of its final state, as webhook_url on trigger does"`
}

// MaxSchedulesPerUser bounds the schedules one user keeps; the count is read, not
// reserved, so concurrent creations may pass it by a few.
const MaxSchedulesPerUser = 100

// maxSpecBytes bounds a schedule spec.
const maxSpecBytes = 200

// Validate implements Validator: the shape only; the workflow, its parameters, the
// spec and the time zone are checked against the registry in validate.
func (r scheduleRequest) Validate() []FieldError {
	fields := required("workflow", r.Workflow, 200)
	fields = append(fields, required("spec", r.Spec, maxSpecBytes)...)
	if len(r.Timezone) > 64 {
		fields = append(fields, FieldError{Field: "timezone", Message: "must be at most 64 bytes"})
	}
	switch r.CatchUp {
	case "", persistence.CatchUpSkip, persistence.CatchUpRunOnce:
	default:
		fields = append(fields, FieldError{Field: "catch_up", Message: "must be skip or run_once"})
	}
	return fields
}

// scheduleView is one schedule in responses.
type scheduleView struct {
	ID          string          `json:"id"`
	OwnerID     string          `json:"owner_id"`
	Workflow    string          `json:"workflow"`
	Parameters  json.RawMessage `json:"parameters"`
	Spec        string          `json:"spec"`
	Timezone    string          `json:"timezone"`
	CatchUp     string          `json:"catch_up" doc:"skip or run_once"`
	Enabled     bool            `json:"enabled"`
	NextFireAt  *time.Time      `json:"next_fire_at" doc:"the next tick; null when disabled"`
	LastFiredAt *time.Time      `json:"last_fired_at" doc:"the tick of the last run started"`
	LastRunID   string          `json:"last_run_id,omitempty"`
	LastError   string          `json:"last_error,omitempty" doc:"why the last tick started no run"`
	WebhookURL  string          `json:"webhook_url,omitempty"`
	CreatedAt   time.Time       `json:"created_at"`
	UpdatedAt   time.Time       `json:"updated_at"`
}

// schedulesView is the body of GET /api/v1/workflows/schedules.
type schedulesView struct {
	Schedules  []scheduleView `json:"schedules"`
	NextCursor string         `json:"next_cursor,omitempty"`
}

func viewOfSchedule(s persistence.WorkflowSchedule) scheduleView {
	return scheduleView{ID: s.ID, OwnerID: s.OwnerID, Workflow: s.Workflow, Parameters: s.Parameters, Spec: s.Spec,
		Timezone: s.Timezone, CatchUp: s.CatchUp, Enabled: s.Enabled, NextFireAt: timePtr(s.NextFireAt),
		LastFiredAt: timePtr(s.LastFiredAt), LastRunID: s.LastRunID, LastError: s.LastError, WebhookURL: s.WebhookURL,
		CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt}
}

// mountSchedules registers /api/v1/workflows/schedules; h.wf.Schedules nil answers 503.
func (s *Server) mountSchedules(h workflowRoutes, authed fiber.Handler, rl rateLimits) {
	run := auth.RequirePermission(auth.PermWorkflowsRun)
	available := func(c *fiber.Ctx) error {
		if h.wf == nil || h.wf.Schedules == nil {
			return &Error{Status: http.StatusServiceUnavailable, Title: http.StatusText(http.StatusServiceUnavailable),
				Detail: "this node keeps no workflow schedules"}
		}
		return c.Next()
	}
	validID := func(c *fiber.Ctx) error {
		if _, err := pathID(c, "id"); err != nil {
			return err
		}
		return c.Next()
	}
	errs := func(codes ...int) []int {
		return append([]int{http.StatusBadRequest, http.StatusForbidden, http.StatusServiceUnavailable}, codes...)
	}
	s.Route(fiber.MethodGet, "/api/v1/workflows/schedules", Op{Summary: "A page of your workflow schedules (an admin's: everyone's)", Tag: "Workflows", Auth: true,
		Query: pageQuery(), Response: schedulesView{}, Errors: errs()},
		authed, rl.user("workflows.schedules.list"), run, available, h.listSchedules)
	s.Route(fiber.MethodPost, "/api/v1/workflows/schedules", Op{Summary: "Create a cron schedule that triggers a workflow for you", Tag: "Workflows", Auth: true,
		Request: scheduleRequest{}, Response: scheduleView{}, Status: http.StatusCreated, Errors: errs(http.StatusConflict)},
		authed, rl.user("workflows.schedules.create"), run, available, h.createSchedule)
	s.Route(fiber.MethodGet, "/api/v1/workflows/schedules/:id", Op{Summary: "One of your schedules", Tag: "Workflows", Auth: true,
		Response: scheduleView{}, Errors: errs(http.StatusNotFound)},
		authed, rl.user("workflows.schedules.get"), run, validID, available, h.getSchedule)
	s.Route(fiber.MethodPut, "/api/v1/workflows/schedules/:id", Op{Summary: "Replace a schedule's settings; its next tick is computed from the new spec", Tag: "Workflows", Auth: true,
		Request: scheduleRequest{}, Response: scheduleView{}, Errors: errs(http.StatusNotFound, http.StatusConflict)},
		authed, rl.user("workflows.schedules.update"), run, validID, available, h.updateSchedule)
	s.Route(fiber.MethodDelete, "/api/v1/workflows/schedules/:id", Op{Summary: "Delete a schedule; runs it started are kept", Tag: "Workflows", Auth: true,
		Status: http.StatusNoContent, Errors: errs(http.StatusNotFound)},
		authed, rl.user("workflows.schedules.delete"), run, validID, available, h.deleteSchedule)
}

// scheduleFrom validates req against the registry and returns the schedule's
// settings with its next tick after now (zero when disabled).
func (h workflowRoutes) scheduleFrom(ctx context.Context, req scheduleRequest, now time.Time) (persistence.WorkflowSchedule, error) {
	var fields []FieldError
	if fe := h.wf.checkWebhookURL(ctx, req.WebhookURL); fe != nil {
		fields = append(fields, *fe)
	}
	def, err := h.wf.Registry.Lookup(req.Workflow)
	if err != nil {
		fields = append(fields, FieldError{Field: "workflow", Message: "is not a registered workflow (GET /api/v1/workflows lists them)"})
	}
	var params json.RawMessage
	if def != nil {
		params, err = def.ValidateParams(req.Parameters)
		var ve *workflows.ValidationError
		switch {
		case errors.As(err, &ve):
			fields = append(fields, prefixed("parameters", ve.Fields)...)
		case err != nil:
			return persistence.WorkflowSchedule{}, err
		}
	}
	spec, err := workflows.ParseScheduleIn(req.Spec, req.Timezone)
	switch {
	case errors.Is(err, workflows.ErrBadTimezone):
		fields = append(fields, FieldError{Field: "timezone", Message: "must be an IANA time zone name such as Europe/Berlin, or UTC"})
	case err != nil:
		fields = append(fields, FieldError{Field: "spec", Message: specMessage(err)})
	}
	if len(fields) > 0 {
		return persistence.WorkflowSchedule{}, Validation(fields...)
	}
	sc := persistence.WorkflowSchedule{Workflow: def.Name, Parameters: params, Spec: req.Spec, Timezone: req.Timezone,
		CatchUp: req.CatchUp, Enabled: req.Enabled == nil || *req.Enabled, WebhookURL: req.WebhookURL}
	if sc.Timezone == "" {
		sc.Timezone = "UTC"
	}
	if sc.CatchUp == "" {
		sc.CatchUp = persistence.CatchUpSkip
	}
	if sc.Enabled {
		sc.NextFireAt = spec.Next(now)
		sc.DueAt = sc.NextFireAt
	}
	return sc, nil
}

// specMessage is the parser's explanation without the package prefix.
func specMessage(err error) string {
	msg := err.Error()
	prefix := workflows.ErrBadSpec.Error() + ": "
	if len(msg) > len(prefix) && msg[:len(prefix)] == prefix {
		return "is not a valid schedule: " + msg[len(prefix):]
	}
	return "is not a valid schedule"
}

func (h workflowRoutes) listSchedules(c *fiber.Ctx) error {
	req, err := pageRequest(c)
	if err != nil {
		return err
	}
	p, _ := auth.PrincipalFrom(c) // RequireAuth ran first
	owner := p.UserID
	if p.HasRole(auth.RoleAdmin) {
		owner = ""
	}
	page, err := h.wf.Schedules.ListSchedules(c.UserContext(), owner, req)
	if err != nil {
		return listProblem(err)
	}
	view := schedulesView{Schedules: make([]scheduleView, 0, len(page.Items)), NextCursor: page.NextCursor}
	for _, s := range page.Items {
		view.Schedules = append(view.Schedules, viewOfSchedule(s))
	}
	return c.JSON(view)
}

func (h workflowRoutes) createSchedule(c *fiber.Ctx) error {
	req, err := Decode[scheduleRequest](c)
	if err != nil {
		return err
	}
	sc, err := h.scheduleFrom(c.UserContext(), req, time.Now())
	if err != nil {
		return err
	}
	n, err := h.wf.Schedules.CountSchedules(c.UserContext(), principalID(c))
	if err != nil {
		return err
	}
	if n >= MaxSchedulesPerUser {
		return NewError(http.StatusConflict, fmt.Sprintf("you have %d schedules, the most one user may keep; delete one first", n))
	}
	id, err := uuid.NewV7()
	if err != nil {
		return fmt.Errorf("new schedule ID: %w", err)
	}
	sc.ID, sc.OwnerID = id.String(), principalID(c)
	created, err := h.wf.Schedules.CreateSchedule(c.UserContext(), sc)
	if err != nil {
		return err
	}
	return c.Status(http.StatusCreated).JSON(viewOfSchedule(created))
}

// ownSchedule loads the schedule in the path if the caller owns it or is an admin;
// anyone else gets the same 404 as for a schedule that does not exist.
func (h workflowRoutes) ownSchedule(c *fiber.Ctx) (persistence.WorkflowSchedule, error) {
	id, err := pathID(c, "id")
	if err != nil {
		return persistence.WorkflowSchedule{}, err
	}
	sc, err := h.wf.Schedules.GetSchedule(c.UserContext(), id)
	p, _ := auth.PrincipalFrom(c) // RequireAuth ran first
	if errors.Is(err, persistence.ErrNotFound) || err == nil && sc.OwnerID != p.UserID && !p.HasRole(auth.RoleAdmin) {
		return persistence.WorkflowSchedule{}, NewError(http.StatusNotFound, "no such workflow schedule")
	}
	return sc, err
}

func (h workflowRoutes) getSchedule(c *fiber.Ctx) error {
	sc, err := h.ownSchedule(c)
	if err != nil {
		return err
	}
	return c.JSON(viewOfSchedule(sc))
}

// scheduleSaveAttempts bounds PUT's read-modify-write against concurrent ticks,
// which bump the version while they fire.
const scheduleSaveAttempts = 3

func (h workflowRoutes) updateSchedule(c *fiber.Ctx) error {
	req, err := Decode[scheduleRequest](c)
	if err != nil {
		return err
	}
	for range scheduleSaveAttempts {
		cur, err := h.ownSchedule(c)
		if err != nil {
			return err
		}
		next, err := h.scheduleFrom(c.UserContext(), req, time.Now())
		if err != nil {
			return err
		}
		next.ID, next.OwnerID, next.Version, next.CreatedAt = cur.ID, cur.OwnerID, cur.Version+1, cur.CreatedAt
		next.LastFiredAt, next.LastRunID, next.LastError = cur.LastFiredAt, cur.LastRunID, cur.LastError
		err = h.wf.Schedules.SaveSchedule(c.UserContext(), next, cur.Version)
		switch {
		case err == nil:
			saved, err := h.wf.Schedules.GetSchedule(c.UserContext(), cur.ID)
			if err != nil {
				return err
			}
			return c.JSON(viewOfSchedule(saved))
		case errors.Is(err, persistence.ErrNotFound):
			return NewError(http.StatusNotFound, "no such workflow schedule")
		case !errors.Is(err, persistence.ErrConflict):
			return err
		}
	}
	return NewError(http.StatusConflict, "the schedule changed while it was being saved; try again")
}

func (h workflowRoutes) deleteSchedule(c *fiber.Ctx) error {
	sc, err := h.ownSchedule(c)
	if err != nil {
		return err
	}
	err = h.wf.Schedules.DeleteSchedule(c.UserContext(), sc.ID)
	if errors.Is(err, persistence.ErrNotFound) {
		return NewError(http.StatusNotFound, "no such workflow schedule")
	}
	if err != nil {
		return err
	}
	return c.SendStatus(http.StatusNoContent)
}
