// Package builtin holds kowai's built-in workflows, the seed's own examples:
// complex-analysis, intelligent-chat, research and approval. Each runs on the
// offline model out of the box: they use only the built-in agents ("chat",
// "analysis") and a signature program on the executor's model.
package builtin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kowai/kowai/signatures"
	"github.com/kowai/kowai/workflows"
)

// Profiles stores the small JSON profile document of each user that
// intelligent-chat keeps (GET /api/v1/users/me/profile reads it).
type Profiles interface {
	// Profile returns the user's profile, or nil when there is none yet.
	Profile(ctx context.Context, userID string) (json.RawMessage, error)
	// SaveProfile replaces the user's profile.
	SaveProfile(ctx context.Context, userID string, doc json.RawMessage) error
}

// Options are what the built-ins need besides the executor's services.
type Options struct {
	// Profiles keeps intelligent-chat's per-user profiles; nil leaves
	// intelligent-chat unregistered.
	Profiles Profiles
}

// Register adds the built-in workflows to reg.
func Register(reg *workflows.Registry, opts Options) error {
	report, err := signatures.NewTyped[reportIn, reportOut](func(s signatures.Signature) (signatures.Module, error) {
		return signatures.NewPredict(s, signatures.PredictOptions{}), nil
	})
	if err != nil {
		return fmt.Errorf("builtin: report program: %w", err)
	}
	errs := []error{
		workflows.Register(reg, "complex-analysis", func(c *workflows.Context, p AnalysisParams) (AnalysisResult, error) {
			return complexAnalysis(c, p, report)
		}, workflows.Describe("Analyze data with the analysis agent, write a report with a signature program, keep both as the result"),
			workflows.Timeout(30*time.Minute)),
		workflows.Register(reg, "research", research,
			workflows.Describe("A planner splits a question, agents answer the parts in parallel, a synthesizer combines them"),
			workflows.Timeout(30*time.Minute)),
		workflows.Register(reg, "approval", approval,
			workflows.Describe("Draft a reply with an agent, wait for a person to approve or edit it, then finalize")),
	}
	if opts.Profiles != nil {
		errs = append(errs, workflows.Register(reg, "intelligent-chat", func(c *workflows.Context, p ChatParams) (ChatResult, error) {
			return intelligentChat(c, p, opts.Profiles)
		}, workflows.Describe("Answer a message with the chat agent while analyzing it, then update the user's profile"),
			workflows.Timeout(10*time.Minute)))
	}
	return errors.Join(errs...)
}

// AnalysisParams are complex-analysis's parameters.
type AnalysisParams struct {
	Data  string `json:"data" doc:"the data to analyze (text, CSV, JSON...)"`
	Focus string `json:"focus,omitempty" doc:"what the analysis should look at"`
}

// AnalysisResult is complex-analysis's result.
type AnalysisResult struct {
	Analysis string `json:"analysis"`
	Report   string `json:"report"`
}

type reportIn struct {
	Analysis string `json:"analysis" desc:"findings of an analysis"`
}

type reportOut struct {
	Report string `json:"report" desc:"a short report of the findings for a reader"`
}

func complexAnalysis(c *workflows.Context, p AnalysisParams, report *signatures.Typed[reportIn, reportOut]) (AnalysisResult, error) {
	msg := "Analyze this data"
	if p.Focus != "" {
		msg += " focusing on " + p.Focus
	}
	found, err := workflows.Agent(c, "analyze", workflows.AgentRequest{Agent: "analysis", Message: msg + ":\n" + p.Data})
	if err != nil {
		return AnalysisResult{}, err
	}
	rep, err := workflows.Program(c, "report", report, reportIn{Analysis: found.Content})
	if err != nil {
		return AnalysisResult{}, err
	}
	return AnalysisResult{Analysis: found.Content, Report: rep.Report}, nil
}

// ChatParams are intelligent-chat's parameters.
type ChatParams struct {
	Message string `json:"message" doc:"the user's message"`
}

// ChatResult is intelligent-chat's result.
type ChatResult struct {
	Reply    string          `json:"reply"`
	Analysis string          `json:"analysis"`
	Profile  json.RawMessage `json:"profile"`
}

// profile is the document intelligent-chat keeps per user.
type profile struct {
	Messages     int       `json:"messages"`
	LastMessage  string    `json:"last_message"`
	LastAnalysis string    `json:"last_analysis"`
	Topics       []string  `json:"topics"`
	UpdatedAt    time.Time `json:"updated_at"`
}

func intelligentChat(c *workflows.Context, p ChatParams, profiles Profiles) (ChatResult, error) {
	// Both agent calls run at once; each is journaled on its own.
	reply := workflows.GoAgent(c, "reply", workflows.AgentRequest{Agent: "chat", Message: p.Message})
	analysis := workflows.GoAgent(c, "analyze-conversation", workflows.AgentRequest{Agent: "analysis",
		Message: "Analyze the intent and topics of this message:\n" + p.Message})
	r, rerr := reply.Get()
	a, aerr := analysis.Get()
	if err := errors.Join(rerr, aerr); err != nil {
		return ChatResult{}, err
	}
	owner := c.OwnerID()
	doc, err := workflows.Task(c, "update-profile", func(ctx context.Context) (json.RawMessage, error) {
		var prof profile
		old, err := profiles.Profile(ctx, owner)
		if err != nil {
			return nil, err
		}
		if len(old) > 0 {
			if err := json.Unmarshal(old, &prof); err != nil {
				prof = profile{} // a profile this version cannot read starts over
			}
		}
		prof.Messages++
		prof.LastMessage, prof.LastAnalysis, prof.UpdatedAt = clip(p.Message, 500), clip(a.Content, 1000), time.Now().UTC()
		prof.Topics = mergeTopics(prof.Topics, p.Message)
		doc, err := json.Marshal(prof)
		if err != nil {
			return nil, err
		}
		return doc, profiles.SaveProfile(ctx, owner, doc)
	}, workflows.WithRetry(workflows.Retry{Attempts: 3, Initial: 200 * time.Millisecond}))
	if err != nil {
		return ChatResult{}, err
	}
	return ChatResult{Reply: r.Content, Analysis: a.Content, Profile: doc}, nil
}

// mergeTopics keeps the user's 10 most recent distinct long words as topics.
func mergeTopics(topics []string, message string) []string {
	for _, w := range strings.FieldsFunc(strings.ToLower(message), func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127)
	}) {
		if len([]rune(w)) < 5 {
			continue
		}
		kept := topics[:0]
		for _, t := range topics {
			if t != w {
				kept = append(kept, t)
			}
		}
		topics = append(kept, w)
	}
	if len(topics) > 10 {
		topics = topics[len(topics)-10:]
	}
	return topics
}

func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n])
	}
	return s
}

// ResearchParams are research's parameters.
type ResearchParams struct {
	Question string `json:"question" doc:"the question to research"`
	// Parts bounds the sub-questions (default 3, at most 8).
	Parts int `json:"parts,omitempty" doc:"how many sub-questions at most (1 to 8, default 3)"`
}

// ResearchResult is research's result.
type ResearchResult struct {
	Plan      []string `json:"plan"`
	Answers   []string `json:"answers"`
	Synthesis string   `json:"synthesis"`
}

func research(c *workflows.Context, p ResearchParams) (ResearchResult, error) {
	parts := p.Parts
	if parts <= 0 {
		parts = 3
	}
	if parts > 8 {
		return ResearchResult{}, workflows.Permanent(errors.New("parts must be at most 8"))
	}
	plan, err := workflows.Agent(c, "plan", workflows.AgentRequest{Agent: "analysis",
		Message: fmt.Sprintf("Split this question into at most %d sub-questions, one per line:\n%s", parts, p.Question)})
	if err != nil {
		return ResearchResult{}, err
	}
	subs := subQuestions(plan.Content, p.Question, parts)
	// One agent call per sub-question, all at once; a crash redoes only the
	// unanswered ones.
	futures := make([]*workflows.Future[workflows.AgentReply], len(subs))
	for i, q := range subs {
		futures[i] = workflows.GoAgent(c, fmt.Sprintf("answer[%d]", i), workflows.AgentRequest{Agent: "chat", Message: q})
	}
	answers := make([]string, len(subs))
	var errs []error
	for i, f := range futures {
		r, err := f.Get()
		answers[i], errs = r.Content, append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return ResearchResult{}, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Combine these answers into one answer to %q:\n", p.Question)
	for i, a := range answers {
		fmt.Fprintf(&b, "%d. %s: %s\n", i+1, subs[i], a)
	}
	synth, err := workflows.Agent(c, "synthesize", workflows.AgentRequest{Agent: "chat", Message: b.String()})
	if err != nil {
		return ResearchResult{}, err
	}
	return ResearchResult{Plan: subs, Answers: answers, Synthesis: synth.Content}, nil
}

// subQuestions reads the planner's lines that look like questions; a plan with
// fewer than two falls back to standard angles on the question, so the fan-out
// is the same on any model.
func subQuestions(plan, question string, n int) []string {
	var out []string
	for _, line := range strings.Split(plan, "\n") {
		line = strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(line), "-*0123456789.) "))
		if strings.HasSuffix(line, "?") && len(line) > 3 {
			out = append(out, line)
		}
	}
	if len(out) < 2 {
		out = nil
		for _, angle := range []string{"What is the background of", "What is known today about", "What are the open problems of",
			"What are the risks of", "What are the costs of", "Who works on", "What comes next for", "How would one measure"} {
			out = append(out, angle+" "+strings.TrimSuffix(question, "?")+"?")
		}
	}
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// ApprovalParams are approval's parameters.
type ApprovalParams struct {
	Request string `json:"request" doc:"what the reply should answer"`
}

// Decision is the input approval waits for.
type Decision struct {
	Approved bool   `json:"approved" doc:"true to send the draft (or the edited text)"`
	Text     string `json:"text,omitempty" doc:"an edited text to send instead of the draft"`
	Comment  string `json:"comment,omitempty"`
}

// ApprovalResult is approval's result.
type ApprovalResult struct {
	Status  string `json:"status" doc:"approved or rejected"`
	Draft   string `json:"draft"`
	Final   string `json:"final,omitempty"`
	Comment string `json:"comment,omitempty"`
}

func approval(c *workflows.Context, p ApprovalParams) (ApprovalResult, error) {
	draft, err := workflows.Agent(c, "draft", workflows.AgentRequest{Agent: "chat", Message: "Draft a reply to: " + p.Request})
	if err != nil {
		return ApprovalResult{}, err
	}
	d, err := workflows.WaitForInput[Decision](c, "review")
	if err != nil {
		return ApprovalResult{}, err
	}
	return workflows.Task(c, "finalize", func(context.Context) (ApprovalResult, error) {
		res := ApprovalResult{Status: "rejected", Draft: draft.Content, Comment: d.Comment}
		if d.Approved {
			res.Status, res.Final = "approved", draft.Content
			if d.Text != "" {
				res.Final = d.Text
			}
		}
		return res, nil
	})
}
