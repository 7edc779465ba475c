package ratelimit_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/kowai/kowai/gateway/ratelimit"
)

// BenchmarkAllow compares Allow throughput of the in-process limiter (the
// baseline) with the Redis limiter, from 8 goroutines per CPU over 1024 keys
// (a gateway serves many requests at once, which hides Redis latency). The Redis
// sub-benchmark reports its ns/op relative to the in-process one measured in
// the same run as "x-vs-baseline" (how many times slower). The goal
// is end to end: an authenticated read with the Redis limiter on keeps at
// least 0.8 of its throughput with it off; that is measured in the gateway.
func BenchmarkAllow(b *testing.B) {
	limit := ratelimit.Limit{Rate: 1_000_000, Period: time.Second}
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = "user-" + strconv.Itoa(i)
	}
	run := func(b *testing.B, l ratelimit.Limiter) float64 {
		b.Helper()
		b.ReportAllocs()
		b.SetParallelism(8)
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if _, err := l.Allow(b.Context(), keys[i%len(keys)], limit); err != nil {
					b.Error(err)
					return
				}
				i++
			}
		})
		return float64(time.Since(start).Nanoseconds()) / float64(b.N)
	}
	var baseline float64
	b.Run("memory", func(b *testing.B) {
		baseline = run(b, ratelimit.NewMemory(ratelimit.MemoryOptions{}))
	})
	b.Run("redis", func(b *testing.B) {
		client := testRedis(b)
		nsPerOp := run(b, ratelimit.NewRedis(client, ratelimit.RedisOptions{Prefix: testPrefix()}))
		if baseline > 0 {
			b.ReportMetric(nsPerOp/baseline, "x-vs-baseline")
		}
	})
}
