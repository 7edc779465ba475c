package workflows_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/kowai/kowai/workflows"
)

// The README's worked example: a workflow with a retried task, an agent call
// fanned out per item, and a person's approval.
type DigestParams struct {
	Topics []string `json:"topics" doc:"what to summarize"`
}

type Approval struct {
	Approved bool `json:"approved"`
}

func registerDigest(reg *workflows.Registry) error {
	return workflows.Register(reg, "digest", func(c *workflows.Context, p DigestParams) (string, error) {
		clean, err := workflows.Task(c, "normalize", func(ctx context.Context) ([]string, error) {
			var out []string
			for _, t := range p.Topics {
				out = append(out, strings.ToLower(strings.TrimSpace(t)))
			}
			return out, nil
		}, workflows.WithRetry(workflows.Retry{Attempts: 3, Initial: time.Second, Jitter: 0.2}))
		if err != nil {
			return "", err
		}
		futures := make([]*workflows.Future[workflows.AgentReply], len(clean))
		for i, topic := range clean { // one agent call per topic, in parallel
			futures[i] = workflows.GoAgent(c, "summarize-"+topic, workflows.AgentRequest{Agent: "chat", Message: "Summarize " + topic})
		}
		var parts []string
		for _, f := range futures {
			r, err := f.Get()
			if err != nil {
				return "", err
			}
			parts = append(parts, r.Content)
		}
		ok, err := workflows.WaitForInput[Approval](c, "approve")
		if err != nil || !ok.Approved {
			return "", err // ErrSuspended while waiting; nil (empty digest) when rejected
		}
		return strings.Join(parts, "\n"), nil
	}, workflows.Describe("Summarize topics with an agent, publish once approved"))
}

func Example() {
	reg := workflows.NewRegistry()
	if err := registerDigest(reg); err != nil {
		panic(err)
	}
	agents := workflows.AgentCallerFunc(func(_ context.Context, r workflows.AgentRequest) (workflows.AgentReply, error) {
		return workflows.AgentReply{Content: strings.TrimPrefix(r.Message, "Summarize ") + ": ok"}, nil
	})
	exec, _ := workflows.NewExecutor(reg, workflows.Services{Journal: workflows.NewMemoryJournal(), Agents: agents}, workflows.Limits{})
	req := workflows.RunRequest{RunID: "run-1", Workflow: "digest", Params: json.RawMessage(`{"topics":[" Go ","Actors"]}`)}

	out := exec.Run(context.Background(), req)
	fmt.Println(out.Status, out.Waiting.Name)
	_ = exec.SupplyInput(context.Background(), "run-1", *out.Waiting, json.RawMessage(`{"approved":true}`))
	out = exec.Run(context.Background(), req) // replays the journal, then finishes
	fmt.Println(out.Status, string(out.Result))
	// Output:
	// paused approve
	// completed "go: ok\nactors: ok"
}
