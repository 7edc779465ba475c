package clustertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/kowai/kowai/agents"
	"github.com/kowai/kowai/gateway"
	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/gateway/ratelimit"
	"github.com/kowai/kowai/internal/testenv"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
)

const (
	// benchConversations is the number of conversations driven at once, each
	// by its own client and user.
	benchConversations = 64
	// benchRounds and benchPhase: the measurement and its baseline alternate,
	// benchPhase each per round, so background load and table growth weigh
	// on both alike.
	benchRounds = 3
	benchPhase  = time.Second
	// benchContent is the user's message and the baseline rows' content.
	benchContent = "what is the weather like today in the city by the sea"
)

// BenchmarkChatTurns measures chat turns per second end to end: POST
// /api/v1/chat/message over HTTP through the whole gateway (JWT, rate limit,
// metrics, access log), the cluster's grain client, the session and agent
// grains, the offline model, and MariaDB through the group-commit writer;
// 64 clients, each continuing a conversation of its own as one of 64 users.
// The per-user rate limit is raised so that it never refuses a turn.
//
// The baseline is the same writer's durable rows per second divided by 2
// (a turn writes two messages): 64 writers each appending one message after
// the other to a conversation of its own, alternating with the turns in this
// run. It needs KOWAI_TEST_MYSQL_DSN.
//
// Goal (issue 5): x-vs-baseline >= 0.5.
func BenchmarkChatTurns(b *testing.B) {
	s := startStack(b, persisttest.MySQL(b), stackOptions{rateLimit: ratelimit.Limit{Rate: 1_000_000, Period: time.Minute}})
	ctx := context.Background()
	tokens := make([]string, benchConversations)
	users := make([]string, benchConversations)
	for i := range tokens {
		email := fmt.Sprintf("bench%d@example.com", i)
		u, err := s.auth.CreateUser(ctx, auth.NewUser{Email: email, Password: "bench password"})
		if err != nil {
			b.Fatal(err)
		}
		// A client address each, or the per-address login throttle refuses.
		pair, err := s.auth.Login(ctx, email, "bench password", fmt.Sprintf("192.0.2.%d", i+1))
		if err != nil {
			b.Fatal(err)
		}
		users[i], tokens[i] = u.ID, pair.AccessToken
	}

	// The first turn of each client starts its conversation.
	convs := make([]string, benchConversations)
	turn := func(w int) error {
		body, err := json.Marshal(map[string]string{"content": benchContent, "conversation_id": convs[w]})
		if err != nil {
			return err
		}
		req, err := http.NewRequest(http.MethodPost, s.url+"/api/v1/chat/message", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tokens[w])
		res, err := s.client.Do(req)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		raw, err := io.ReadAll(res.Body)
		if err != nil {
			return err
		}
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("turn of client %d: %d %s", w, res.StatusCode, raw)
		}
		var r gateway.ChatReply
		if err := json.Unmarshal(raw, &r); err != nil {
			return err
		}
		convs[w] = r.ConversationID
		return nil
	}
	parallelOnce(b, benchConversations, turn)

	baseConvs := make([]string, benchConversations)
	repo := persistence.NewConversationStore(s.db)
	for i := range baseConvs {
		c, err := repo.Create(ctx, persistence.Conversation{OwnerID: users[i], AgentID: agents.DefaultAgentID()})
		if err != nil {
			b.Fatal(err)
		}
		baseConvs[i] = c.ID
	}
	var seqs [benchConversations]int64
	appendRow := func(w int) error {
		seqs[w]++
		return s.writer.AppendMessages(ctx, persistence.Message{ConversationID: baseConvs[w], Seq: seqs[w],
			Role: "user", Content: benchContent})
	}

	var turns, rows int
	var turnsTime, rowsTime time.Duration
	for b.Loop() {
		for range benchRounds {
			n, d := testenv.Throughput(b, benchConversations, benchPhase, appendRow)
			rows, rowsTime = rows+n, rowsTime+d
			n, d = testenv.Throughput(b, benchConversations, benchPhase, turn)
			turns, turnsTime = turns+n, turnsTime+d
		}
	}
	perSecond := float64(turns) / turnsTime.Seconds()
	baseline := float64(rows) / rowsTime.Seconds() / 2
	b.ReportMetric(perSecond, "turns/s")
	b.ReportMetric(baseline, "baseline-turns/s")
	b.ReportMetric(perSecond/baseline, "x-vs-baseline")
}

// parallelOnce runs f(w) once for every worker w at the same time and fails
// the benchmark on the first error.
func parallelOnce(b *testing.B, workers int, f func(worker int) error) {
	b.Helper()
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { errs[w] = f(w) })
	}
	wg.Wait()
	for w, err := range errs {
		if err != nil {
			b.Fatalf("client %d: %v", w, err)
		}
	}
}
