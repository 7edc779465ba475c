package testenv

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Throughput runs f(worker) in a loop on workers goroutines for about d and
// returns how many calls succeeded and the time until the last one
// returned. A failed call fails the benchmark and stops its worker.
func Throughput(b *testing.B, workers int, d time.Duration, f func(worker int) error) (int, time.Duration) {
	var n atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for w := range workers {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				if err := f(w); err != nil {
					b.Error(err)
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	return int(n.Load()), time.Since(start)
}
