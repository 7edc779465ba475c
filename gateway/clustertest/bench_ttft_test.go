package clustertest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	fws "github.com/fasthttp/websocket"
	"github.com/tmc/langchaingo/llms"

	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/gateway/ratelimit"
	"github.com/kowai/kowai/persistence/persisttest"
	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/signatures/lm/offline"
)

const (
	// ttftRounds and ttftPerRound: the direct calls and the turns over SSE
	// and WebSocket alternate, ttftPerRound of each per round, so the
	// machine's other load weighs on all three alike.
	ttftRounds   = 10
	ttftPerRound = 20
	// ttftContent is the user's message.
	ttftContent = "what is the weather like today in the city by the sea"
)

// BenchmarkTimeToFirstToken measures the time from sending a chat turn to
// receiving its first token, one turn at a time, through a whole node: POST
// /api/v1/chat/message with Accept: text/event-stream, and a message frame
// on an open WebSocket, each continuing a conversation of its own (JWT,
// rate limit, the session and agent grains, the offline model, MariaDB
// through the group-commit writer, the reply's stream kept in process for
// resumption). The baseline calls the same offline model in-process, with
// a system and a user message, until its first streamed chunk.
//
// It reports p50 and p99 of each in milliseconds, and the overhead of each
// transport at p50 (its p50 minus the baseline's). Goal (issue 12):
// sse-overhead-p50-ms and ws-overhead-p50-ms <= 2. It needs
// KOWAI_TEST_MYSQL_DSN.
func BenchmarkTimeToFirstToken(b *testing.B) {
	s := startStack(b, persisttest.MySQL(b), stackOptions{rateLimit: ratelimit.Limit{Rate: 1_000_000, Period: time.Minute}})
	ctx := context.Background()
	const email = "ttft@example.com"
	if _, err := s.auth.CreateUser(ctx, auth.NewUser{Email: email, Password: "bench password"}); err != nil {
		b.Fatal(err)
	}
	pair, err := s.auth.Login(ctx, email, "bench password", "192.0.2.1")
	if err != nil {
		b.Fatal(err)
	}
	token := pair.AccessToken

	model := lm.NewProvider("offline", "kowai-offline", offline.New())
	direct := func() (time.Duration, error) {
		start := time.Now()
		var first time.Duration
		_, err := model.Generate(ctx, &lm.Request{
			Messages: []llms.MessageContent{
				llms.TextParts(llms.ChatMessageTypeSystem, "You are a helpful assistant."),
				llms.TextParts(llms.ChatMessageTypeHuman, ttftContent),
			},
			NoCache: true,
			Stream: func(context.Context, []byte) error {
				if first == 0 {
					first = time.Since(start)
				}
				return nil
			},
		})
		if err == nil && first == 0 {
			err = errors.New("the model streamed nothing")
		}
		return first, err
	}

	var sseConv string
	sse := func() (time.Duration, error) {
		body, err := json.Marshal(map[string]string{"content": ttftContent, "conversation_id": sseConv})
		if err != nil {
			return 0, err
		}
		req, err := http.NewRequest(http.MethodPost, s.url+"/api/v1/chat/message", strings.NewReader(string(body)))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Authorization", "Bearer "+token)
		start := time.Now()
		res, err := s.client.Do(req)
		if err != nil {
			return 0, err
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("SSE turn: status %d", res.StatusCode)
		}
		var first time.Duration
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			switch sc.Text() {
			case "event: token":
				if first == 0 {
					first = time.Since(start)
				}
			case "event: error":
				return 0, errors.New("SSE turn: error event")
			case "event: done":
				if first == 0 {
					return 0, errors.New("SSE turn: done before a token")
				}
				sseConv = res.Header.Get("X-Kowai-Conversation-Id")
				return first, nil
			}
		}
		return 0, fmt.Errorf("SSE turn: the stream ended without done: %v", sc.Err())
	}

	h := http.Header{}
	h.Set("Authorization", "Bearer "+token)
	ws, _, err := fws.DefaultDialer.Dial("ws"+strings.TrimPrefix(s.url, "http")+"/api/v1/chat/ws", h)
	if err != nil {
		b.Fatal(err)
	}
	defer ws.Close()
	var wsConv string
	wsTurn := func() (time.Duration, error) {
		start := time.Now()
		if err := ws.WriteJSON(map[string]string{"type": "message", "content": ttftContent, "conversation_id": wsConv, "id": "t"}); err != nil {
			return 0, err
		}
		var first time.Duration
		for {
			_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
			var f struct {
				Type           string `json:"type"`
				ConversationID string `json:"conversation_id"`
				Detail         string `json:"detail"`
			}
			if err := ws.ReadJSON(&f); err != nil {
				return 0, err
			}
			switch f.Type {
			case "token":
				if first == 0 {
					first = time.Since(start)
				}
			case "done":
				if first == 0 {
					return 0, errors.New("WebSocket turn: done before a token")
				}
				wsConv = f.ConversationID
				return first, nil
			case "error":
				return 0, fmt.Errorf("WebSocket turn: %s", f.Detail)
			}
		}
	}

	// The conversations' first turns start their sessions.
	for _, f := range []func() (time.Duration, error){direct, sse, wsTurn} {
		if _, err := f(); err != nil {
			b.Fatal(err)
		}
	}
	var directT, sseT, wsT []time.Duration
	measure := func(f func() (time.Duration, error), into *[]time.Duration) {
		for range ttftPerRound {
			d, err := f()
			if err != nil {
				b.Fatal(err)
			}
			*into = append(*into, d)
		}
	}
	for b.Loop() {
		for range ttftRounds {
			measure(direct, &directT)
			measure(sse, &sseT)
			measure(wsTurn, &wsT)
		}
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	dp50, dp99 := percentile(directT, 50), percentile(directT, 99)
	sp50, sp99 := percentile(sseT, 50), percentile(sseT, 99)
	wp50, wp99 := percentile(wsT, 50), percentile(wsT, 99)
	b.ReportMetric(ms(dp50), "direct-p50-ms")
	b.ReportMetric(ms(dp99), "direct-p99-ms")
	b.ReportMetric(ms(sp50), "sse-p50-ms")
	b.ReportMetric(ms(sp99), "sse-p99-ms")
	b.ReportMetric(ms(wp50), "ws-p50-ms")
	b.ReportMetric(ms(wp99), "ws-p99-ms")
	b.ReportMetric(ms(sp50-dp50), "sse-overhead-p50-ms")
	b.ReportMetric(ms(wp50-dp50), "ws-overhead-p50-ms")
}

// percentile returns the p-th percentile of ds (nearest rank); ds is sorted
// in place.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	rank := (p*len(ds) + 99) / 100
	return ds[max(rank, 1)-1]
}
