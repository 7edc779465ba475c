package gateway

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kowai/kowai/gateway/ratelimit"
	"github.com/kowai/kowai/gateway/streams"
	"github.com/kowai/kowai/internal/testenv"
)

// Streamed-token benchmark settings.
const (
	streamBenchWorkers = 64
	streamBenchTokens  = 100 // per reply
	streamBenchRun     = time.Second
	streamBenchRounds  = 2 // pairs of runs per iteration
)

// tokenChat streams streamBenchTokens deltas per turn, as fast as it can.
type tokenChat struct{}

func (tokenChat) Send(_ context.Context, t ChatTurn, onDelta func(string)) (ChatReply, error) {
	for i := range streamBenchTokens {
		if onDelta != nil {
			onDelta(fmt.Sprintf("t%d ", i))
		}
	}
	return ChatReply{ConversationID: t.ConversationID, MessageID: "m", Response: "streamed"}, nil
}

// discardStore keeps nothing: the baseline of a reply that is streamed but
// not kept for resumption.
type discardStore struct{}

var _ streams.Store = discardStore{}

func (discardStore) Begin(context.Context, string, string) (streams.Cursor, error) {
	return streams.Cursor{Attempt: 1}, nil
}
func (discardStore) Append(context.Context, string, ...streams.Entry) error { return nil }
func (discardStore) Owner(context.Context, string) (string, error) {
	return "", streams.ErrNotFound
}
func (discardStore) Follow(context.Context, string, int64, func(streams.Entry) error) error {
	return streams.ErrNotFound
}

// BenchmarkStreamedTokens: tokens per second streamed over SSE through one
// node at 64 concurrent streams, with every reply kept in Redis Streams for
// resumption, against the same with replies not kept, measured in
// alternation in the same run. Goal: x-vs-baseline >= 0.8.
func BenchmarkStreamedTokens(b *testing.B) {
	rdb := testenv.Redis(b)
	kept := streams.NewRedis(rdb, streams.RedisOptions{Prefix: testenv.Prefix("bench-streams")})
	serve := func(store streams.Store) string {
		return serveBench(b, func(s *Server) {
			if err := s.Mount(API{Authenticator: fakeAuth, Chat: tokenChat{}, Streams: store,
				// A limit the load never reaches: every check runs, none refuses.
				RateLimit: ratelimit.Limit{Rate: 10_000_000, Period: time.Minute}}); err != nil {
				b.Fatal(err)
			}
		})
	}
	candidate, baseline := serve(kept), serve(discardStore{})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: streamBenchWorkers, MaxConnsPerHost: streamBenchWorkers}}
	b.Cleanup(client.CloseIdleConnections)
	turn := func(base string) func(int) error {
		return func(int) error {
			req, err := http.NewRequest(http.MethodPost, base+"/api/v1/chat/message", strings.NewReader(`{"content":"go"}`))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "text/event-stream")
			req.Header.Set("Authorization", "Bearer good-bench")
			res, err := client.Do(req)
			if err != nil {
				return err
			}
			defer res.Body.Close()
			if res.StatusCode != http.StatusOK {
				return fmt.Errorf("status %d", res.StatusCode)
			}
			tokens := 0
			sc := bufio.NewScanner(res.Body)
			for sc.Scan() {
				switch sc.Text() {
				case "event: token":
					tokens++
				case "event: done":
					if tokens != streamBenchTokens {
						return fmt.Errorf("%d tokens, want %d", tokens, streamBenchTokens)
					}
					return nil
				case "event: error":
					return fmt.Errorf("error event after %d tokens", tokens)
				}
			}
			return fmt.Errorf("stream ended without done: %v", sc.Err())
		}
	}
	var keptTokens, freeTokens float64
	var keptTime, freeTime time.Duration
	for b.Loop() {
		for round := range streamBenchRounds {
			runs := []func(){
				func() {
					n, d := testenv.Throughput(b, streamBenchWorkers, streamBenchRun, turn(candidate))
					keptTokens += float64(n * streamBenchTokens)
					keptTime += d
				},
				func() {
					n, d := testenv.Throughput(b, streamBenchWorkers, streamBenchRun, turn(baseline))
					freeTokens += float64(n * streamBenchTokens)
					freeTime += d
				},
			}
			if round%2 == 1 {
				runs[0], runs[1] = runs[1], runs[0]
			}
			for _, run := range runs {
				run()
			}
		}
	}
	keptRate, free := keptTokens/keptTime.Seconds(), freeTokens/freeTime.Seconds()
	b.ReportMetric(keptRate, "tokens/s")
	b.ReportMetric(free, "baseline-tokens/s")
	b.ReportMetric(keptRate/free, "x-vs-baseline")
}
