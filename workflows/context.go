package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kowai/kowai/internal/jsonschema"
	"github.com/kowai/kowai/signatures"
	"github.com/kowai/kowai/signatures/lm"
)

// Context is what a workflow function receives: the run's identity and
// the handle through which it starts steps. It is not a context.Context on
// purpose: side effects belong in tasks, which get one.
//
// A workflow function and the steps it starts from its own goroutine are
// deterministic in program order; do not start steps from other goroutines.
type Context struct{ r *run }

// RunID returns the run's ID.
func (c *Context) RunID() string { return c.r.req.RunID }

// OwnerID returns the ID of the user who started the run ("" for the system).
func (c *Context) OwnerID() string { return c.r.req.OwnerID }

// Workflow returns the workflow's name.
func (c *Context) Workflow() string { return c.r.req.Workflow }

// Err returns why the run is stopping (cancelled, timed out, suspended by
// another step's failure), or nil while it runs.
func (c *Context) Err() error {
	if c.r.ctx.Err() != nil {
		return context.Cause(c.r.ctx)
	}
	return nil
}

func configOf(defaults taskConfig, opts []TaskOption) taskConfig {
	cfg := defaults
	for _, o := range opts {
		o(&cfg)
	}
	return cfg
}

// Future is the eventual result of a step started with Go.
type Future[T any] struct{ f *future }

// Get waits for the step and returns its result, decoded from the same
// JSON the journal holds (so a first run and a replay see equal values).
func (f *Future[T]) Get() (T, error) {
	var v T
	f.f.wait()
	if f.f.err != nil {
		return v, f.f.err
	}
	if err := json.Unmarshal(f.f.out, &v); err != nil {
		return v, fmt.Errorf("decode the result: %w", err)
	}
	return v, nil
}

func taskStep[T any](fn func(context.Context) (T, error)) stepFunc {
	return func(ctx context.Context, _ int) (json.RawMessage, lm.Usage, error) {
		v, err := fn(ctx)
		if err != nil {
			return nil, lm.Usage{}, err
		}
		out, err := json.Marshal(v)
		if err != nil {
			return nil, lm.Usage{}, Permanent(fmt.Errorf("marshal the result: %w", err))
		}
		return out, lm.Usage{}, nil
	}
}

// Go starts the task name (fn, under the task's policy) and returns at
// once; results are journaled per task. Its sequence number is taken now,
// in program order, so fan-outs replay deterministically.
func Go[T any](c *Context, name string, fn func(context.Context) (T, error), opts ...TaskOption) *Future[T] {
	return &Future[T]{c.r.start(name, KindTask, configOf(taskConfig{}, opts), taskStep(fn))}
}

// Task runs the task name and waits for it: on replay a completed task
// returns its journaled result without running.
func Task[T any](c *Context, name string, fn func(context.Context) (T, error), opts ...TaskOption) (T, error) {
	return (&Future[T]{c.r.do(name, KindTask, configOf(taskConfig{}, opts), taskStep(fn))}).Get()
}

// Map runs fn over items concurrently (bounded by Limits.MaxParallel), one
// task per item named "name[i]", waits for all, and returns the results in
// order with the failures joined. After a crash only unfinished items run.
func Map[I, T any](c *Context, name string, items []I, fn func(context.Context, I) (T, error), opts ...TaskOption) ([]T, error) {
	fs := make([]*Future[T], len(items))
	for i, item := range items {
		cfg := configOf(taskConfig{}, opts)
		if cfg.cacheInput {
			cfg.cacheKey = []any{cfg.cacheKey, item}
		}
		fs[i] = &Future[T]{c.r.start(fmt.Sprintf("%s[%d]", name, i), KindTask, cfg,
			taskStep(func(ctx context.Context) (T, error) { return fn(ctx, item) }))}
	}
	out := make([]T, len(items))
	var errs []error
	for i, f := range fs {
		v, err := f.Get()
		out[i] = v
		if err != nil {
			errs = append(errs, err)
		}
	}
	return out, joinErrors(errs)
}

// agentDefaults retries model failures three times, with jitter.
var agentDefaults = taskConfig{retry: Retry{Attempts: 3, Initial: time.Second, Max: 30 * time.Second, Jitter: 0.2}}

// Agent asks an agent for one turn as the task name; the reply's usage and
// cost are recorded on the task. A completed call is never made again.
func Agent(c *Context, name string, req AgentRequest, opts ...TaskOption) (AgentReply, error) {
	return GoAgent(c, name, req, opts...).Get()
}

// GoAgent is Agent as a future, for agent calls in parallel.
func GoAgent(c *Context, name string, req AgentRequest, opts ...TaskOption) *Future[AgentReply] {
	caller := c.r.e.svc.Agents
	req.RunID, req.OwnerID, req.Task = c.r.req.RunID, c.r.req.OwnerID, name
	f := c.r.start(name, KindAgent, configOf(agentDefaults, opts), func(ctx context.Context, _ int) (json.RawMessage, lm.Usage, error) {
		if caller == nil {
			return nil, lm.Usage{}, Permanent(fmt.Errorf("%w: no AgentCaller", ErrNotConfigured))
		}
		rep, err := caller.CallAgent(ctx, req)
		if err != nil {
			return nil, rep.Usage, err
		}
		out, err := json.Marshal(rep)
		return out, rep.Usage, err
	})
	return &Future[AgentReply]{f}
}

// Program runs a typed signature program as the task name on the
// executor's model, recording its usage on the task.
func Program[In, Out any](c *Context, name string, p *signatures.Typed[In, Out], in In, opts ...TaskOption) (Out, error) {
	model := c.r.e.svc.Model
	f := c.r.start(name, KindProgram, configOf(agentDefaults, opts), func(ctx context.Context, _ int) (json.RawMessage, lm.Usage, error) {
		if model == nil {
			return nil, lm.Usage{}, Permanent(fmt.Errorf("%w: no Model", ErrNotConfigured))
		}
		run := signatures.NewRun(model)
		v, err := p.Call(signatures.WithRun(ctx, run), in)
		if err != nil {
			return nil, run.Usage(), err
		}
		out, err := json.Marshal(v)
		if err != nil {
			return nil, run.Usage(), Permanent(fmt.Errorf("marshal the result: %w", err))
		}
		return out, run.Usage(), nil
	})
	return (&Future[Out]{f}).Get()
}

// Child runs the workflow called workflow as a sub-run and waits for its
// result (task name in this run). The child's run ID is ChildRunID(parent,
// seq), so a resumed parent awaits the same child.
func Child[P, R any](c *Context, name, workflow string, params P, opts ...TaskOption) (R, error) {
	children := c.r.e.svc.Children
	raw, err := json.Marshal(params)
	if err != nil {
		var zero R
		return zero, fmt.Errorf("child %s: marshal the parameters: %w", name, err)
	}
	parent, owner := c.r.req.RunID, c.r.req.OwnerID
	f := c.r.start(name, KindChild, configOf(taskConfig{}, opts), func(ctx context.Context, seq int) (json.RawMessage, lm.Usage, error) {
		if children == nil {
			return nil, lm.Usage{}, Permanent(fmt.Errorf("%w: no ChildRunner", ErrNotConfigured))
		}
		out, err := children.RunChild(ctx, ChildRequest{ParentRunID: parent, RunID: ChildRunID(parent, seq),
			Workflow: workflow, OwnerID: owner, Params: raw})
		return out, lm.Usage{}, err
	})
	return (&Future[R]{f}).Get()
}

// Sleep is a durable timer: its wake-up time is journaled, so a run that
// resumes elsewhere wakes at the same moment. With Limits.SuspendSleepsOver
// set, a long sleep ends the execution (ErrSuspended) and the runtime
// resumes the run at the wake-up time.
func Sleep(c *Context, name string, d time.Duration) error {
	r := c.r
	seq, prior, err := r.claim(name, KindSleep)
	if err != nil {
		return err
	}
	var wake time.Time
	if prior != nil {
		wake = prior.WakeAt
	} else {
		now := time.Now()
		wake = now.Add(d)
		if err := r.append(Entry{Seq: seq, Name: name, Kind: KindSleep, Status: StatusCompleted, Output: json.RawMessage("null"),
			Attempts: 1, WakeAt: wake, StartedAt: now, FinishedAt: now}); err != nil {
			return err
		}
	}
	left := time.Until(wake)
	if left <= 0 {
		return nil
	}
	if s := r.e.lim.SuspendSleepsOver; s > 0 && left > s {
		r.suspend(nil, wake)
		r.observe(Event{Seq: seq, Name: name, Kind: KindSleep, Status: StatusPaused, WakeAt: wake})
		return ErrSuspended
	}
	r.observe(Event{Seq: seq, Name: name, Kind: KindSleep, Status: StatusPaused, WakeAt: wake})
	t := time.NewTimer(left)
	defer t.Stop()
	select {
	case <-t.C:
		r.observe(Event{Seq: seq, Name: name, Kind: KindSleep, Status: StatusCompleted})
		return nil
	case <-r.ctx.Done():
		return context.Cause(r.ctx)
	}
}

// ContinueAsNew ends the run and continues the workflow as a new run with params:
// the run's journal is closed (it completes, naming the new run in its
// continued_as), and a new run of the same workflow, owner and parent starts with
// params and an empty journal (its continued_from names this run). A workflow that
// loops longer than one run's task limit (Limits.MaxTasks) carries its state over
// this way. The workflow returns the error it gives, as is:
//
//	if p.Page < p.Pages {
//		return 0, workflows.ContinueAsNew(c, Params{Page: p.Page + 1, Pages: p.Pages, Total: total})
//	}
//
// The parameters are validated against the workflow's schema when the workflow
// returns; invalid ones fail the run. Steps still in flight are stopped, like on
// any return.
func ContinueAsNew[P any](c *Context, params P) error {
	b, err := json.Marshal(params)
	if err != nil {
		return fmt.Errorf("workflows: continue-as-new parameters of run %s: %w", c.RunID(), err)
	}
	return &continueError{params: b}
}

// continueError carries ContinueAsNew's parameters to the executor.
type continueError struct{ params json.RawMessage }

func (e *continueError) Error() string { return ErrContinuedAsNew.Error() }

// Is makes errors.Is(err, ErrContinuedAsNew) hold.
func (e *continueError) Is(target error) bool { return target == ErrContinuedAsNew }

// WaitForInput pauses the run until a person supplies input of type T
// (POST /workflows/{run_id}/resume, validated against T's JSON schema).
// The first execution returns ErrSuspended, which the workflow should
// return; the execution after the input arrives returns the input.
func WaitForInput[T any](c *Context, name string) (T, error) {
	var v T
	r := c.r
	seq, prior, err := r.claim(name, KindInput)
	if err != nil {
		return v, err
	}
	if prior != nil {
		if err := json.Unmarshal(prior.Output, &v); err != nil {
			return v, fmt.Errorf("decode the input of %s: %w", name, err)
		}
		return v, nil
	}
	schema, err := json.Marshal(jsonschema.For[T]())
	if err != nil {
		return v, fmt.Errorf("the input schema of %s: %w", name, err)
	}
	r.suspend(&Waiting{Seq: seq, Name: name, Schema: schema}, time.Time{})
	r.observe(Event{Seq: seq, Name: name, Kind: KindInput, Status: StatusPaused})
	return v, ErrSuspended
}

func joinErrors(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return fmt.Errorf("%d of the tasks failed: %w", len(errs), errors.Join(errs...))
}
