package agents_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/kowai/kowai/agents"
	"github.com/kowai/kowai/signatures"
	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/signatures/lm/lmtest"
	"github.com/kowai/kowai/signatures/lm/offline"
)

var fixedNow = func() time.Time { return time.Date(2025, 3, 1, 12, 30, 0, 0, time.UTC) }

func registry(t *testing.T) *agents.Registry {
	t.Helper()
	r, err := agents.NewRegistry(agents.Builtins(fixedNow)...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func offlineModel() lm.LM { return lm.NewProvider("offline", "kowai-offline", offline.New()) }

func TestEvaluate(t *testing.T) {
	cases := []struct {
		expr string
		want float64
		err  bool
	}{
		{"1 + 2 * 3", 7, false},
		{"(1 + 2) * 3", 9, false},
		{"-4 + +2", -2, false},
		{"7 % 4", 3, false},
		{"pow(2, 10) / 4", 256, false},
		{"sqrt(16) + abs(-1.5)", 5.5, false},
		{"min(3, max(1, 2))", 2, false},
		{"round(2.5) + floor(1.9) + ceil(0.1)", 5, false},
		{"1 / 0", 0, true},
		{"2 ^ 3", 0, true},
		{"os.Exit(1)", 0, true},
		{"x + 1", 0, true},
		{`"a" + "b"`, 0, true},
		{"pow(2)", 0, true},
		{"sqrt(-1)", 0, true},
		{"1 +", 0, true},
		{strings.Repeat("1+", 300) + "1", 0, true},
	}
	for _, tc := range cases {
		got, err := agents.Evaluate(tc.expr)
		if tc.err {
			if !errors.Is(err, agents.ErrExpression) {
				t.Errorf("Evaluate(%q) = %v, %v; want ErrExpression", tc.expr, got, err)
			}
			continue
		}
		if err != nil || math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("Evaluate(%q) = %v, %v; want %v", tc.expr, got, err, tc.want)
		}
	}
}

func TestTools(t *testing.T) {
	calc := agents.Calculator()
	if got, err := calc.Call(t.Context(), map[string]any{"expression": "6*7"}); err != nil || got != "42" {
		t.Fatalf("calculator = %q, %v", got, err)
	}
	clock := agents.Clock(fixedNow)
	if got, err := clock.Call(t.Context(), nil); err != nil || got != "2025-03-01T12:30:00Z" {
		t.Fatalf("clock = %q, %v", got, err)
	}
}

func TestConfig(t *testing.T) {
	r := registry(t)
	cases := []struct {
		typ, raw string
		ok       bool
		policy   string
		window   int
	}{
		{"chat", ``, true, agents.BusyEnqueue, agents.DefaultHistoryWindow},
		{"chat", `{}`, true, agents.BusyEnqueue, agents.DefaultHistoryWindow},
		{"chat", `{"busy_policy":"interrupt","history_window":0}`, true, agents.BusyInterrupt, 0},
		{"chat", `{"busy_policy":"later"}`, false, "", 0},
		{"chat", `{"history_window":-1}`, false, "", 0},
		{"chat", `{"history_window":1.5}`, false, "", 0},
		{"chat", `{"temperature":"hot"}`, false, "", 0},
		{"chat", `{"max_steps":3}`, false, "", 0},
		{"react", `{"max_steps":3}`, true, agents.BusyEnqueue, agents.DefaultHistoryWindow},
		{"react", `{"max_steps":30}`, false, "", 0},
		{"chat", `[1]`, false, "", 0},
		{"nope", `{}`, false, "", 0},
	}
	for _, tc := range cases {
		cfg, err := r.ParseConfig(tc.typ, json.RawMessage(tc.raw))
		if !tc.ok {
			if err == nil {
				t.Errorf("%s %s: accepted", tc.typ, tc.raw)
			}
			continue
		}
		if err != nil || cfg.BusyPolicy != tc.policy || cfg.HistoryWindow != tc.window {
			t.Errorf("%s %s: %+v, %v", tc.typ, tc.raw, cfg, err)
		}
	}
}

func TestRegistry(t *testing.T) {
	r := registry(t)
	var names []string
	for _, info := range r.List() {
		names = append(names, info.Name)
		var schema map[string]any
		if err := json.Unmarshal(info.ConfigSchema, &schema); err != nil || schema["type"] != "object" {
			t.Errorf("%s: schema %s: %v", info.Name, info.ConfigSchema, err)
		}
		if info.Signature == "" || info.Description == "" {
			t.Errorf("%s: incomplete info %+v", info.Name, info)
		}
	}
	if got := strings.Join(names, ","); got != "chat,advanced-chat,analysis,react" {
		t.Fatalf("types = %s", got)
	}
	if tools := r.List()[3].Tools; len(tools) != 2 || tools[0].Name != "calculator" || tools[1].Name != "clock" {
		t.Fatalf("react tools = %+v", tools)
	}
	bad := []agents.Type{
		{Name: ""},
		{Name: "x"},
		{Name: "x", Signature: "->", New: agents.Chat().New},
		{Name: "x", New: agents.Chat().New, Config: struct {
			Policy string `json:"busy_policy"`
		}{}},
	}
	for _, b := range bad {
		if _, err := agents.NewRegistry(b); !errors.Is(err, agents.ErrInvalidType) {
			t.Errorf("NewRegistry(%+v) err = %v", b, err)
		}
	}
	if _, err := agents.NewRegistry(agents.Chat(), agents.Chat()); !errors.Is(err, agents.ErrInvalidType) {
		t.Errorf("duplicate: err = %v", err)
	}
	if _, _, err := r.Compile(agents.Spec{ID: "a", Type: "nope"}); !errors.Is(err, agents.ErrUnknownType) {
		t.Errorf("unknown type: err = %v", err)
	}
	if _, _, err := r.Compile(agents.Spec{ID: "a", Type: "chat", Signature: "message -> "}); err == nil {
		t.Error("bad signature compiled")
	}
}

// Every built-in type answers through the offline model, which follows the prompt
// format of any signature, so the whole program (parsing included) is exercised.
func TestBuiltinsAnswerOffline(t *testing.T) {
	r := registry(t)
	for _, info := range r.List() {
		t.Run(info.Name, func(t *testing.T) {
			_, prog, err := r.Compile(agents.Spec{ID: agents.BuiltinID(info.Name), Type: info.Name})
			if err != nil {
				t.Fatal(err)
			}
			var streamed strings.Builder
			out, err := prog.Reply(t.Context(), offlineModel(), agents.Input{
				Message: "What is 6 times 7?",
				History: signatures.Messages{{Role: "user", Content: "hi"}, {Role: "assistant", Content: "hello"}, {Role: "user", Content: "lost"}},
				Stream: func(_ context.Context, chunk string) error {
					streamed.WriteString(chunk)
					return nil
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			if out.Text == "" || out.Usage.Calls == 0 || out.Model != "offline:kowai-offline" {
				t.Fatalf("output = %+v", out)
			}
			if info.Name != "analysis" && streamed.Len() == 0 {
				t.Fatal("nothing streamed")
			}
		})
	}
}

// The chat program sends the message and the answered turns of the history; the
// scripted reply becomes the text.
func TestChatPrompt(t *testing.T) {
	r := registry(t)
	_, prog, err := r.Compile(agents.Spec{ID: "c", Type: "chat", Instructions: "Talk like a pirate."})
	if err != nil {
		t.Fatal(err)
	}
	model := lmtest.Texts("[[ ## response ## ]]\nArr, 42.\n\n[[ ## completed ## ]]")
	out, err := prog.Reply(t.Context(), model, agents.Input{Message: "six times seven?",
		History: signatures.Messages{{Role: "user", Content: "ahoy"}, {Role: "assistant", Content: "ahoy matey"},
			{Role: "user", Content: "unanswered"}, {Role: "system", Content: "No reply: the model failed"}}})
	if err != nil || out.Text != "Arr, 42." {
		t.Fatalf("reply = %+v, %v", out, err)
	}
	req := model.Requests()[0]
	prompt := lm.MessagesText(req.Messages)
	for _, want := range []string{"Talk like a pirate.", "ahoy matey", "six times seven?"} {
		if !strings.Contains(prompt, want) {
			t.Errorf("prompt lacks %q", want)
		}
	}
	if strings.Contains(prompt, "unanswered") || strings.Contains(prompt, "No reply") {
		t.Error("prompt holds a turn without a reply or a recorded failure")
	}
	if len(req.Messages) != 4 { // system, history pair, message
		t.Errorf("messages = %d, want 4", len(req.Messages))
	}
}

// The react program calls the calculator with the model's arguments and answers from
// the observation; a model failure comes back with the usage so far.
func TestReactUsesTools(t *testing.T) {
	r := registry(t)
	_, prog, err := r.Compile(agents.Spec{ID: "r", Type: "react", Config: []byte(`{"max_steps":3}`)})
	if err != nil {
		t.Fatal(err)
	}
	model := lmtest.Texts(
		"[[ ## next_thought ## ]]\nI should compute.\n\n[[ ## next_tool_name ## ]]\ncalculator\n\n[[ ## next_tool_args ## ]]\n{\"expression\": \"6*7\"}\n\n[[ ## completed ## ]]",
		"[[ ## next_thought ## ]]\nI know it.\n\n[[ ## next_tool_name ## ]]\nfinish\n\n[[ ## next_tool_args ## ]]\n{}\n\n[[ ## completed ## ]]",
		"[[ ## reasoning ## ]]\nThe calculator said 42.\n\n[[ ## response ## ]]\nIt is 42.\n\n[[ ## completed ## ]]",
	)
	out, err := prog.Reply(t.Context(), model, agents.Input{Message: "6*7?"})
	if err != nil || out.Text != "It is 42." {
		t.Fatalf("reply = %+v, %v", out, err)
	}
	traj := fmt.Sprint(out.Details["trajectory"])
	if !strings.Contains(traj, "[[ ## tool_name_0 ## ]]\ncalculator") || !strings.Contains(traj, "[[ ## observation_0 ## ]]\n42") {
		t.Fatalf("trajectory = %q", traj)
	}
	if len(model.Requests()[0].Tools) != 3 {
		t.Fatalf("tools offered natively: %d, want calculator, clock and finish", len(model.Requests()[0].Tools))
	}
	if !strings.Contains(lm.MessagesText(model.Requests()[2].Messages), "[[ ## observation_0 ## ]]\n42") {
		t.Fatal("extract step did not see the observation")
	}

	failing := lmtest.NewScripted([]lmtest.Output{{Err: lm.ErrUnavailable}})
	if _, err := prog.Reply(t.Context(), failing, agents.Input{Message: "x"}); !errors.Is(err, lm.ErrUnavailable) {
		t.Fatalf("failing model: err = %v", err)
	}
}

// TestAdvancedChat runs the multi-stage program on the offline model: the
// reply is the response stage's text, streamed as it is written, and the
// other stages' outputs are kept as details.
func TestAdvancedChat(t *testing.T) {
	_, prog, err := registry(t).Compile(agents.Spec{ID: "adv", Type: "advanced-chat", Instructions: "Be brief."})
	if err != nil {
		t.Fatal(err)
	}
	var streamed strings.Builder
	out, err := prog.Reply(t.Context(), lm.NewProvider("offline", "kowai-offline", offline.New()), agents.Input{
		Message: "Hello there",
		Stream:  func(_ context.Context, chunk string) error { streamed.WriteString(chunk); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.Text, "offline model") || strings.TrimSpace(streamed.String()) != out.Text {
		t.Fatalf("reply %q, streamed %q", out.Text, streamed.String())
	}
	q, ok := out.Details["quality"].(float64)
	if !ok || q < 0 || q > 1 || out.Details["intent"] == nil || out.Details["reasoning"] == nil || out.Usage.Calls != 3 {
		t.Fatalf("details %v, usage %+v", out.Details, out.Usage)
	}
}

// An agent's own signature is honoured by chat and refused, not ignored, by the types
// that run signatures of their own.
func TestOwnSignature(t *testing.T) {
	r := registry(t)
	if err := r.CheckSignature("chat", "question -> answer"); err != nil {
		t.Fatalf("chat: %v", err)
	}
	for _, typ := range []string{"advanced-chat", "analysis", "react"} {
		if err := r.CheckSignature(typ, "question -> answer"); err == nil {
			t.Errorf("%s accepted another signature", typ)
		}
		if _, _, err := r.Compile(agents.Spec{ID: "x", Type: typ, Signature: "question -> answer"}); err == nil {
			t.Errorf("%s compiled another signature", typ)
		}
		if err := r.CheckSignature(typ, ""); err != nil {
			t.Errorf("%s: the type's own signature: %v", typ, err)
		}
	}
	if err := r.CheckSignature("chat", "no arrow"); err == nil {
		t.Error("a malformed signature was accepted")
	}
}
