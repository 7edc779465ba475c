package builtin_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/signatures/lm/offline"
	"github.com/kowai/kowai/workflows"
	"github.com/kowai/kowai/workflows/builtin"
)

type memProfiles struct {
	mu sync.Mutex
	m  map[string]json.RawMessage
}

func (p *memProfiles) Profile(_ context.Context, id string) (json.RawMessage, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m[id], nil
}

func (p *memProfiles) SaveProfile(_ context.Context, id string, doc json.RawMessage) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.m[id] = doc
	return nil
}

func TestBuiltins(t *testing.T) {
	reg := workflows.NewRegistry()
	profiles := &memProfiles{m: map[string]json.RawMessage{}}
	if err := builtin.Register(reg, builtin.Options{Profiles: profiles}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var asked []string
	agents := workflows.AgentCallerFunc(func(_ context.Context, req workflows.AgentRequest) (workflows.AgentReply, error) {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, req.Agent+":"+req.Task)
		return workflows.AgentReply{Content: req.Agent + " says: " + strings.SplitN(req.Message, "\n", 2)[0], Usage: lm.Usage{Calls: 1}}, nil
	})
	journal := workflows.NewMemoryJournal()
	exec, err := workflows.NewExecutor(reg, workflows.Services{Journal: journal, Agents: agents,
		Model: lm.NewProvider("offline", "kowai-offline", offline.New())}, workflows.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	run := func(id, name, params string) workflows.Outcome {
		d, err := reg.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		p, err := d.ValidateParams(json.RawMessage(params))
		if err != nil {
			t.Fatalf("%s params: %v", name, err)
		}
		return exec.Run(t.Context(), workflows.RunRequest{RunID: id, Workflow: name, OwnerID: "u1", Params: p})
	}

	out := run("a", "complex-analysis", `{"data":"1,2,3","focus":"trend"}`)
	var ar builtin.AnalysisResult
	if out.Status != workflows.StatusCompleted || json.Unmarshal(out.Result, &ar) != nil || ar.Analysis == "" || ar.Report == "" {
		t.Fatalf("complex-analysis = %+v (%s)", out, out.Result)
	}

	for i := range 2 {
		out = run("c"+string(rune('0'+i)), "intelligent-chat", `{"message":"tell me about durable workflows"}`)
		if out.Status != workflows.StatusCompleted {
			t.Fatalf("intelligent-chat = %+v", out)
		}
	}
	var prof struct {
		Messages int      `json:"messages"`
		Topics   []string `json:"topics"`
	}
	if err := json.Unmarshal(profiles.m["u1"], &prof); err != nil || prof.Messages != 2 || strings.Join(prof.Topics, ",") != "about,durable,workflows" {
		t.Fatalf("profile %s: %v", profiles.m["u1"], err)
	}

	out = run("r", "research", `{"question":"How do actors scale?","parts":3}`)
	var rr builtin.ResearchResult
	if out.Status != workflows.StatusCompleted || json.Unmarshal(out.Result, &rr) != nil || len(rr.Plan) != 3 || len(rr.Answers) != 3 || rr.Synthesis == "" {
		t.Fatalf("research = %+v (%s)", out, out.Result)
	}
	if out := run("r2", "research", `{"question":"q","parts":9}`); out.Status != workflows.StatusFailed {
		t.Fatalf("research with 9 parts = %+v", out)
	}

	out = run("p", "approval", `{"request":"refund please"}`)
	if out.Status != workflows.StatusPaused || out.Waiting == nil || out.Waiting.Name != "review" {
		t.Fatalf("approval = %+v", out)
	}
	if err := exec.SupplyInput(t.Context(), "p", *out.Waiting, json.RawMessage(`{"approved":true,"text":"Refund sent."}`)); err != nil {
		t.Fatal(err)
	}
	out = run("p", "approval", `{"request":"refund please"}`)
	var ap builtin.ApprovalResult
	if out.Status != workflows.StatusCompleted || json.Unmarshal(out.Result, &ap) != nil || ap.Status != "approved" || ap.Final != "Refund sent." {
		t.Fatalf("approval resumed = %+v (%s)", out, out.Result)
	}
	if _, err := reg.Lookup("intelligent-chat"); err != nil {
		t.Fatal(err)
	}
}
