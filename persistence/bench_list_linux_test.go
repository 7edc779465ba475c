package persistence_test

import (
	"runtime"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
)

// BenchmarkConversationList measures the CPU of one page of a user's conversations
// (ListByOwner, 20 conversations) on SQLite, against the same page built with goqu and
// run without the statement cache (each query compiled again by SQLite), alternating
// rounds on the same database. Times are the CPU time of the calling thread, which on
// SQLite does the whole query, so the machine's load inflates them less than wall
// time. x-vs-baseline is the listing's time over the uncached goqu form's.
func BenchmarkConversationList(b *testing.B) {
	db := persisttest.SQLite(b)
	owner, err := persistence.NewUserStore(db).Create(b.Context(), persistence.User{Email: "bench@example.com", Name: "Bench"})
	if err != nil {
		b.Fatal(err)
	}
	convs := persistence.NewConversationStore(db)
	for range 20 {
		if _, err := convs.Create(b.Context(), persistence.Conversation{OwnerID: owner.ID, AgentID: "agent", Title: "bench"}); err != nil {
			b.Fatal(err)
		}
	}
	uncached := persistence.NewConversationStore(persistence.Uncached(db))
	sides := []struct {
		list    func() (persistence.Page[persistence.Conversation], error)
		n       int
		elapsed time.Duration
	}{
		{list: func() (persistence.Page[persistence.Conversation], error) {
			return convs.ListByOwner(b.Context(), owner.ID, persistence.PageRequest{})
		}},
		{list: func() (persistence.Page[persistence.Conversation], error) {
			return persistence.ListByOwnerWithGoqu(b.Context(), uncached, owner.ID, persistence.PageRequest{})
		}},
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const chunk = 100
	for b.Loop() {
		for round := range 2 {
			for i := range sides {
				s := &sides[(i+round)%2]
				start := threadCPU(b)
				for range chunk {
					page, err := s.list()
					if err != nil || len(page.Items) != 20 {
						b.Fatalf("listed %d conversations, %v", len(page.Items), err)
					}
				}
				s.elapsed += threadCPU(b) - start
				s.n += chunk
			}
		}
	}
	k, h := sides[0].elapsed.Seconds()/float64(sides[0].n), sides[1].elapsed.Seconds()/float64(sides[1].n)
	b.ReportMetric(k*1e9, "ns/list")
	b.ReportMetric(h*1e9, "baseline-ns/list")
	b.ReportMetric(k/h, "x-vs-baseline")
}

// threadCPU is the CPU time the calling OS thread has used (CLOCK_THREAD_CPUTIME_ID).
func threadCPU(b *testing.B) time.Duration {
	b.Helper()
	var ts syscall.Timespec
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 3, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		b.Fatalf("clock_gettime: %v", errno)
	}
	return time.Duration(ts.Nano())
}
