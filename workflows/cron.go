package workflows

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrBadSpec reports a schedule spec that does not parse; the wrapped message
// names the field and the accepted form.
var ErrBadSpec = errors.New("workflows: invalid schedule spec")

// MinEvery is the shortest @every interval a schedule accepts.
const MinEvery = time.Second

// searchYears bounds how far Next looks for a matching time; a spec with no match
// within it (such as "0 0 30 2 *") is refused by ParseSchedule.
const searchYears = 5

// CronSchedule is a parsed schedule spec: the standard five cron fields
// ("minute hour day-of-month month day-of-week", with *, lists, ranges, steps and
// the names JAN-DEC and SUN-SAT), a macro (@yearly, @annually, @monthly, @weekly,
// @daily, @midnight, @hourly), or "@every DURATION" (Go duration syntax, at least
// MinEvery). Cron fields are read in the schedule's location. As in Vixie cron, when
// both day-of-month and day-of-week are restricted a day matching either fires.
//
// @every ticks are the multiples of the interval since the Unix epoch, so every node
// computes the same tick times for a schedule (a run ID derived from a tick is the
// same everywhere).
type CronSchedule struct {
	spec  string
	every time.Duration
	loc   *time.Location
	// bit sets of the allowed values of each field
	minute, hour, dom, month, dow uint64
	// domAny / dowAny: the field was "*" (or "?"), which matters for the
	// day-of-month / day-of-week union rule.
	domAny, dowAny bool
}

var cronMacros = map[string]string{
	"@yearly":   "0 0 1 1 *",
	"@annually": "0 0 1 1 *",
	"@monthly":  "0 0 1 * *",
	"@weekly":   "0 0 * * 0",
	"@daily":    "0 0 * * *",
	"@midnight": "0 0 * * *",
	"@hourly":   "0 * * * *",
}

var monthNames = map[string]int{"JAN": 1, "FEB": 2, "MAR": 3, "APR": 4, "MAY": 5, "JUN": 6,
	"JUL": 7, "AUG": 8, "SEP": 9, "OCT": 10, "NOV": 11, "DEC": 12}

var dayNames = map[string]int{"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6}

type cronField struct {
	name     string
	min, max int
	names    map[string]int
}

var cronFields = [5]cronField{
	{"minute", 0, 59, nil},
	{"hour", 0, 23, nil},
	{"day of month", 1, 31, nil},
	{"month", 1, 12, monthNames},
	{"day of week", 0, 7, dayNames}, // 7 is Sunday too
}

// ParseSchedule parses spec in loc (nil: UTC). Errors wrap ErrBadSpec.
func ParseSchedule(spec string, loc *time.Location) (*CronSchedule, error) {
	if loc == nil {
		loc = time.UTC
	}
	s := &CronSchedule{spec: spec, loc: loc}
	trimmed := strings.TrimSpace(spec)
	if rest, ok := strings.CutPrefix(trimmed, "@every"); ok {
		d, err := time.ParseDuration(strings.TrimSpace(rest))
		if err != nil || strings.TrimSpace(rest) == "" {
			return nil, fmt.Errorf("%w: %q: @every needs a duration such as 30s, 5m or 1h30m", ErrBadSpec, spec)
		}
		if d < MinEvery {
			return nil, fmt.Errorf("%w: %q: @every must be at least %s", ErrBadSpec, spec, MinEvery)
		}
		s.every = d
		return s, nil
	}
	if strings.HasPrefix(trimmed, "@") {
		m, ok := cronMacros[strings.ToLower(trimmed)]
		if !ok {
			return nil, fmt.Errorf("%w: %q: unknown macro (accepted: @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly, @every DURATION)", ErrBadSpec, spec)
		}
		trimmed = m
	}
	parts := strings.Fields(trimmed)
	if len(parts) != 5 {
		return nil, fmt.Errorf("%w: %q: want 5 fields (minute hour day-of-month month day-of-week) or a macro, got %d fields", ErrBadSpec, spec, len(parts))
	}
	sets := [5]*uint64{&s.minute, &s.hour, &s.dom, &s.month, &s.dow}
	for i, p := range parts {
		bits, err := parseCronField(p, cronFields[i])
		if err != nil {
			return nil, fmt.Errorf("%w: %q: %s", ErrBadSpec, spec, err.Error())
		}
		*sets[i] = bits
	}
	if s.dow&(1<<7) != 0 {
		s.dow |= 1 // 7 means Sunday
	}
	s.domAny = parts[2] == "*" || parts[2] == "?"
	s.dowAny = parts[4] == "*" || parts[4] == "?"
	if s.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, loc)).IsZero() {
		return nil, fmt.Errorf("%w: %q: never fires", ErrBadSpec, spec)
	}
	return s, nil
}

// parseCronField parses one comma-separated field into a bit set.
func parseCronField(text string, f cronField) (uint64, error) {
	var bits uint64
	for item := range strings.SplitSeq(text, ",") {
		rng, stepText, hasStep := strings.Cut(item, "/")
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepText)
			if err != nil || n < 1 {
				return 0, fmt.Errorf("%s: step %q must be a positive number", f.name, stepText)
			}
			step = n
		}
		lo, hi := f.min, f.max
		switch {
		case rng == "*" || rng == "?":
			if f.name == "day of week" {
				hi = 6
			}
		default:
			a, b, isRange := strings.Cut(rng, "-")
			var err error
			if lo, err = cronValue(a, f); err != nil {
				return 0, err
			}
			hi = lo
			if isRange {
				if hi, err = cronValue(b, f); err != nil {
					return 0, err
				}
				if hi < lo {
					return 0, fmt.Errorf("%s: range %q ends before it starts", f.name, rng)
				}
			} else if hasStep {
				hi = f.max // "5/15" means 5-max/15
			}
		}
		for v := lo; v <= hi; v += step {
			bits |= 1 << uint(v)
		}
	}
	return bits, nil
}

func cronValue(text string, f cronField) (int, error) {
	if v, ok := f.names[strings.ToUpper(text)]; ok {
		return v, nil
	}
	v, err := strconv.Atoi(text)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a number%s", f.name, text, namesHint(f))
	}
	if v < f.min || v > f.max {
		return 0, fmt.Errorf("%s: %d is outside %d-%d", f.name, v, f.min, f.max)
	}
	return v, nil
}

func namesHint(f cronField) string {
	switch f.name {
	case "month":
		return " or a month name (JAN-DEC)"
	case "day of week":
		return " or a day name (SUN-SAT)"
	}
	return ""
}

// String returns the spec as given.
func (s *CronSchedule) String() string { return s.spec }

// Location returns the time zone cron fields are read in.
func (s *CronSchedule) Location() *time.Location { return s.loc }

// Next returns the first tick strictly after t, or the zero time when there is
// none within five years.
func (s *CronSchedule) Next(t time.Time) time.Time {
	if s.every > 0 {
		d := s.every.Nanoseconds()
		n := t.UnixNano()
		next := (n/d + 1) * d
		if n < 0 && n%d != 0 {
			next = (n / d) * d
		}
		return time.Unix(0, next).In(t.Location())
	}
	orig := t.Location()
	t = t.In(s.loc).Truncate(time.Minute).Add(time.Minute)
	limit := t.AddDate(searchYears, 0, 0)
	for t.Before(limit) {
		if s.month&(1<<uint(t.Month())) == 0 {
			t = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, s.loc)
			continue
		}
		if !s.dayMatches(t) {
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, s.loc)
			continue
		}
		if s.hour&(1<<uint(t.Hour())) == 0 {
			t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour()+1, 0, 0, 0, s.loc)
			continue
		}
		if s.minute&(1<<uint(t.Minute())) == 0 {
			t = t.Truncate(time.Minute).Add(time.Minute)
			continue
		}
		return t.In(orig)
	}
	return time.Time{}
}

func (s *CronSchedule) dayMatches(t time.Time) bool {
	dom := s.dom&(1<<uint(t.Day())) != 0
	dow := s.dow&(1<<uint(t.Weekday())) != 0
	if s.domAny || s.dowAny {
		return dom && dow
	}
	return dom || dow
}

// ErrBadTimezone reports a schedule time zone that is not a known IANA name.
var ErrBadTimezone = errors.New("workflows: unknown time zone")

// ParseScheduleIn parses spec in the IANA time zone timezone ("" or "UTC": UTC).
// Errors wrap ErrBadSpec or ErrBadTimezone.
func ParseScheduleIn(spec, timezone string) (*CronSchedule, error) {
	loc := time.UTC
	if timezone != "" && timezone != "UTC" {
		l, err := time.LoadLocation(timezone)
		if err != nil || timezone == "Local" {
			return nil, fmt.Errorf("%w: %q (use an IANA name such as Europe/Berlin)", ErrBadTimezone, timezone)
		}
		loc = l
	}
	return ParseSchedule(spec, loc)
}
