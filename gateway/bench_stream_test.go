package gateway

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kowai/kowai/gateway/ratelimit"
	"github.com/kowai/kowai/gateway/streams"
	"github.com/kowai/kowai/internal/testenv"
)

// Streamed-token benchmark settings.
const (
	streamBenchWorkers = 64
	streamBenchTokens  = 100 // per reply
	streamBenchRun     = 250 * time.Millisecond
	streamBenchRounds  = 15 // pairs of runs per iteration
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
func (discardStore) Start(context.Context, string, string, ...streams.Entry) error {
	return nil
}
func (discardStore) Owner(context.Context, string) (string, error) {
	return "", streams.ErrNotFound
}
func (discardStore) Follow(context.Context, string, int64, time.Time, func(streams.Entry) error) error {
	return streams.ErrNotFound
}

// BenchmarkStreamedTokens: tokens per second streamed over SSE through one
// node at 64 concurrent streams, with every reply kept in Redis Streams for
// resumption, against the same with replies not kept, measured in short
// alternating pairs in the same run.
//
// The node is CPU-bound at this load, so its throughput is the tokens it
// streams per second of CPU: x-vs-baseline compares tokens per CPU second
// (this process's, which serves and reads the streams, plus the Redis
// server's for the kept runs). Wall-clock rates are reported too
// (wall-x-vs-baseline is the median of the pairs' ratios), but on a shared
// machine they swing with its other load. Goal: x-vs-baseline >= 0.8.
//
// The allocations per 1,000 tokens of each side are logged, and each
// server's goroutines carry the pprof label store=kept or store=discard,
// so a CPU profile of the benchmark (-cpuprofile) tells the two sides
// apart (go tool pprof -tagfocus=store=kept).
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
	var candidate, baseline string
	pprof.Do(b.Context(), pprof.Labels("store", "kept"), func(context.Context) { candidate = serve(kept) })
	pprof.Do(b.Context(), pprof.Labels("store", "discard"), func(context.Context) { baseline = serve(discardStore{}) })
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
	// The machine's load swings within seconds, so kept and baseline runs
	// alternate in short pairs, their order alternating too.
	var ratios, keptRates, freeRates []float64
	var keptCPU, freeCPU, keptRedis, freeRedis time.Duration
	var keptN, freeN float64
	var keptWall, freeWall time.Duration
	var keptMallocs, keptBytes, freeMallocs, freeBytes uint64
	measure := func(base string, cpu *time.Duration, tokens *float64) float64 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		redisBefore := redisCPU(b, rdb)
		procBefore := processCPU(b)
		n, d := testenv.Throughput(b, streamBenchWorkers, streamBenchRun, turn(base))
		procUsed := processCPU(b) - procBefore
		redisUsed := redisCPU(b, rdb) - redisBefore
		runtime.ReadMemStats(&after)
		if base == candidate {
			keptWall += d
			keptRedis += redisUsed
			keptMallocs += after.Mallocs - before.Mallocs
			keptBytes += after.TotalAlloc - before.TotalAlloc
		} else {
			// Not counted: the baseline does not use Redis. What Redis does
			// meanwhile is other clients' work, also counted in the kept runs
			// on a shared server; it is logged to tell that noise.
			freeWall += d
			freeRedis += redisUsed
			redisUsed = 0
			freeMallocs += after.Mallocs - before.Mallocs
			freeBytes += after.TotalAlloc - before.TotalAlloc
		}
		*cpu += procUsed + redisUsed
		*tokens += float64(n * streamBenchTokens)
		return float64(n*streamBenchTokens) / d.Seconds()
	}
	for b.Loop() {
		for round := range streamBenchRounds {
			var kept, free float64
			runs := []func(){
				func() { kept = measure(candidate, &keptCPU, &keptN) },
				func() { free = measure(baseline, &freeCPU, &freeN) },
			}
			if round%2 == 1 {
				runs[0], runs[1] = runs[1], runs[0]
			}
			for _, run := range runs {
				run()
			}
			ratios, keptRates, freeRates = append(ratios, kept/free), append(keptRates, kept), append(freeRates, free)
		}
	}
	b.Logf("wall-clock kept/baseline per pair: %.2f", ratios)
	b.Logf("CPU per 1000 tokens: kept %v (Redis %v), baseline %v (Redis meanwhile, not counted: %v)", keptCPU*1000/time.Duration(keptN),
		keptRedis*1000/time.Duration(keptN), freeCPU*1000/time.Duration(freeN), freeRedis*1000/time.Duration(freeN))
	b.Logf("allocations per 1000 tokens: kept %.0f (%.0f B), baseline %.0f (%.0f B)", float64(keptMallocs)*1000/keptN,
		float64(keptBytes)*1000/keptN, float64(freeMallocs)*1000/freeN, float64(freeBytes)*1000/freeN)
	keptPerCPU, freePerCPU := keptN/keptCPU.Seconds(), freeN/freeCPU.Seconds()
	// On a shared Redis, what it does during the baseline runs is other
	// clients' work; at the same rate during the kept runs, it is counted
	// in them. Logged, not reported: the ratio without it.
	others := time.Duration(float64(freeRedis) * keptWall.Seconds() / freeWall.Seconds())
	b.Logf("x-vs-baseline without Redis's work at the baseline runs' rate (%v over the kept runs): %.3f", others,
		keptN/(keptCPU-others).Seconds()/freePerCPU)
	b.ReportMetric(median(keptRates), "tokens/s")
	b.ReportMetric(median(freeRates), "baseline-tokens/s")
	b.ReportMetric(median(ratios), "wall-x-vs-baseline")
	b.ReportMetric(keptPerCPU, "tokens/cpu-s")
	b.ReportMetric(freePerCPU, "baseline-tokens/cpu-s")
	b.ReportMetric(keptPerCPU/freePerCPU, "x-vs-baseline")
}

// processCPU returns the CPU time this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// redisCPU returns the CPU time the Redis server has used.
func redisCPU(b *testing.B, rdb *redis.Client) time.Duration {
	info, err := rdb.Info(b.Context(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total time.Duration
	for line := range strings.Lines(info) {
		name, value, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || (name != "used_cpu_user" && name != "used_cpu_sys") {
			continue
		}
		secs, err := strconv.ParseFloat(value, 64)
		if err != nil {
			b.Fatalf("redis INFO %s: %v", name, err)
		}
		total += time.Duration(secs * float64(time.Second))
	}
	return total
}

// median returns the middle of xs (the mean of the middle two for an even
// count); xs is sorted in place.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	if n := len(xs); n%2 == 0 {
		return (xs[n/2-1] + xs[n/2]) / 2
	}
	return xs[len(xs)/2]
}
