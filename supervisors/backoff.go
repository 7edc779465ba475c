package supervisors

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Defaults for the zero fields of Backoff and RestartBudget. With them a
// child that crashes at once after every restart is restarted 5 times within
// 3 to 6 seconds (depending on jitter), and the 6th failure escalates.
const (
	DefaultInitialBackoff = 200 * time.Millisecond
	DefaultMaxBackoff     = 10 * time.Second
	DefaultMultiplier     = 2.0
	DefaultMaxRestarts    = 5
	DefaultRestartWindow  = time.Minute
)

// Jitter selects how a Backoff randomises its delays, so that children that
// failed together do not all restart in the same instant.
type Jitter int

// The jitter modes, for a step whose un-jittered delay is d.
const (
	// JitterEqual waits d/2 plus a random part of d/2: in [d/2, d). It is the
	// zero value because it keeps a floor that still doubles, so a crash loop
	// always slows down.
	JitterEqual Jitter = iota
	// JitterFull waits a random part of d: in [0, d). It spreads restarts
	// the most but may restart at once.
	JitterFull
	// JitterNone waits exactly d.
	JitterNone
)

// Backoff computes exponential delays with jitter and a cap: attempt n
// (from 1) has the un-jittered delay min(Max, Initial * Multiplier^(n-1)),
// which Jitter then randomises. A zero field takes its default. The value is
// immutable and safe for concurrent use if Rand is.
type Backoff struct {
	// Initial is the delay of the first attempt; DefaultInitialBackoff if 0.
	Initial time.Duration
	// Max caps every delay; DefaultMaxBackoff if 0.
	Max time.Duration
	// Multiplier is the growth per attempt, at least 1; DefaultMultiplier
	// if 0.
	Multiplier float64
	// Jitter is the randomisation mode; JitterEqual if 0.
	Jitter Jitter
	// Rand returns a number in [0, 1) and must be safe for concurrent use;
	// math/rand/v2's Float64 if nil. Tests inject a fixed value.
	Rand func() float64
}

// Delay returns how long to wait before attempt number attempt, counted from
// 1; a smaller attempt counts as 1.
func (b Backoff) Delay(attempt int) time.Duration {
	b = b.withDefaults()
	d := b.ceiling(attempt)
	switch b.Jitter {
	case JitterNone:
		return d
	case JitterFull:
		return time.Duration(b.Rand() * float64(d))
	default:
		half := d / 2
		return half + time.Duration(b.Rand()*float64(d-half))
	}
}

// Validate reports whether the fields, after defaults, describe a usable
// backoff. Errors wrap ErrInvalidOptions.
func (b Backoff) Validate() error {
	if b.Initial < 0 || b.Max < 0 {
		return fmt.Errorf("%w: backoff durations must not be negative (initial %s, max %s)", ErrInvalidOptions, b.Initial, b.Max)
	}
	b = b.withDefaults()
	switch {
	case !(b.Multiplier >= 1) || math.IsInf(b.Multiplier, 1):
		return fmt.Errorf("%w: backoff multiplier %v must be a finite number >= 1", ErrInvalidOptions, b.Multiplier)
	case b.Max < b.Initial:
		return fmt.Errorf("%w: backoff max %s is below initial %s", ErrInvalidOptions, b.Max, b.Initial)
	case b.Jitter < JitterEqual || b.Jitter > JitterNone:
		return fmt.Errorf("%w: unknown jitter mode %d", ErrInvalidOptions, b.Jitter)
	}
	return nil
}

func (b Backoff) withDefaults() Backoff {
	if b.Initial == 0 {
		b.Initial = DefaultInitialBackoff
	}
	if b.Max == 0 {
		b.Max = DefaultMaxBackoff
	}
	if b.Multiplier == 0 {
		b.Multiplier = DefaultMultiplier
	}
	if b.Rand == nil {
		b.Rand = rand.Float64
	}
	return b
}

// ceiling is the un-jittered delay of an attempt. It is computed in floating
// point so that large attempts saturate at Max instead of overflowing.
func (b Backoff) ceiling(attempt int) time.Duration {
	attempt = max(attempt, 1)
	d := float64(b.Initial) * math.Pow(b.Multiplier, float64(attempt-1))
	if d >= float64(b.Max) {
		return b.Max
	}
	return time.Duration(d)
}

// RestartBudget bounds restarts: a child may be restarted MaxRestarts times
// within any Window; the next failure in that window escalates instead. A
// zero field takes its default.
//
// The window must be longer than the backoff delays of MaxRestarts restarts
// together, or a child in a crash loop would never use up its budget:
// NewStrategy rejects a budget that the un-jittered delays alone would
// outlast.
type RestartBudget struct {
	// MaxRestarts is how many restarts the window allows;
	// DefaultMaxRestarts if 0.
	MaxRestarts int
	// Window is the sliding period restarts are counted over;
	// DefaultRestartWindow if 0.
	Window time.Duration
}

// Validate reports whether the fields are usable. Errors wrap
// ErrInvalidOptions.
func (r RestartBudget) Validate() error {
	if r.MaxRestarts < 0 || r.Window < 0 {
		return fmt.Errorf("%w: restart budget must not be negative (max %d, window %s)", ErrInvalidOptions, r.MaxRestarts, r.Window)
	}
	return nil
}

func (r RestartBudget) withDefaults() RestartBudget {
	if r.MaxRestarts == 0 {
		r.MaxRestarts = DefaultMaxRestarts
	}
	if r.Window == 0 {
		r.Window = DefaultRestartWindow
	}
	return r
}
