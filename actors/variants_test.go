package actors

import (
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/agents"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/signatures/lm/lmtest"
)

// A conversation of an agent with variants runs with the variant its ID hashes to:
// the model is given that variant's instructions, the reply records the variant's
// name, and later turns of the conversation keep it.
func TestVariantAssignedAndRecorded(t *testing.T) {
	h := newHarness(t, persisttest.SQLite(t), harnessOptions{})
	vs := []persistence.Variant{{Name: "french", Weight: 1, Instructions: "Answer in French."}, {Name: "german", Weight: 1, Instructions: "Answer in German."}}
	def := actorpb.DefinitionOf(persistence.Agent{ID: uuid.NewString(), OwnerID: h.users[0], Name: "ab", Type: "chat",
		Instructions: "Answer in English.", Config: []byte("{}"), Variants: vs})
	got, err := actorpb.As[*actorpb.AgentDefinition](h.grains.Call(t.Context(), KindAgent, def.GetId(), &actorpb.PutAgent{Agent: def, Create: true}))
	if err != nil || string(got.GetVariantsJson()) != string(persistence.VariantsJSON(vs)) {
		t.Fatalf("put: %v, %v", got, err)
	}
	model := h.rt.deps.LM.(*lmtest.Scripted)
	seen := map[string]bool{}
	for i := range 8 {
		// Fixed IDs: the test is deterministic, and these hash to both variants.
		conv := uuid.NewSHA1(uuid.NameSpaceOID, []byte{byte(i)}).String()
		want := vs[agents.AssignVariant(def.GetId(), conv, []int{1, 1})]
		seen[want.Name] = true
		for turn := range 2 {
			if _, err := actorpb.As[*actorpb.TurnResult](h.grains.Call(t.Context(), KindSession, conv, &actorpb.SendMessage{
				ConversationId: conv, UserId: h.users[0], AgentId: def.GetId(), Content: "hello"})); err != nil {
				t.Fatal(err)
			}
			reqs := model.Requests()
			if p := lm.MessagesText(reqs[len(reqs)-1].Messages[:1]); !strings.Contains(p, want.Instructions) || strings.Contains(p, "English") {
				t.Fatalf("conversation %s, turn %d: the prompt lacks variant %s's instructions: %s", conv, turn, want.Name, p)
			}
		}
		log := h.checkLog(conv, roleUser, roleAssistant, roleUser, roleAssistant)
		if log[0].Variant != "" || log[1].Variant != want.Name || log[3].Variant != want.Name {
			t.Fatalf("conversation %s: variants recorded %q %q %q, want %q on the replies", conv, log[0].Variant, log[1].Variant, log[3].Variant, want.Name)
		}
	}
	if len(seen) != 2 {
		t.Fatalf("8 conversations all ran one variant: %v", seen)
	}
}
