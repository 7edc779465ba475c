package gopool

import (
	"bytes"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// goid is the calling goroutine's ID, read from its stack trace's header.
func goid() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	id, err := strconv.ParseUint(string(b[:bytes.IndexByte(b, ' ')]), 10, 64)
	if err != nil {
		panic(err)
	}
	return id
}

// run hands fn to p and returns the ID of the goroutine that ran it, once it has.
func run(p *Pool) uint64 {
	ids := make(chan uint64, 1)
	p.Go(func() { ids <- goid() })
	return <-ids
}

func TestPoolReusesAnIdleGoroutine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := New(time.Second)
		first := run(p)
		synctest.Wait() // the goroutine is idle, waiting for work
		if again := run(p); again != first {
			t.Fatalf("second function ran on goroutine %d, want the idle goroutine %d", again, first)
		}
		time.Sleep(2 * time.Second) // the idle goroutine ends
	})
}

func TestPoolIdleGoroutineEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := New(time.Second)
		first := run(p)
		time.Sleep(999 * time.Millisecond)
		synctest.Wait()
		if again := run(p); again != first {
			t.Fatalf("goroutine %d ended before its idle time, %d ran the function", first, again)
		}
		time.Sleep(time.Second + time.Millisecond)
		synctest.Wait()
		if again := run(p); again == first {
			t.Fatalf("goroutine %d idle for longer than its idle time still ran a function", first)
		}
		time.Sleep(2 * time.Second) // the idle goroutine ends
	})
}

func TestPoolRunsBesideBusyGoroutines(t *testing.T) {
	p := New(0)
	release := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		p.Go(func() {
			defer wg.Done()
			<-release
		})
	}
	// Every function above is blocked: this one runs only on a goroutine of its own.
	done := make(chan struct{})
	p.Go(func() { close(done) })
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a function waited behind busy ones")
	}
	close(release)
	wg.Wait()
}

func TestPoolKeepsNothingOfAFinishedFunction(t *testing.T) {
	p := New(time.Hour)
	collected := make(chan struct{})
	func() {
		big := new([1 << 16]byte)
		runtime.AddCleanup(big, func(ch chan struct{}) { close(ch) }, collected)
		ran := make(chan struct{})
		p.Go(func() {
			big[0] = 1
			close(ran)
		})
		<-ran
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		select {
		case <-collected:
			return
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("an idle goroutine keeps what its last function captured")
		}
	}
}

// orderedActor records the messages it receives.
type orderedActor struct {
	got  []int
	done chan []int
	n    int
}

func (a *orderedActor) Receive(ctx actor.Context) {
	if i, ok := ctx.Message().(int); ok {
		a.got = append(a.got, i)
		if len(a.got) == a.n {
			a.done <- a.got
		}
	}
}

func TestDispatcherRunsAMailboxInOrder(t *testing.T) {
	system := actor.NewActorSystem()
	defer system.Shutdown()
	const n = 5000
	a := &orderedActor{done: make(chan []int, 1), n: n}
	pid := system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return a }, actor.WithDispatcher(New(0).Dispatcher())))
	for i := range n {
		system.Root.Send(pid, i)
	}
	select {
	case got := <-a.done:
		for i, v := range got {
			if v != i {
				t.Fatalf("message %d is %d: the mailbox ran out of order", i, v)
			}
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the actor received %d of %d messages", len(a.got), n)
	}
}

// deep uses about n KiB of stack.
//
//go:noinline
func deep(n int) byte {
	var pad [1000]byte
	pad[n%len(pad)] = byte(n)
	if n == 0 {
		return pad[0]
	}
	return deep(n-1) + pad[n%len(pad)]
}

var sink byte

// BenchmarkDeepCall runs a call chain using 32 KiB of stack on a new goroutine
// (go) and on the pool (pool), one after the other.
func BenchmarkDeepCall(b *testing.B) {
	done := make(chan byte)
	b.Run("go", func(b *testing.B) {
		for b.Loop() {
			go func() { done <- deep(32) }()
			sink = <-done
		}
	})
	b.Run("pool", func(b *testing.B) {
		p := New(0)
		for b.Loop() {
			p.Go(func() { done <- deep(32) })
			sink = <-done
		}
	})
}
