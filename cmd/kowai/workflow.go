package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"
)

// workflowUsage is the usage line of kowai workflow.
const workflowUsage = "workflow list | run NAME [--param k=v ...] [--params-json JSON] [--wait] | status RUN_ID | cancel RUN_ID | resume RUN_ID --input JSON"

// workflowCmd talks to a node's workflow API over HTTP. It reads KOWAI_URL
// and KOWAI_TOKEN only, so it needs none of the node's settings.
func workflowCmd(ctx context.Context, args []string, std stdio, getenv func(string) string) error {
	if len(args) == 0 {
		return usagef("want: kowai %s", workflowUsage)
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "-h", "-help", "--help", "help":
		printHelp(std.out, flagSet("workflow", workflowUsage, std), workflowUsage+
			"\n\nTalks to a node over HTTP: --url (env KOWAI_URL, default http://127.0.0.1:8080) with the access token in KOWAI_TOKEN.\nkowai workflow SUBCOMMAND --help lists its flags.")
		return nil
	case "list", "run", "status", "cancel", "resume":
	default:
		return usagef("unknown subcommand %q; want: kowai %s", sub, workflowUsage)
	}
	usage := map[string]string{
		"list":   "workflow list [--name N] [--status S]",
		"run":    "workflow run NAME [--param k=v ...] [--params-json JSON] [--wait]",
		"status": "workflow status RUN_ID",
		"cancel": "workflow cancel RUN_ID",
		"resume": "workflow resume RUN_ID --input JSON",
	}[sub]
	fs := flagSet("workflow "+sub, usage, std)
	defURL := getenv("KOWAI_URL")
	if defURL == "" {
		defURL = "http://127.0.0.1:8080"
	}
	base := fs.String("url", defURL, "the node's base URL (env KOWAI_URL)")
	var (
		name, status      *string
		params            paramFlags
		paramsJSON, input *string
		wait              *bool
		needed            = 1
	)
	switch sub {
	case "list":
		name = fs.String("name", "", "only runs of this workflow")
		status = fs.String("status", "", "only runs in this state")
		needed = 0
	case "run":
		fs.Var(&params, "param", "a parameter k=v; v is read as JSON when it parses (numbers, booleans, objects), else as a string (repeatable)")
		paramsJSON = fs.String("params-json", "", "the parameters as a JSON object; --param values override its keys")
		wait = fs.Bool("wait", false, "follow the run's events until it finishes, print its result, exit 1 unless it completed")
	case "resume":
		input = fs.String("input", "", "the input the run waits for, as JSON")
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != needed {
		return usagef("want: kowai %s", usage)
	}
	cl, err := newAPIClient(*base, getenv("KOWAI_TOKEN"))
	if err != nil {
		return err
	}
	switch sub {
	case "list":
		return cl.list(ctx, std.out, *name, *status)
	case "run":
		body, err := triggerBody(fs.Arg(0), *paramsJSON, params)
		if err != nil {
			return err
		}
		var acc runAccepted
		if err := cl.do(ctx, http.MethodPost, "/api/v1/workflows/trigger", body, &acc); err != nil {
			return err
		}
		if !*wait {
			fmt.Fprintln(std.out, acc.RunID)
			return nil
		}
		fmt.Fprintf(std.err, "run %s %s\n", acc.RunID, acc.Status)
		return cl.follow(ctx, acc.RunID, std)
	case "resume":
		if *input == "" {
			return usagef("--input is required: the JSON the run waits for (kowai workflow status RUN_ID shows its schema)")
		}
		if !json.Valid([]byte(*input)) {
			return usagef("--input is not valid JSON")
		}
		body, err := json.Marshal(map[string]json.RawMessage{"input": json.RawMessage(*input)})
		if err != nil {
			return fmt.Errorf("resume body: %w", err)
		}
		return cl.print(ctx, std.out, http.MethodPost, "/api/v1/workflows/"+url.PathEscape(fs.Arg(0))+"/resume", body)
	case "cancel":
		return cl.print(ctx, std.out, http.MethodPost, "/api/v1/workflows/"+url.PathEscape(fs.Arg(0))+"/cancel", nil)
	default: // status
		return cl.print(ctx, std.out, http.MethodGet, "/api/v1/workflows/"+url.PathEscape(fs.Arg(0))+"/status", nil)
	}
}

// paramFlags collects repeated --param k=v flags in order.
type paramFlags []param

type param struct {
	key   string
	value json.RawMessage
}

func (p *paramFlags) String() string { return fmt.Sprint(len(*p)) }

// Set reads k=v; v is JSON when it parses as JSON, else a string.
func (p *paramFlags) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return errors.New("want k=v")
	}
	raw := json.RawMessage(v)
	if !json.Valid(raw) {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("value of %s: %w", k, err)
		}
		raw = b
	}
	*p = append(*p, param{key: k, value: raw})
	return nil
}

// triggerBody builds the body of POST /api/v1/workflows/trigger. The
// server validates the parameters against the workflow's schema.
func triggerBody(name, paramsJSON string, params paramFlags) ([]byte, error) {
	ps := map[string]json.RawMessage{}
	if paramsJSON != "" {
		if err := json.Unmarshal([]byte(paramsJSON), &ps); err != nil || ps == nil {
			return nil, usagef("--params-json must be a JSON object")
		}
	}
	for _, p := range params {
		ps[p.key] = p.value
	}
	body, err := json.Marshal(struct {
		Name       string                     `json:"name"`
		Parameters map[string]json.RawMessage `json:"parameters"`
	}{name, ps})
	if err != nil {
		return nil, fmt.Errorf("trigger body: %w", err)
	}
	return body, nil
}

// apiClient calls one node's API with a bearer token.
type apiClient struct {
	base  string
	token string
	// http serves requests with a timeout; stream, event streams, which
	// end with the context.
	http, stream *http.Client
}

func newAPIClient(base, token string) (*apiClient, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usagef("--url (KOWAI_URL) %q: want http(s)://host:port", base)
	}
	if token == "" {
		return nil, usagef("KOWAI_TOKEN is not set: put an access token in it (POST /api/v1/auth/login returns one)")
	}
	return &apiClient{base: strings.TrimRight(base, "/"), token: token,
		http: &http.Client{Timeout: 30 * time.Second}, stream: &http.Client{}}, nil
}

// runAccepted is the answer to trigger, cancel and resume.
type runAccepted struct {
	RunID  string `json:"run_id"`
	Status string `json:"status"`
}

// problem is the gateway's problem+json error body.
type problem struct {
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Errors []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"errors"`
}

// apiError turns a refused request into an error: field errors (bad input
// from the operator) are a usage error, one line per field; anything else is
// a runtime error.
func apiError(res *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	var p problem
	if json.Unmarshal(body, &p) != nil || p.Status == 0 {
		return fmt.Errorf("%s: %s", res.Status, strings.TrimSpace(string(body)))
	}
	msg := fmt.Sprintf("%d %s", p.Status, p.Title)
	if p.Detail != "" {
		msg += ": " + p.Detail
	}
	if len(p.Errors) > 0 {
		for _, f := range p.Errors {
			msg += "\n  " + f.Field + ": " + f.Message
		}
		return usageError{msg}
	}
	if res.StatusCode == http.StatusUnauthorized {
		msg += " (KOWAI_TOKEN was refused; log in again)"
	}
	return errors.New(msg)
}

func (c *apiClient) request(ctx context.Context, method, path string, body []byte) (*http.Request, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return nil, fmt.Errorf("request %s: %w", path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// do sends a request and decodes a 2xx JSON answer into out (when not nil).
func (c *apiClient) do(ctx context.Context, method, path string, body []byte, out any) error {
	req, err := c.request(ctx, method, path, body)
	if err != nil {
		return err
	}
	res, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	if res.StatusCode/100 != 2 {
		return apiError(res)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	return nil
}

// print sends a request and writes its JSON answer, indented, to w.
func (c *apiClient) print(ctx context.Context, w io.Writer, method, path string, body []byte) error {
	var raw json.RawMessage
	if err := c.do(ctx, method, path, body, &raw); err != nil {
		return err
	}
	return writeJSON(w, raw)
}

func writeJSON(w io.Writer, raw json.RawMessage) error {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		b.Reset()
		b.Write(raw)
	}
	b.WriteByte('\n')
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// list prints the registered workflows with their parameters, then the
// first page of the caller's runs.
func (c *apiClient) list(ctx context.Context, w io.Writer, name, status string) error {
	q := url.Values{}
	if name != "" {
		q.Set("name", name)
	}
	if status != "" {
		q.Set("status", status)
	}
	path := "/api/v1/workflows"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var view struct {
		Workflows []struct {
			Name        string `json:"name"`
			Description string `json:"description"`
			Parameters  struct {
				Properties map[string]struct {
					Type any `json:"type"`
				} `json:"properties"`
				Required []string `json:"required"`
			} `json:"parameters"`
		} `json:"workflows"`
		Runs []struct {
			RunID     string    `json:"run_id"`
			Name      string    `json:"name"`
			Status    string    `json:"status"`
			CreatedAt time.Time `json:"created_at"`
		} `json:"runs"`
		NextCursor string `json:"next_cursor"`
	}
	if err := c.do(ctx, http.MethodGet, path, nil, &view); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKFLOW\tPARAMETERS\tDESCRIPTION")
	for _, wf := range view.Workflows {
		required := map[string]bool{}
		for _, r := range wf.Parameters.Required {
			required[r] = true
		}
		var ps []string
		for k, p := range wf.Parameters.Properties {
			s := fmt.Sprintf("%s:%v", k, p.Type)
			if !required[k] {
				s += "?"
			}
			ps = append(ps, s)
		}
		sort.Strings(ps)
		fmt.Fprintf(tw, "%s\t%s\t%s\n", wf.Name, strings.Join(ps, " "), wf.Description)
	}
	fmt.Fprintln(tw, "\nRUN\tWORKFLOW\tSTATUS\tCREATED")
	for _, r := range view.Runs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.RunID, r.Name, r.Status, r.CreatedAt.Local().Format(time.DateTime))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if view.NextCursor != "" {
		fmt.Fprintln(w, "(more runs: filter with --name or --status)")
	}
	return nil
}

// runEvent is the data of a run or task event of the events stream.
type runEvent struct {
	Seq     int    `json:"seq"`
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	Status  string `json:"status"`
	Attempt int    `json:"attempt"`
	Error   string `json:"error"`
}

// runResult is the data of the stream's final result event.
type runResult struct {
	RunID  string          `json:"run_id"`
	Status string          `json:"status"`
	Result json.RawMessage `json:"result"`
	Error  string          `json:"error"`
	// ContinuedAs is the run that continues this one (continue-as-new).
	ContinuedAs string `json:"continued_as"`
}

// errRunNotCompleted is the error of run --wait for a run that failed or
// was cancelled; the run's own error has been printed.
var errRunNotCompleted = errors.New("the run did not complete")

// follow reads the run's events stream until its result, showing progress
// on std.err (a bar on a terminal, plain lines otherwise), then prints the
// result JSON on std.out. A dropped stream is reopened after the last event
// seen; a run that continued as new is followed to the run that continues it.
// It returns errRunNotCompleted unless the run completed.
func (c *apiClient) follow(ctx context.Context, runID string, std stdio) error {
	p := newProgress(std.err)
	last := ""
	failures := 0
	for {
		res, err := c.events(ctx, runID, last, p)
		if res != nil {
			p.finish()
			if res.Status == "completed" && res.ContinuedAs != "" {
				fmt.Fprintf(std.err, "run %s continued as %s\n", runID, res.ContinuedAs)
				runID, last, failures, p = res.ContinuedAs, "", 0, newProgress(std.err)
				continue
			}
			if res.Status == "completed" {
				if len(res.Result) == 0 {
					res.Result = json.RawMessage("null")
				}
				return writeJSON(std.out, res.Result)
			}
			if res.Error != "" {
				fmt.Fprintf(std.err, "run %s %s: %s\n", runID, res.Status, res.Error)
			} else {
				fmt.Fprintf(std.err, "run %s %s\n", runID, res.Status)
			}
			return fmt.Errorf("run %s is %s: %w", runID, res.Status, errRunNotCompleted)
		}
		var ue usageError
		if ctx.Err() != nil || errors.As(err, &ue) || errors.Is(err, errStreamRefused) {
			p.finish()
			return err
		}
		if p.lastID != "" && p.lastID != last {
			failures = 0
		}
		last = p.lastID
		if failures++; failures > 5 {
			p.finish()
			return fmt.Errorf("following run %s: %w", runID, err)
		}
		select {
		case <-ctx.Done():
			p.finish()
			return ctx.Err()
		case <-time.After(time.Duration(failures) * 500 * time.Millisecond):
		}
	}
}

// errStreamRefused is a refusal of the events stream itself (401, 404...),
// which reconnecting does not cure.
var errStreamRefused = errors.New("events stream refused")

// events reads one connection of the run's events stream after lastID,
// feeding p; it returns the result when the stream delivered it.
func (c *apiClient) events(ctx context.Context, runID, lastID string, p *progress) (*runResult, error) {
	req, err := c.request(ctx, http.MethodGet, "/api/v1/workflows/"+url.PathEscape(runID)+"/events", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	res, err := c.stream.Do(req)
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: %w", errStreamRefused, apiError(res))
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 2<<20)
	var id, typ, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			switch typ {
			case "result":
				var r runResult
				if err := json.Unmarshal([]byte(data), &r); err != nil {
					return nil, fmt.Errorf("events: result: %w", err)
				}
				return &r, nil
			case "run", "task":
				var e runEvent
				if err := json.Unmarshal([]byte(data), &e); err == nil {
					p.event(runID, typ, e)
				}
				if id != "" {
					p.lastID = id
				}
			case "error":
				return nil, fmt.Errorf("events: %s", data)
			}
			id, typ, data = "", "", ""
		case strings.HasPrefix(line, "id:"):
			id = strings.TrimSpace(strings.TrimPrefix(line, "id:"))
		case strings.HasPrefix(line, "event:"):
			typ = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			data = strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " ")
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	return nil, errors.New("events: the stream ended before the result")
}

// progress shows a run's task progress: on a terminal one line redrawn in
// place (a bar of finished tasks over the tasks seen so far, and the task
// that last changed), elsewhere one plain line per event.
type progress struct {
	w      io.Writer
	tty    bool
	drawn  bool
	lastID string
	order  []int
	tasks  map[int]runEvent
}

func newProgress(w io.Writer) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	return &progress{w: w, tty: tty, tasks: map[int]runEvent{}}
}

// finished reports whether a task status is final.
func finished(status string) bool {
	return status == "completed" || status == "failed" || status == "cancelled" || status == "cached"
}

func (p *progress) event(runID, typ string, e runEvent) {
	if typ == "task" {
		if _, ok := p.tasks[e.Seq]; !ok {
			p.order = append(p.order, e.Seq)
		}
		p.tasks[e.Seq] = e
	}
	if !p.tty {
		switch {
		case typ == "run" && e.Status == "paused":
			fmt.Fprintf(p.w, "run %s paused (kowai workflow status %s shows the input it waits for, if any)\n", runID, runID)
		case typ == "run":
			fmt.Fprintf(p.w, "run %s %s\n", runID, e.Status)
		default:
			line := fmt.Sprintf("task %d %s (%s) %s", e.Seq, e.Name, e.Kind, e.Status)
			if e.Attempt > 1 {
				line += " attempt " + strconv.Itoa(e.Attempt)
			}
			if e.Error != "" {
				line += ": " + e.Error
			}
			fmt.Fprintln(p.w, line)
		}
		return
	}
	done := 0
	for _, t := range p.tasks {
		if finished(t.Status) {
			done++
		}
	}
	const width = 24
	total := len(p.tasks)
	fill := 0
	if total > 0 {
		fill = done * width / total
	}
	label := e.Status
	if typ == "task" {
		label = e.Name + " " + e.Status
	} else {
		label = "run " + label
	}
	if len(label) > 40 {
		label = label[:40]
	}
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d tasks  %-40s", strings.Repeat("#", fill), strings.Repeat("-", width-fill), done, total, label)
	p.drawn = true
}

// finish ends the progress line on a terminal.
func (p *progress) finish() {
	if p.tty && p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}
