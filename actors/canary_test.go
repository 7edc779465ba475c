package actors

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/google/uuid"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/agents"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
	"github.com/kowai/kowai/signatures"
	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/signatures/lm/lmtest"
)

// The canary rule, case by case: index 0 of each pair is the current version, 1
// the canary.
func TestDecideCanary(t *testing.T) {
	p := persistence.Canary{MinTurns: 10, MinRatings: 4, MaxErrorRateIncrease: 0.05, MaxFeedbackDrop: 0.2}
	noRatings := p
	noRatings.MinRatings = 0
	all := p
	all.Percent = 100
	type c = [2]int64
	for _, tc := range []struct {
		name                    string
		p                       persistence.Canary
		turns, failed, up, down c
		want                    string
	}{
		{"too few turns", p, c{100, 9}, c{0, 9}, c{}, c{}, ""},
		{"errors over the margin", p, c{100, 10}, c{5, 2}, c{}, c{}, DecisionRollback},
		{"errors within the margin", noRatings, c{100, 10}, c{5, 1}, c{}, c{}, DecisionPromote},
		{"no current turns: any error counts", p, c{0, 10}, c{0, 1}, c{}, c{}, DecisionRollback},
		{"waits for ratings", p, c{100, 10}, c{5, 0}, c{1, 1}, c{0, 0}, ""},
		{"ratings below the margin", p, c{100, 10}, c{5, 0}, c{4, 1}, c{0, 3}, DecisionRollback},
		{"ratings within the margin", p, c{100, 10}, c{5, 0}, c{4, 9}, c{1, 1}, DecisionPromote},
		{"waits for the current version's ratings", p, c{100, 10}, c{5, 0}, c{1, 0}, c{0, 4}, ""},
		{"nothing current to compare with", all, c{0, 10}, c{0, 0}, c{0, 4}, c{0, 0}, DecisionPromote},
		{"min_ratings 0 still compares rated sides", noRatings, c{100, 10}, c{5, 0}, c{3, 0}, c{0, 3}, DecisionRollback},
	} {
		got, reason := decideCanary(tc.p, tc.turns, tc.failed, tc.up, tc.down)
		if got != tc.want {
			t.Errorf("%s: decision %q (%s), want %q", tc.name, got, reason, tc.want)
		}
	}
}

// chatState is the compiled state of the chat type's program with instructions.
func chatState(t *testing.T, instructions string) json.RawMessage {
	t.Helper()
	reg, err := agents.NewRegistry(agents.Builtins(time.Now)...)
	if err != nil {
		t.Fatal(err)
	}
	_, prog, err := reg.Compile(agents.Spec{ID: "x", Type: "chat"})
	if err != nil {
		t.Fatal(err)
	}
	m := prog.(agents.ModuleProgram).Module()
	st, err := signatures.SaveState(m, "chat")
	if err != nil {
		t.Fatal(err)
	}
	for name, ps := range st.Predictors {
		ps.Signature.Instructions = instructions
		st.Predictors[name] = ps
	}
	st.Version = ""
	if err := signatures.LoadState(m, st); err != nil {
		t.Fatal(err)
	}
	if st, err = signatures.SaveState(m, "chat"); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Two activations of one agent (two nodes during a handover) both hold its canary
// and both are asked to decide it: one decision is applied, audited and counted;
// the other activation loses the version compare-and-swap and applies nothing.
func TestCanaryDecidedOnce(t *testing.T) {
	db := persisttest.SQLite(t)
	h := newHarness(t, db, harnessOptions{})
	id := uuid.NewString()
	def := actorpb.DefinitionOf(persistence.Agent{ID: id, OwnerID: h.users[0], Name: "c", Type: "chat", Config: []byte("{}")})
	if _, err := actorpb.As[*actorpb.AgentDefinition](h.grains.Call(t.Context(), KindAgent, id, &actorpb.PutAgent{Agent: def, Create: true})); err != nil {
		t.Fatal(err)
	}
	deployed, err := actorpb.As[*actorpb.AgentDefinition](h.grains.Call(t.Context(), KindAgent, id, &actorpb.DeployProgram{
		UserId: h.users[0], StateJson: chatState(t, "Answer as a canary."), Percent: 100, MinTurns: 100}))
	if err != nil {
		t.Fatal(err)
	}
	// A second node: its own runtime and actor system over the same database.
	rt2, err := New(Deps{Writer: h.writer, Conversations: persistence.NewConversationStore(db), Messages: persistence.NewMessageStore(db),
		Agents: persistence.NewAgentStore(db), Snapshots: persistence.NewSnapshotStore(db), LM: echoModel(),
		Metrics: h.reg, SupervisorMetrics: h.rt.deps.SupervisorMetrics})
	if err != nil {
		t.Fatal(err)
	}
	sys2 := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }))
	t.Cleanup(sys2.Shutdown)
	grains2 := &localGrains{sys: sys2, props: map[string]func(string) *actor.Props{KindSession: rt2.SessionProps, KindAgent: rt2.AgentProps}}
	rt2.SetCaller(grains2)
	if _, err := grains2.Call(t.Context(), KindAgent, id, &actorpb.ProgramFeedback{AgentId: id}); err != nil {
		t.Fatal(err)
	}

	promoted, err := actorpb.As[*actorpb.AgentDefinition](h.grains.Call(t.Context(), KindAgent, id, &actorpb.DecideProgram{UserId: h.users[0], Decision: DecisionPromote}))
	if err != nil || promoted.GetVersion() != deployed.GetVersion()+1 || len(promoted.GetProgramJson()) == 0 || len(promoted.GetVariantsJson()) != 0 {
		t.Fatalf("promote: %v, %v", promoted, err)
	}
	_, err = actorpb.As[*actorpb.AgentDefinition](grains2.Call(t.Context(), KindAgent, id, &actorpb.DecideProgram{UserId: h.users[0], Decision: DecisionRollback}))
	if err == nil || !strings.Contains(err.Error(), "changed") {
		t.Fatalf("the stale activation's rollback: %v, want a conflict", err)
	}
	// The stale activation read the agent again: it has no canary left to decide.
	_, err = actorpb.As[*actorpb.AgentDefinition](grains2.Call(t.Context(), KindAgent, id, &actorpb.DecideProgram{UserId: h.users[0], Decision: DecisionRollback}))
	if err == nil || !strings.Contains(err.Error(), "no canary") {
		t.Fatalf("rollback after the promotion: %v, want no canary", err)
	}
	page, err := persistence.NewAuditStore(db).List(t.Context(), persistence.PageRequest{Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range page.Items {
		if e.TargetID == id {
			actions = append(actions, e.Action)
		}
	}
	if fmt.Sprint(actions) != fmt.Sprint([]string{AuditProgramPromote, AuditProgramDeploy}) {
		t.Fatalf("audit, newest first: %v", actions)
	}
	for outcome, want := range map[string]float64{"deployed": 1, "promoted": 1, "rolled_back": 0} {
		if got := h.counter("kowai_agent_program_deploys_total", map[string]string{"outcome": outcome, "trigger": "manual"}); got != want {
			t.Errorf("deploys{outcome=%s} = %v, want %v", outcome, got, want)
		}
	}
	// The promoted program answers every conversation.
	conv := uuid.NewString()
	if _, err := actorpb.As[*actorpb.TurnResult](h.grains.Call(t.Context(), KindSession, conv, &actorpb.SendMessage{
		ConversationId: conv, UserId: h.users[0], AgentId: id, Content: "hello"})); err != nil {
		t.Fatal(err)
	}
	reqs := h.rt.deps.LM.(*lmtest.Scripted).Requests()
	if p := lm.MessagesText(reqs[len(reqs)-1].Messages[:1]); !strings.Contains(p, "Answer as a canary.") {
		t.Fatalf("a turn after the promotion ran with %q", p)
	}
}
