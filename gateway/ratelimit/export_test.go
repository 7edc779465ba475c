package ratelimit

// Queued returns how many checks wait for r's next round trip, for tests that
// must know every check has queued before they release a held round trip.
func Queued(r *Redis) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.queue)
}
