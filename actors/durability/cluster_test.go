package durability

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kowai/kowai/actors"
	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/cluster"
	"github.com/kowai/kowai/cluster/clustertest"
	"github.com/kowai/kowai/internal/testenv"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/signatures/lm/offline"
	"github.com/kowai/kowai/supervisors"
)

// node is one cluster node hosting the grains of a Runtime, on a real database.
type node struct {
	rt    *actors.Runtime
	node  *cluster.Node
	users []string
}

func startNode(t *testing.T, db *persistence.DB) *node {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := persistence.NewWriter(db, persistence.WriterOptions{})
	go func() {
		if err := w.Run(ctx); err != nil {
			t.Errorf("writer: %v", err)
		}
	}()
	t.Cleanup(cancel)
	reg := prometheus.NewRegistry()
	sm, err := supervisors.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := actors.New(actors.Deps{
		Writer: w, Conversations: persistence.NewConversationStore(db), Messages: persistence.NewMessageStore(db),
		Agents: persistence.NewAgentStore(db), Snapshots: persistence.NewSnapshotStore(db),
		LM: lm.NewProvider("offline", "kowai-offline", offline.New()), Metrics: reg, SupervisorMetrics: sm,
		TurnTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.EnsureBuiltins(t.Context()); err != nil {
		t.Fatal(err)
	}
	nodes := clustertest.Start(t, clustertest.Options{
		Kinds: func() []*pcluster.Kind { return rt.Kinds() },
		Configure: func(_ int, cfg *cluster.Config) {
			cfg.OnLeave = rt.OnLeave
			cfg.RequestTimeout = 15 * time.Second
			cfg.Metrics = reg
		},
	})
	rt.SetCaller(nodes[0].Client())
	n := &node{rt: rt, node: nodes[0]}
	users := persistence.NewUserStore(db)
	for i := range 2 {
		u, err := users.Create(t.Context(), persistence.User{Email: fmt.Sprintf("d%d@example.com", i), Roles: []string{"user"}})
		if err != nil {
			t.Fatal(err)
		}
		n.users = append(n.users, u.ID)
	}
	return n
}

// streamSink collects the deltas streamed to it.
type streamSink struct {
	mu    sync.Mutex
	text  string
	ended bool
}

func (s *streamSink) Receive(ctx actor.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch m := ctx.Message().(type) {
	case *actorpb.TokenDelta:
		s.text += m.GetDelta()
	case *actorpb.StreamEnd:
		s.ended = true
	}
}

// Real grains on a cluster node: turns through the grain client, streaming to a PID
// addressed by the node's remoting address, typed errors, idempotent retries, and
// a graceful leave that passivates the sessions.
func TestGrainsOnClusterNode(t *testing.T) {
	db := persisttest.SQLite(t)
	n := startNode(t, db)
	client := n.node.Client()
	conv := "0190b000-0000-7000-8000-000000000001"

	sink := &streamSink{}
	sys := n.node.Cluster().ActorSystem
	target := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return sink }))
	req := &actorpb.SendMessage{CorrelationId: "c1", IdempotencyKey: "k1", ConversationId: conv, UserId: n.users[0],
		Content: "hello cluster", Stream: &actorpb.StreamTarget{Address: target.Address, Id: target.Id}, StreamId: "s1"}
	res, err := actorpb.As[*actorpb.TurnResult](client.Call(t.Context(), actors.KindSession, conv, req))
	if err != nil {
		t.Fatal(err)
	}
	if res.Seq != 2 || res.Response == "" {
		t.Fatalf("result = %v", res)
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		if !sink.ended || sink.text == "" {
			return errors.New("stream not complete")
		}
		return nil
	})

	again, err := actorpb.As[*actorpb.TurnResult](client.Call(t.Context(), actors.KindSession, conv, req))
	if err != nil || !again.Replayed || again.MessageId != res.MessageId {
		t.Fatalf("retry = %v, %v", again, err)
	}

	// A stranger learns nothing, not even that the conversation exists: a typed error
	// that crossed the cluster's remoting.
	_, err = actorpb.As[*actorpb.TurnResult](client.Call(t.Context(), actors.KindSession, conv,
		&actorpb.SendMessage{CorrelationId: "c2", ConversationId: conv, UserId: n.users[1], Content: "mine now"}))
	if !errors.Is(err, actorpb.ErrNotFound) {
		t.Fatalf("stranger's turn: err = %v", err)
	}
	_, err = actorpb.As[*actorpb.CancelResult](client.Call(t.Context(), actors.KindSession, conv,
		&actorpb.CancelTurn{CorrelationId: "c3", ConversationId: conv, UserId: n.users[1]}))
	if !errors.Is(err, actorpb.ErrNotFound) {
		t.Fatalf("stranger's cancel: err = %v", err)
	}
	msgs, err := persistence.NewMessageStore(db).ListByConversation(t.Context(), conv, persistence.Forward, persistence.PageRequest{})
	if err != nil || len(msgs.Items) != 2 || msgs.Items[0].Content != "hello cluster" || msgs.Items[1].Content != res.Response {
		t.Fatalf("log = %+v, %v", msgs, err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := n.node.Stop(ctx); err != nil {
		t.Fatalf("graceful leave: %v", err)
	}
	// A session snapshot is versioned by the last seq of the log it covers.
	snap, err := persistence.NewSnapshotStore(db).Load(t.Context(), actors.KindSession, conv)
	if err != nil || snap.Version != res.Seq {
		t.Fatalf("snapshot after leave = %+v, %v", snap, err)
	}
}
