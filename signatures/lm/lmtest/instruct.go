package lmtest

import (
	"context"
	"hash/fnv"
	"regexp"
	"strings"

	"github.com/kowai/kowai/signatures/lm"
	"github.com/tmc/langchaingo/llms"
)

// InstructionSensitive is a deterministic model whose accuracy on a task
// depends on the instructions it is given, so instruction optimizers
// (MIPROv2, COPRO) can be tested offline. It reads the ChatAdapter prompt:
//
//   - A request whose output fields include "proposed_instruction" (an
//     optimizer's proposer) is answered with one of Proposals, picked by a
//     hash of the whole request (its messages and rollout id), so different
//     proposal calls get different candidates and the same call always the
//     same one.
//   - Any other request is a task call. Its first input's text is looked up
//     in Gold; the reply gives the gold value for the first requested output
//     field when the question's hash (a number in [0, 1)) is below the
//     accuracy, and Wrong(gold) otherwise. The accuracy is Base, plus Step for
//     each of Keywords found (case-insensitively) in the instructions, plus
//     DemoBonus when the prompt holds at least one demo, capped at 1. Other
//     output fields get "n/a"; a question not in Gold gets Wrong("").
//
// Higher accuracy answers a superset of the questions a lower one does, so
// scores move monotonically with the instructions. It is safe for concurrent
// use and keeps no state.
type InstructionSensitive struct {
	// Gold maps a task's first input text to the correct output text.
	Gold map[string]string
	// Wrong returns a wrong answer for a gold value.
	Wrong func(gold string) string
	// Keywords reward instructions that contain them; Base, Step and
	// DemoBonus set the accuracy.
	Keywords              []string
	Base, Step, DemoBonus float64
	// Proposals are the instructions it proposes when asked for one.
	Proposals []string
}

var _ lm.LM = (*InstructionSensitive)(nil)

// Name returns "scripted:instruction-sensitive".
func (m *InstructionSensitive) Name() string { return "scripted:instruction-sensitive" }

var (
	respondFieldRe = regexp.MustCompile("`\\[\\[ ## (\\w+) ## \\]\\]`")
	objectiveMark  = "In adhering to this structure, your objective is: "
)

// Generate answers one request as described on the type.
func (m *InstructionSensitive) Generate(_ context.Context, req *lm.Request) (*lm.Response, error) {
	if len(req.Messages) == 0 {
		return &lm.Response{Text: ""}, nil
	}
	system, last := partText(req.Messages[0]), partText(req.Messages[len(req.Messages)-1])
	var fields []string
	if i := strings.Index(last, "Respond with the corresponding output fields"); i >= 0 {
		for _, f := range respondFieldRe.FindAllStringSubmatch(last[i:], -1) {
			if f[1] != "completed" {
				fields = append(fields, f[1])
			}
		}
	}
	if len(fields) == 0 {
		return &lm.Response{Text: "", Usage: lm.Usage{Calls: 1}}, nil
	}
	values := map[string]string{}
	if containsString(fields, "proposed_instruction") {
		h := hash01(req.RolloutID + "\x00" + lm.MessagesText(req.Messages))
		p := ""
		if len(m.Proposals) > 0 {
			p = m.Proposals[int(h*float64(len(m.Proposals)))%len(m.Proposals)]
		}
		for _, f := range fields {
			values[f] = "n/a"
		}
		values["proposed_instruction"] = p
	} else {
		question := firstInputText(last)
		instructions := ""
		if _, after, ok := strings.Cut(system, objectiveMark); ok {
			instructions = strings.ToLower(after)
		}
		acc := m.Base
		for _, k := range m.Keywords {
			if strings.Contains(instructions, strings.ToLower(k)) {
				acc += m.Step
			}
		}
		if len(req.Messages) > 2 {
			acc += m.DemoBonus
		}
		gold, known := m.Gold[question]
		answer := ""
		if m.Wrong != nil {
			answer = m.Wrong(gold)
		}
		if known && hash01(question) < acc {
			answer = gold
		}
		for i, f := range fields {
			values[f] = "n/a"
			if i == 0 {
				values[f] = answer
			}
		}
	}
	var b strings.Builder
	for _, f := range fields {
		b.WriteString("[[ ## " + f + " ## ]]\n" + values[f] + "\n\n")
	}
	b.WriteString("[[ ## completed ## ]]")
	return &lm.Response{Text: b.String(), Usage: lm.Usage{Calls: 1}}, nil
}

func partText(m llms.MessageContent) string {
	var b strings.Builder
	for _, p := range m.Parts {
		if t, ok := p.(llms.TextContent); ok {
			b.WriteString(t.Text)
		}
	}
	return b.String()
}

// firstInputText is the value of the first [[ ## field ## ]] block of the
// final user message.
func firstInputText(last string) string {
	_, rest, ok := strings.Cut(last, " ## ]]\n")
	if !ok {
		return ""
	}
	value, _, _ := strings.Cut(rest, "\n\n")
	return strings.TrimSpace(value)
}

func containsString(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// hash01 maps s to [0, 1) deterministically.
func hash01(s string) float64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	// FNV's high bits barely move for short inputs: mix them (splitmix64's
	// finaliser) so similar questions spread over [0, 1).
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11) / float64(uint64(1)<<53)
}
