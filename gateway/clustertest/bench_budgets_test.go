package clustertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/kowai/kowai/budgets"
	"github.com/kowai/kowai/gateway"
	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/gateway/ratelimit"
	"github.com/kowai/kowai/internal/testenv"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
)

// chatTurn posts one turn to s and returns the conversation it went to.
func chatTurn(s *stack, token, conv string) (string, error) {
	body, err := json.Marshal(map[string]string{"content": benchContent, "conversation_id": conv})
	if err != nil {
		return "", err
	}
	req, err := http.NewRequest(http.MethodPost, s.url+"/api/v1/chat/message", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := s.client.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return "", err
	}
	if res.StatusCode != http.StatusOK {
		return "", fmt.Errorf("turn: %d %s", res.StatusCode, raw)
	}
	var r gateway.ChatReply
	if err := json.Unmarshal(raw, &r); err != nil {
		return "", err
	}
	return r.ConversationID, nil
}

// BenchmarkChatTurnsBudgets measures what per-user budgets cost a chat turn:
// turns per second on a node that checks and charges every model call
// (limits that are never reached, counters in process, every call written to
// the usage ledger through the group-commit writer, as kowai serve does) against a node without budgets on the same MariaDB
// database, in the same run, their phases alternating; 64 clients each
// continuing a conversation of its own as one of 64 users. It needs
// KOWAI_TEST_MYSQL_DSN.
//
// Goal: x-vs-no-budgets >= 0.8.
func BenchmarkChatTurnsBudgets(b *testing.B) {
	db := persisttest.MySQL(b)
	generous := ratelimit.Limit{Rate: 1_000_000, Period: time.Minute}
	plain := startStack(b, db, stackOptions{rateLimit: generous})
	budgeted := startStack(b, db, stackOptions{rateLimit: generous, budgets: func(w *persistence.Writer) *budgets.Enforcer {
		enf, err := budgets.New(budgets.Config{Roles: map[string]budgets.Limits{"user": {DayTokens: 1 << 50, MonthUSD: 1e9}},
			Users: persistence.NewUserStore(db), Ledger: persistence.NewUsageStore(db), Writer: w})
		if err != nil {
			b.Fatal(err)
		}
		return enf
	}})
	ctx := context.Background()
	tokens := make([]string, benchConversations)
	for i := range tokens {
		email := fmt.Sprintf("bench%d@example.com", i)
		if _, err := plain.auth.CreateUser(ctx, auth.NewUser{Email: email, Password: "bench password", Roles: []auth.Role{auth.RoleUser}}); err != nil {
			b.Fatal(err)
		}
		pair, err := plain.auth.Login(ctx, email, "bench password", fmt.Sprintf("192.0.2.%d", i+1))
		if err != nil {
			b.Fatal(err)
		}
		tokens[i] = pair.AccessToken
	}
	// Each node continues conversations of its own: a conversation lives on one
	// node's session grain.
	on := func(s *stack) func(w int) error {
		convs := make([]string, benchConversations)
		return func(w int) error {
			c, err := chatTurn(s, tokens[w], convs[w])
			convs[w] = c
			return err
		}
	}
	plainTurn, budgetTurn := on(plain), on(budgeted)
	parallelOnce(b, benchConversations, plainTurn)
	parallelOnce(b, benchConversations, budgetTurn)

	var withN, withoutN int
	var withT, withoutT time.Duration
	for b.Loop() {
		for range benchRounds {
			n, d := testenv.Throughput(b, benchConversations, benchPhase, plainTurn)
			withoutN, withoutT = withoutN+n, withoutT+d
			n, d = testenv.Throughput(b, benchConversations, benchPhase, budgetTurn)
			withN, withT = withN+n, withT+d
		}
	}
	with, without := float64(withN)/withT.Seconds(), float64(withoutN)/withoutT.Seconds()
	b.ReportMetric(with, "turns/s")
	b.ReportMetric(without, "no-budgets-turns/s")
	b.ReportMetric(with/without, "x-vs-no-budgets")
}
