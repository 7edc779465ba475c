// Package workflows is kowai's workflow programming model: durable,
// multi-step jobs written as plain Go functions (the DBOS/Temporal model,
// with Prefect's vocabulary). It describes and executes programs; the
// actors package runs them as grains and persists their journals.
//
// # Workflows and tasks
//
// A workflow is a named function over a typed parameter struct, registered
// once. The struct's JSON schema is derived by reflection (the same
// reflector as the gateway's OpenAPI document) and triggers are validated
// against it strictly, with field errors:
//
//	type Params struct {
//		Topic string `json:"topic" doc:"what to research"`
//	}
//
//	workflows.Register(reg, "summarize", func(c *workflows.Context, p Params) (string, error) {
//		notes, err := workflows.Task(c, "fetch", func(ctx context.Context) (string, error) {
//			return fetch(ctx, p.Topic)
//		}, workflows.WithRetry(workflows.Retry{Attempts: 3, Initial: time.Second, Jitter: 0.2}))
//		if err != nil {
//			return "", err
//		}
//		reply, err := workflows.Agent(c, "summarize", workflows.AgentRequest{Agent: "analysis", Message: notes})
//		return reply.Content, err
//	})
//
// Every side effect is a step: Task (a Go function), Go/Map (the same,
// concurrently, as futures), Agent (a turn on an agent, usage recorded),
// Program (a typed signature program), Child (a sub-workflow, awaited),
// Sleep (a durable timer) and WaitForInput (a person's input).
//
// # Journal and replay
//
// Each step gets a sequence number in program order and its result is
// appended to the run's Journal, unique per (run, seq), before the workflow
// sees it. A DeferredJournal may take a result before it is durable: then it
// is made durable before the next step starts an attempt and before the
// workflow waits for an unfinished step, and what is still deferred when the
// workflow returns commits with the run's outcome. A resumed run executes the function again from the top; steps
// found in the journal return their recorded result without running. So a
// finished step never runs twice and a model call is never paid twice; a
// step that was in flight when its node died runs again (at least once),
// its earlier attempts counted (RunRequest.PriorAttempts).
//
// The determinism rule: a workflow function branches only on its
// parameters and on step results, never on time, randomness or anything
// read outside a step. A replay that meets a step whose name or kind differs
// from the journal's fails the run with ErrNondeterministic.
//
// # Policies
//
// Per task: retries (Retry: attempts, exponential backoff with a cap and
// jitter), a per-attempt timeout (WithTimeout), the retryable
// classification (IsRetryable, Permanent, Retryable, RetryIf) and result
// caching by key with an expiry (WithCache). Per workflow: an overall
// Timeout and Concurrency caps the runtime enforces. Per run: Limits
// (parallel steps, steps, result size).
//
// # Pausing
//
// WaitForInput and a long Sleep suspend the run: the step returns
// ErrSuspended, later steps do not start, and Executor.Run returns a paused
// Outcome (Waiting with the input's schema, or WakeAt). Executor.SupplyInput
// validates and journals the input; the next Run continues past the wait.
//
// # Continue-as-new
//
// A workflow that would run past Limits.MaxTasks returns ContinueAsNew(c,
// params): its Outcome is completed with ContinueWith set to the validated
// parameters, and the runtime starts the run ContinuedRunID(runID) of the
// same workflow with them and an empty journal.
//
// # Extension points
//
// The runtime injects Services: the Journal (persistence), an AgentCaller
// (agent grains), a Model for programs, a ChildRunner (child run grains), a
// Cache and an Observer receiving every state change as an Event.
package workflows
