package gateway

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/kowai/kowai/gateway/auth"
)

// The workflow routes exist, are authenticated, validated and documented,
// and answer 501 until the workflow engine is built; the types below are the
// bodies they will serve (API.md).

// workflowInfo is one registered workflow.
type workflowInfo struct {
	Name       string          `json:"name"`
	Parameters json.RawMessage `json:"parameters" doc:"JSON schema of the run's parameters"`
}

// workflowRunSummary is one of the caller's recent runs.
type workflowRunSummary struct {
	RunID     string    `json:"run_id"`
	Name      string    `json:"name"`
	Status    string    `json:"status" doc:"pending, running, retrying, completed, failed or cancelled"`
	CreatedAt time.Time `json:"created_at"`
}

// workflowsView is the body of GET /api/v1/workflows.
type workflowsView struct {
	Workflows []workflowInfo       `json:"workflows"`
	Runs      []workflowRunSummary `json:"runs"`
}

// triggerRequest is the body of POST /api/v1/workflows/trigger.
type triggerRequest struct {
	Name       string          `json:"name"`
	Parameters json.RawMessage `json:"parameters,omitempty" doc:"a JSON object following the workflow's parameter schema"`
}

// Validate implements Validator.
func (r triggerRequest) Validate() []FieldError { return required("name", r.Name, 200) }

// runAccepted is the body of a 202 from trigger and cancel.
type runAccepted struct {
	RunID  string `json:"run_id"`
	Status string `json:"status"`
}

// taskStatus is one task of a run.
type taskStatus struct {
	Name       string     `json:"name"`
	Status     string     `json:"status"`
	Attempts   int        `json:"attempts"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	Error      string     `json:"error,omitempty"`
}

// runStatus is the body of GET /api/v1/workflows/{run_id}/status.
type runStatus struct {
	RunID  string          `json:"run_id"`
	Name   string          `json:"name"`
	Status string          `json:"status"`
	Tasks  []taskStatus    `json:"tasks"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
}

// workflowsUnavailable answers every workflow route for now.
func workflowsUnavailable(c *fiber.Ctx) error {
	return NewError(http.StatusNotImplemented, "workflows are not available yet: this build has no workflow engine")
}

// mountWorkflows registers /api/v1/workflows.
func (s *Server) mountWorkflows(authed fiber.Handler, rl rateLimits) {
	run := auth.RequirePermission(auth.PermWorkflowsRun)
	withRunID := func(c *fiber.Ctx) error {
		if _, err := pathID(c, "run_id"); err != nil {
			return err
		}
		return workflowsUnavailable(c)
	}
	s.Route(fiber.MethodGet, "/api/v1/workflows", Op{Summary: "Registered workflows and your recent runs (501 until the workflow engine exists)", Tag: "Workflows", Auth: true,
		Response: workflowsView{}, Errors: []int{http.StatusForbidden, http.StatusNotImplemented}},
		authed, rl.user("workflows.list"), run, workflowsUnavailable)
	s.Route(fiber.MethodPost, "/api/v1/workflows/trigger", Op{Summary: "Start a workflow run (501 until the workflow engine exists)", Tag: "Workflows", Auth: true,
		Request: triggerRequest{}, Response: runAccepted{}, Status: http.StatusAccepted, Errors: []int{http.StatusForbidden, http.StatusNotImplemented}},
		authed, rl.user("workflows.trigger"), run, func(c *fiber.Ctx) error {
			if _, err := Decode[triggerRequest](c); err != nil {
				return err
			}
			return workflowsUnavailable(c)
		})
	s.Route(fiber.MethodGet, "/api/v1/workflows/:run_id/status", Op{Summary: "A run's status and tasks (501 until the workflow engine exists)", Tag: "Workflows", Auth: true,
		Response: runStatus{}, Errors: []int{http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound, http.StatusNotImplemented}},
		authed, rl.user("workflows.status"), run, withRunID)
	s.Route(fiber.MethodPost, "/api/v1/workflows/:run_id/cancel", Op{Summary: "Cancel a run (501 until the workflow engine exists)", Tag: "Workflows", Auth: true,
		Response: runAccepted{}, Status: http.StatusAccepted, Errors: []int{http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound, http.StatusNotImplemented}},
		authed, rl.user("workflows.cancel"), run, withRunID)
}
