package gateway

import (
	"net"
	"runtime"
	"testing"
	"time"
)

// BenchmarkConnDeadlines measures the deadlines fasthttp sets per keep-alive
// request (idle and read timeouts on reads, the write timeout) on a loopback
// TCP connection of a deadlineListener, against the same calls on the bare
// connection, alternating rounds; times are the calling thread's CPU.
// x-vs-baseline is the wrapped connection's time over the bare one's.
func BenchmarkConnDeadlines(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	dl := newDeadlineListener(ln, deadlineTick(time.Minute))
	defer dl.stop()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := dl.Accept()
		if err != nil {
			b.Error(err)
		}
		accepted <- c
	}()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	wrapped := <-accepted
	defer wrapped.Close()
	bare := wrapped.(*deadlineConn).Conn
	sides := []struct {
		c       net.Conn
		n       int
		elapsed time.Duration
	}{{c: wrapped}, {c: bare}}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const chunk = 1000
	for b.Loop() {
		for round := range 2 {
			for i := range sides {
				s := &sides[(i+round)%2]
				start := threadCPU(b)
				for range chunk {
					now := time.Now()
					if err := s.c.SetReadDeadline(now.Add(2 * time.Minute)); err != nil {
						b.Fatal(err)
					}
					if err := s.c.SetReadDeadline(now.Add(time.Minute)); err != nil {
						b.Fatal(err)
					}
					if err := s.c.SetWriteDeadline(now.Add(time.Minute)); err != nil {
						b.Fatal(err)
					}
				}
				s.elapsed += threadCPU(b) - start
				s.n += chunk
			}
		}
	}
	k, h := float64(sides[0].elapsed)/float64(sides[0].n), float64(sides[1].elapsed)/float64(sides[1].n)
	b.ReportMetric(k, "ns/request")
	b.ReportMetric(h, "baseline-ns/request")
	b.ReportMetric(k/h, "x-vs-baseline")
}
