package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/internal/jsonschema"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/workflows"
)

// WorkflowCommands sends commands to the run grains; cluster.WorkflowClient
// implements it. Each returns the run's status after the command.
type WorkflowCommands interface {
	// Trigger creates and starts the run; webhookURL (checked, or empty) receives
	// its final state.
	Trigger(ctx context.Context, runID, workflow, ownerID string, params json.RawMessage, webhookURL string) (string, error)
	Cancel(ctx context.Context, runID string) (string, error)
	Resume(ctx context.Context, runID string, input json.RawMessage) (string, error)
	Retry(ctx context.Context, runID string) (string, error)
}

// Workflows is what the workflow routes need. Without it (API.Workflows nil)
// they answer 503.
type Workflows struct {
	// Registry lists the workflows and validates triggers.
	Registry *workflows.Registry
	// Runs is read directly for listings, status and events.
	Runs persistence.WorkflowRuns
	// Commands change runs, through their grains.
	Commands WorkflowCommands
	// Profiles, optional, serves GET /api/v1/users/me/profile (the document
	// the intelligent-chat workflow keeps per user).
	Profiles ProfileReader
	// EventPoll is how often an events stream looks for new events (default 200ms).
	EventPoll time.Duration
	// Schedules, optional, serves /api/v1/workflows/schedules (503 without it).
	Schedules persistence.WorkflowSchedules
	// Webhooks, optional, shows a run's notification attempts in its status.
	Webhooks persistence.Webhooks
	// WebhookGuard checks webhook_url values (SSRF); nil refuses every webhook_url.
	WebhookGuard URLChecker
}

// URLChecker accepts or refuses a URL that the node will send requests to;
// netguard.Guard implements it. The error's text is shown to the client.
type URLChecker interface {
	CheckURL(ctx context.Context, raw string) error
}

// maxWebhookURLBytes bounds a webhook_url (the column's size).
const maxWebhookURLBytes = 2048

// checkWebhookURL returns the field error of a webhook_url, or nil when it is
// empty or acceptable.
func (wf *Workflows) checkWebhookURL(ctx context.Context, raw string) *FieldError {
	switch {
	case raw == "":
		return nil
	case len(raw) > maxWebhookURLBytes:
		return &FieldError{Field: "webhook_url", Message: "must be at most 2048 bytes"}
	case wf.WebhookGuard == nil:
		return &FieldError{Field: "webhook_url", Message: "webhook notifications are not enabled on this node"}
	}
	if err := wf.WebhookGuard.CheckURL(ctx, raw); err != nil {
		return &FieldError{Field: "webhook_url", Message: err.Error()}
	}
	return nil
}

// withDefaults returns wf with EventPoll set (nil for nil).
func (wf *Workflows) withDefaults() *Workflows {
	if wf == nil || wf.EventPoll > 0 {
		return wf
	}
	c := *wf
	c.EventPoll = 200 * time.Millisecond
	return &c
}

// ProfileReader reads a user's profile document; nil when there is none.
type ProfileReader interface {
	Profile(ctx context.Context, userID string) (json.RawMessage, error)
}

// profileView is the body of GET /api/v1/users/me/profile.
type profileView struct {
	Profile json.RawMessage `json:"profile" doc:"the profile the workflows keep (an object), or null before the first"`
}

// workflowInfo is one registered workflow.
type workflowInfo struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters" doc:"JSON schema of the run's parameters"`
}

// workflowRunSummary is one of the caller's runs.
type workflowRunSummary struct {
	RunID      string     `json:"run_id"`
	Name       string     `json:"name"`
	Status     string     `json:"status" doc:"pending, running, retrying, paused, completed, failed or cancelled"`
	CreatedAt  time.Time  `json:"created_at"`
	FinishedAt *time.Time `json:"finished_at"`
}

// workflowsView is the body of GET /api/v1/workflows.
type workflowsView struct {
	Workflows  []workflowInfo       `json:"workflows"`
	Runs       []workflowRunSummary `json:"runs"`
	NextCursor string               `json:"next_cursor,omitempty" doc:"cursor of the next page of runs"`
}

// triggerRequest is the body of POST /api/v1/workflows/trigger.
type triggerRequest struct {
	Name       string          `json:"name"`
	Parameters json.RawMessage `json:"parameters,omitempty" doc:"a JSON object following the workflow's parameter schema"`
	WebhookURL string          `json:"webhook_url,omitempty" doc:"receives a signed POST of the run's final state (X-Kowai-Signature); public http(s) addresses only unless the operator allows more"`
}

// Validate implements Validator.
func (r triggerRequest) Validate() []FieldError { return required("name", r.Name, 200) }

// resumeRequest is the body of POST /api/v1/workflows/{run_id}/resume.
type resumeRequest struct {
	Input json.RawMessage `json:"input" doc:"the input the run waits for, following the schema its status shows"`
}

// Validate implements Validator.
func (r resumeRequest) Validate() []FieldError {
	if len(r.Input) == 0 {
		return []FieldError{{Field: "input", Message: "is required"}}
	}
	return nil
}

// runAccepted is the body of a 202 from trigger, cancel, resume and retry.
type runAccepted struct {
	RunID  string `json:"run_id"`
	Status string `json:"status"`
}

// taskStatus is one task of a run.
type taskStatus struct {
	Seq        int        `json:"seq"`
	Name       string     `json:"name"`
	Kind       string     `json:"kind" doc:"task, agent, program, child, sleep or input"`
	Status     string     `json:"status"`
	Attempts   int        `json:"attempts"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	Error      string     `json:"error,omitempty"`
}

// waitingInput is what a paused run waits for.
type waitingInput struct {
	Name   string          `json:"name"`
	Schema json.RawMessage `json:"schema" doc:"JSON schema the input of POST .../resume must follow"`
}

// runStatus is the body of GET /api/v1/workflows/{run_id}/status.
type runStatus struct {
	RunID    string `json:"run_id"`
	Name     string `json:"name"`
	Status   string `json:"status"`
	ParentID string `json:"parent_id,omitempty"`
	// ContinuedAs and ContinuedFrom link the runs of a workflow that continued as new.
	ContinuedAs   string          `json:"continued_as,omitempty" doc:"the run that continues this one (continue-as-new); this run completed without a result"`
	ContinuedFrom string          `json:"continued_from,omitempty" doc:"the run this one continues (continue-as-new)"`
	Tasks         []taskStatus    `json:"tasks"`
	Waiting       *waitingInput   `json:"waiting,omitempty"`
	WakeAt        *time.Time      `json:"wake_at,omitempty" doc:"when a sleeping run wakes up"`
	Result        json.RawMessage `json:"result,omitempty"`
	Error         string          `json:"error,omitempty"`
	Usage         json.RawMessage `json:"usage,omitempty" doc:"model tokens, calls and cost of the run so far"`
	CreatedAt     time.Time       `json:"created_at"`
	// Notifications lists the webhook delivery attempts of a run triggered with a
	// webhook_url.
	Notifications []notificationAttempt `json:"notifications,omitempty" doc:"webhook delivery attempts, oldest first"`
}

// notificationAttempt is one webhook delivery attempt of a run.
type notificationAttempt struct {
	Attempt    int       `json:"attempt"`
	StatusCode int       `json:"status_code,omitempty" doc:"the receiver's HTTP status; absent when no answer came"`
	Error      string    `json:"error,omitempty"`
	Delivered  bool      `json:"delivered"`
	At         time.Time `json:"at"`
}

type workflowRoutes struct {
	wf *Workflows
}

// mountWorkflows registers /api/v1/workflows.
func (s *Server) mountWorkflows(wf *Workflows, authed fiber.Handler, rl rateLimits) {
	run := auth.RequirePermission(auth.PermWorkflowsRun)
	h := workflowRoutes{wf: wf.withDefaults()}
	unavailable := func(c *fiber.Ctx) error {
		if h.wf == nil {
			return &Error{Status: http.StatusServiceUnavailable, Title: http.StatusText(http.StatusServiceUnavailable),
				Detail: "this node runs no workflow engine"}
		}
		return c.Next()
	}
	// A malformed run ID is a 400 whether or not an engine runs here.
	validID := func(c *fiber.Ctx) error {
		if _, err := pathID(c, "run_id"); err != nil {
			return err
		}
		return c.Next()
	}
	errs := func(codes ...int) []int {
		return append([]int{http.StatusForbidden, http.StatusServiceUnavailable}, codes...)
	}
	s.Route(fiber.MethodGet, "/api/v1/workflows", Op{Summary: "Registered workflows with their parameter schemas, and a page of your runs", Tag: "Workflows", Auth: true,
		Query:    append([]Param{{Name: "name", Description: "only runs of this workflow"}, {Name: "status", Description: "only runs in this state"}}, pageQuery()...),
		Response: workflowsView{}, Errors: errs(http.StatusBadRequest)},
		authed, rl.user("workflows.list"), run, unavailable, h.list)
	s.Route(fiber.MethodPost, "/api/v1/workflows/trigger", Op{Summary: "Start a workflow run", Tag: "Workflows", Auth: true,
		Request: triggerRequest{}, Response: runAccepted{}, Status: http.StatusAccepted, Errors: errs(http.StatusGatewayTimeout)},
		authed, rl.user("workflows.trigger"), run, unavailable, h.trigger)
	// Before the /:run_id routes, so "schedules" is never read as a run ID.
	s.mountSchedules(h, authed, rl)
	s.Route(fiber.MethodGet, "/api/v1/workflows/:run_id/status", Op{Summary: "A run's status, tasks, input it waits for, and result", Tag: "Workflows", Auth: true,
		Response: runStatus{}, Errors: errs(http.StatusBadRequest, http.StatusNotFound)},
		authed, rl.user("workflows.status"), run, validID, unavailable, h.status)
	s.Route(fiber.MethodPost, "/api/v1/workflows/:run_id/cancel", Op{Summary: "Cancel a run: its running tasks stop within a second", Tag: "Workflows", Auth: true,
		Response: runAccepted{}, Status: http.StatusAccepted, Errors: errs(http.StatusBadRequest, http.StatusNotFound, http.StatusGatewayTimeout)},
		authed, rl.user("workflows.cancel"), run, validID, unavailable, h.cancel)
	s.Route(fiber.MethodPost, "/api/v1/workflows/:run_id/resume", Op{Summary: "Supply the input a paused run waits for", Tag: "Workflows", Auth: true,
		Request: resumeRequest{}, Response: runAccepted{}, Status: http.StatusAccepted, Errors: errs(http.StatusNotFound, http.StatusConflict, http.StatusGatewayTimeout)},
		authed, rl.user("workflows.resume"), run, validID, unavailable, h.resume)
	s.Route(fiber.MethodPost, "/api/v1/workflows/:run_id/retry", Op{Summary: "Restart a failed run from its first failed task", Tag: "Workflows", Auth: true,
		Response: runAccepted{}, Status: http.StatusAccepted, Errors: errs(http.StatusBadRequest, http.StatusNotFound, http.StatusConflict, http.StatusGatewayTimeout)},
		authed, rl.user("workflows.retry"), run, validID, unavailable, h.retry)
	s.Route(fiber.MethodGet, "/api/v1/users/me/profile", Op{Summary: "The profile workflows keep about you (intelligent-chat)", Tag: "Workflows", Auth: true,
		Response: profileView{}, Errors: []int{http.StatusServiceUnavailable}},
		authed, rl.user("users.profile"), func(c *fiber.Ctx) error {
			if h.wf == nil || h.wf.Profiles == nil {
				return &Error{Status: http.StatusServiceUnavailable, Title: http.StatusText(http.StatusServiceUnavailable), Detail: "this node keeps no profiles"}
			}
			doc, err := h.wf.Profiles.Profile(c.UserContext(), principalID(c))
			if err != nil {
				return err
			}
			if doc == nil {
				doc = json.RawMessage("null")
			}
			return c.JSON(profileView{Profile: doc})
		})
	s.Route(fiber.MethodGet, "/api/v1/workflows/:run_id/events", Op{Summary: "Server-Sent Events of the run's and its tasks' state changes, then its result; Last-Event-ID resumes", Tag: "Workflows", Auth: true,
		Response: "", ContentType: "text/event-stream", Errors: errs(http.StatusBadRequest, http.StatusNotFound)},
		authed, rl.user("workflows.events"), run, validID, unavailable, h.events)
}

func (h workflowRoutes) list(c *fiber.Ctx) error {
	p, _ := auth.PrincipalFrom(c) // RequireAuth ran first
	req, err := pageRequest(c)
	if err != nil {
		return err
	}
	f := persistence.RunFilter{OwnerID: p.UserID, Name: c.Query("name"), Status: c.Query("status")}
	var fields []FieldError
	if len(f.Name) > 200 {
		fields = append(fields, FieldError{Field: "name", Message: "must be at most 200 characters"})
	}
	if f.Status != "" && !knownStatus(f.Status) {
		fields = append(fields, FieldError{Field: "status", Message: "must be pending, running, retrying, paused, completed, failed or cancelled"})
	}
	if len(fields) > 0 {
		return Validation(fields...)
	}
	f.Name, f.Status = strings.Clone(f.Name), strings.Clone(f.Status)
	page, err := h.wf.Runs.ListRuns(c.UserContext(), f, req)
	if err != nil {
		return listProblem(err)
	}
	view := workflowsView{Workflows: []workflowInfo{}, Runs: make([]workflowRunSummary, 0, len(page.Items)), NextCursor: page.NextCursor}
	for _, d := range h.wf.Registry.List() {
		view.Workflows = append(view.Workflows, workflowInfo{Name: d.Name, Description: d.Description, Parameters: d.Schema})
	}
	for _, r := range page.Items {
		view.Runs = append(view.Runs, workflowRunSummary{RunID: r.ID, Name: r.Name, Status: r.Status, CreatedAt: r.CreatedAt, FinishedAt: timePtr(r.FinishedAt)})
	}
	return c.JSON(view)
}

func knownStatus(s string) bool {
	switch s {
	case workflows.StatusPending, workflows.StatusRunning, workflows.StatusRetrying, workflows.StatusPaused,
		workflows.StatusCompleted, workflows.StatusFailed, workflows.StatusCancelled:
		return true
	}
	return false
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// prefixed puts a document's field errors under its field in the request.
func prefixed(prefix string, fs []jsonschema.FieldError) []FieldError {
	out := make([]FieldError, len(fs))
	for i, f := range fs {
		name := prefix
		if f.Field != "" {
			name = prefix + "." + f.Field
			if strings.HasPrefix(f.Field, "[") {
				name = prefix + f.Field
			}
		}
		out[i] = FieldError{Field: name, Message: f.Message}
	}
	return out
}

func (h workflowRoutes) trigger(c *fiber.Ctx) error {
	req, err := Decode[triggerRequest](c)
	if err != nil {
		return err
	}
	def, err := h.wf.Registry.Lookup(req.Name)
	if err != nil {
		return Validation(FieldError{Field: "name", Message: "is not a registered workflow (GET /api/v1/workflows lists them)"})
	}
	params, err := def.ValidateParams(req.Parameters)
	var ve *workflows.ValidationError
	var fields []FieldError
	if errors.As(err, &ve) {
		fields = prefixed("parameters", ve.Fields)
	} else if err != nil {
		return err
	}
	if fe := h.wf.checkWebhookURL(c.UserContext(), req.WebhookURL); fe != nil {
		fields = append(fields, *fe)
	}
	if len(fields) > 0 {
		return Validation(fields...)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return fmt.Errorf("new run ID: %w", err)
	}
	status, err := h.wf.Commands.Trigger(c.UserContext(), id.String(), def.Name, principalID(c), params, strings.Clone(req.WebhookURL))
	if err != nil {
		return workflowGrainError(err)
	}
	return c.Status(http.StatusAccepted).JSON(runAccepted{RunID: id.String(), Status: status})
}

// visibleRun loads the run in the path if the caller may see it: its owner,
// or anyone with workflows:read:any (moderators and admins). Anyone else gets
// the same 404 as for a run that does not exist.
func (h workflowRoutes) visibleRun(c *fiber.Ctx) (persistence.WorkflowRun, error) {
	id, err := pathID(c, "run_id")
	if err != nil {
		return persistence.WorkflowRun{}, err
	}
	p, _ := auth.PrincipalFrom(c) // RequireAuth ran first
	return readableRun(c.UserContext(), h.wf.Runs, p, id)
}

// readableRun loads run id for p if p may see it: its owner, or anyone with
// workflows:read:any. Anyone else gets the same 404 as for a run that does
// not exist. The REST routes and WebSocket subscriptions both check through
// it.
func readableRun(ctx context.Context, runs persistence.WorkflowRuns, p auth.Principal, id string) (persistence.WorkflowRun, error) {
	run, err := runs.GetRun(ctx, id)
	if errors.Is(err, persistence.ErrNotFound) || err == nil && run.OwnerID != p.UserID && !p.Can(auth.PermWorkflowsReadAny) {
		return persistence.WorkflowRun{}, NewError(http.StatusNotFound, "no such workflow run")
	}
	if err != nil {
		return persistence.WorkflowRun{}, fmt.Errorf("run %s: %w", id, err)
	}
	return run, nil
}

// ownRun is visibleRun for commands: moderators read other users' runs but
// only the owner and admins change them.
func (h workflowRoutes) ownRun(c *fiber.Ctx) (persistence.WorkflowRun, error) {
	run, err := h.visibleRun(c)
	if err != nil {
		return run, err
	}
	p, _ := auth.PrincipalFrom(c) // RequireAuth ran first
	if run.OwnerID != p.UserID && !p.HasRole(auth.RoleAdmin) {
		return run, NewError(http.StatusForbidden, "only the run's owner or an admin may change it")
	}
	return run, nil
}

func (h workflowRoutes) status(c *fiber.Ctx) error {
	run, err := h.visibleRun(c)
	if err != nil {
		return err
	}
	view, err := h.statusOf(c.UserContext(), run)
	if err != nil {
		return err
	}
	return c.JSON(view)
}

// statusOf builds a run's status: journaled tasks from the journal, tasks in
// flight from the latest event of each.
func (h workflowRoutes) statusOf(ctx context.Context, run persistence.WorkflowRun) (runStatus, error) {
	view := runStatus{RunID: run.ID, Name: run.Name, Status: run.Status, ParentID: run.ParentID, ContinuedAs: run.ContinuedAs,
		ContinuedFrom: run.ContinuedFrom, Tasks: []taskStatus{},
		Result: run.Result, Error: run.Error, Usage: run.Spend, CreatedAt: run.CreatedAt}
	if len(run.Waiting) > 0 {
		var w workflows.Waiting
		if err := json.Unmarshal(run.Waiting, &w); err == nil {
			view.Waiting = &waitingInput{Name: w.Name, Schema: w.Schema}
		}
	} else if run.Status == workflows.StatusPaused && !run.DueAt.IsZero() {
		view.WakeAt = timePtr(run.DueAt)
	}
	if run.WebhookURL != "" && h.wf.Webhooks != nil {
		ds, err := h.wf.Webhooks.Deliveries(ctx, run.ID)
		if err != nil {
			return view, err
		}
		for _, d := range ds {
			view.Notifications = append(view.Notifications, notificationAttempt{Attempt: d.Attempt, StatusCode: d.StatusCode,
				Error: d.Error, Delivered: d.Delivered, At: d.At})
		}
	}
	steps, err := h.wf.Runs.Steps(ctx, run.ID)
	if err != nil {
		return view, err
	}
	done := map[int]bool{}
	for _, s := range steps {
		done[s.Seq] = true
		view.Tasks = append(view.Tasks, taskStatus{Seq: s.Seq, Name: s.Name, Kind: s.Kind, Status: s.Status, Attempts: s.Attempts,
			StartedAt: timePtr(s.StartedAt), FinishedAt: timePtr(s.FinishedAt), Error: s.Error})
	}
	if workflows.Finished(run.Status) && run.Status != workflows.StatusCancelled {
		return view, nil
	}
	live := map[int]*taskStatus{}
	var order []int
	for after := int64(0); ; {
		evs, err := h.wf.Runs.Events(ctx, run.ID, after, 500)
		if err != nil {
			return view, err
		}
		for _, e := range evs {
			after = e.Seq
			if e.StepSeq == 0 || done[e.StepSeq] {
				continue
			}
			var ev workflows.Event
			if err := json.Unmarshal(e.Data, &ev); err != nil {
				continue
			}
			t, ok := live[e.StepSeq]
			if !ok {
				t = &taskStatus{Seq: e.StepSeq, Name: ev.Name, Kind: string(ev.Kind), StartedAt: timePtr(ev.Time)}
				live[e.StepSeq] = t
				order = append(order, e.StepSeq)
			}
			t.Status, t.Attempts, t.Error = ev.Status, max(t.Attempts, ev.Attempt), ev.Error
		}
		if len(evs) < 500 {
			break
		}
	}
	for _, seq := range order {
		view.Tasks = append(view.Tasks, *live[seq])
	}
	return view, nil
}

func (h workflowRoutes) cancel(c *fiber.Ctx) error {
	run, err := h.ownRun(c)
	if err != nil {
		return err
	}
	status, err := h.wf.Commands.Cancel(c.UserContext(), run.ID)
	if err != nil {
		return workflowGrainError(err)
	}
	return c.Status(http.StatusAccepted).JSON(runAccepted{RunID: run.ID, Status: status})
}

func (h workflowRoutes) resume(c *fiber.Ctx) error {
	run, err := h.ownRun(c)
	if err != nil {
		return err
	}
	req, err := Decode[resumeRequest](c)
	if err != nil {
		return err
	}
	if run.Status != workflows.StatusPaused || len(run.Waiting) == 0 {
		return NewError(http.StatusConflict, "the run is "+run.Status+", not waiting for input")
	}
	var w workflows.Waiting
	var schema map[string]any
	if err := json.Unmarshal(run.Waiting, &w); err != nil {
		return fmt.Errorf("run %s: waiting input: %w", run.ID, err)
	}
	if err := json.Unmarshal(w.Schema, &schema); err != nil {
		return fmt.Errorf("run %s: waiting schema: %w", run.ID, err)
	}
	if fs := jsonschema.Validate(schema, req.Input); len(fs) > 0 {
		return Validation(prefixed("input", fs)...)
	}
	status, err := h.wf.Commands.Resume(c.UserContext(), run.ID, req.Input)
	if err != nil {
		return workflowGrainError(err)
	}
	return c.Status(http.StatusAccepted).JSON(runAccepted{RunID: run.ID, Status: status})
}

func (h workflowRoutes) retry(c *fiber.Ctx) error {
	run, err := h.ownRun(c)
	if err != nil {
		return err
	}
	if run.Status != workflows.StatusFailed {
		return NewError(http.StatusConflict, "the run is "+run.Status+"; only a failed run can be retried")
	}
	status, err := h.wf.Commands.Retry(c.UserContext(), run.ID)
	if err != nil {
		return workflowGrainError(err)
	}
	return c.Status(http.StatusAccepted).JSON(runAccepted{RunID: run.ID, Status: status})
}

// workflowGrainError maps a run grain's refusal to a problem.
func workflowGrainError(err error) error {
	var ge *actorpb.Error
	if errors.As(err, &ge) && ge.Code == actorpb.Code_CODE_INVALID_ARGUMENT {
		return &Error{Status: http.StatusBadRequest, Title: http.StatusText(http.StatusBadRequest), Detail: ge.Message, Err: err}
	}
	return grainError(err)
}

// sseKeepAlive is how often an idle events stream sends a comment, so
// proxies keep it open and a gone client is noticed.
const sseKeepAlive = 15 * time.Second

// events streams the run's events as SSE: "run" events (the run's own state)
// and "task" events, each with its number as id, then one "result" event with
// the run's final status once it has finished. Last-Event-ID (header, or
// ?last_event_id) resumes after that event.
func (h workflowRoutes) events(c *fiber.Ctx) error {
	run, err := h.visibleRun(c)
	if err != nil {
		return err
	}
	after := int64(0)
	last := c.Get("Last-Event-ID")
	if last == "" {
		last = c.Query("last_event_id")
	}
	if last != "" {
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n < 0 {
			return Validation(FieldError{Field: "Last-Event-ID", Message: "must be an event id of this stream"})
		}
		after = n
	}
	runs, poll, id := h.wf.Runs, h.wf.EventPoll, run.ID
	ctx := context.WithoutCancel(c.UserContext())
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set("X-Accel-Buffering", "no")
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		err := followRun(ctx, runs, id, after, poll, func(batch []runEvent) error {
			for _, e := range batch {
				if e.Type == runEventResult {
					fmt.Fprintf(w, "event: result\ndata: %s\n\n", e.Data)
				} else {
					fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", e.ID, e.Type, e.Data)
				}
			}
			return w.Flush()
		}, func() error {
			if _, err := w.WriteString(": keep-alive\n\n"); err != nil {
				return err
			}
			return w.Flush()
		})
		if errors.Is(err, errEventsUnavailable) {
			fmt.Fprintf(w, "event: error\ndata: %s\n\n", mustJSON(map[string]string{"detail": "events unavailable; reconnect with Last-Event-ID"}))
			_ = w.Flush()
		}
	})
	return nil
}

// The types of the events followRun emits: the run's own state changes, its
// tasks' state changes, and the final result.
const (
	runEventRun    = "run"
	runEventTask   = "task"
	runEventResult = "result"
)

// runEvent is one event of a run's stream: a journaled event (ID is its
// number in the run, Data the workflows.Event) or the final result (ID 0,
// Data a runResult).
type runEvent struct {
	ID   int64
	Type string
	Data json.RawMessage
}

// errEventsUnavailable is followRun's answer when the events cannot be read;
// the client reconnects after the last event it got.
var errEventsUnavailable = errors.New("gateway: run events unavailable")

// eventBatch is how many events followRun reads at once.
const eventBatch = 200

// followRun streams run id's events after the event numbered after: it polls
// runs every poll, hands each non-empty batch to emit in order and, once the
// run has finished and every event is out, one result event; then it
// returns nil. It returns early with ctx's error, with emit's or keepAlive's
// error (the client is gone), or with errEventsUnavailable. keepAlive, when
// not nil, is called after sseKeepAlive without events. SSE and WebSocket
// subscriptions both follow runs through it, so they see the same stream.
func followRun(ctx context.Context, runs persistence.WorkflowRuns, id string, after int64, poll time.Duration,
	emit func([]runEvent) error, keepAlive func() error) error {
	tick := time.NewTicker(poll)
	defer tick.Stop()
	idle := time.Now()
	for {
		evs, err := runs.Events(ctx, id, after, eventBatch)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%w: %w", errEventsUnavailable, err)
		}
		finished := false
		batch := make([]runEvent, 0, len(evs)+1)
		for _, e := range evs {
			typ := runEventTask
			if e.StepSeq == 0 {
				typ = runEventRun
				finished = finished || workflows.Finished(e.Status)
			}
			batch = append(batch, runEvent{ID: e.Seq, Type: typ, Data: e.Data})
			after = e.Seq
		}
		done := false
		if finished && len(evs) < eventBatch {
			if r, err := runs.GetRun(ctx, id); err == nil && workflows.Finished(r.Status) {
				batch = append(batch, runEvent{Type: runEventResult, Data: mustJSON(runResult{RunID: r.ID, Status: r.Status, Result: r.Result, Error: r.Error, ContinuedAs: r.ContinuedAs})})
				done = true
			}
		}
		if len(batch) > 0 {
			idle = time.Now()
			if err := emit(batch); err != nil {
				return err
			}
		}
		if done {
			return nil
		}
		if keepAlive != nil && time.Since(idle) > sseKeepAlive {
			idle = time.Now()
			if err := keepAlive(); err != nil {
				return err
			}
		}
		if len(evs) == eventBatch {
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// runResult is the data of an events stream's final "result" event.
type runResult struct {
	RunID  string          `json:"run_id"`
	Status string          `json:"status"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
	// ContinuedAs is the run that continues this one (continue-as-new): follow
	// its events for the workflow's result.
	ContinuedAs string `json:"continued_as,omitempty"`
}

func principalID(c *fiber.Ctx) string {
	p, _ := auth.PrincipalFrom(c) // RequireAuth ran first
	return p.UserID
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return []byte(`{}`)
	}
	return b
}
