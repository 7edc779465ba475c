package cluster

import (
	"fmt"
	"time"
)

// watchdog decides from successive membership observations whether this node has been
// dropped by the cluster for longer than the grace period.
type watchdog struct {
	grace   time.Duration
	badFrom time.Time // start of the current bad streak; zero while healthy
}

// observe records one observation at now and returns ErrBlocked or ErrNotMember once
// the node has been blocked or absent from its member list continuously for longer than
// the grace period. Blocked wins: it is permanent, absence may be a late topology.
func (w *watchdog) observe(now time.Time, blocked, member bool) error {
	if !blocked && member {
		w.badFrom = time.Time{}
		return nil
	}
	if w.badFrom.IsZero() {
		w.badFrom = now
	}
	if d := now.Sub(w.badFrom); d > w.grace {
		if blocked {
			return fmt.Errorf("%w (for %s)", ErrBlocked, d.Round(time.Millisecond))
		}
		return fmt.Errorf("%w (for %s)", ErrNotMember, d.Round(time.Millisecond))
	}
	return nil
}
