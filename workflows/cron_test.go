package workflows

import (
	"errors"
	"testing"
	"time"
)

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestCronNext(t *testing.T) {
	cases := []struct {
		spec, after, want string
	}{
		{"* * * * *", "2026-03-04T10:15:30Z", "2026-03-04T10:16:00Z"},
		{"* * * * *", "2026-03-04T10:15:00Z", "2026-03-04T10:16:00Z"}, // strictly after
		{"*/15 * * * *", "2026-03-04T10:15:00Z", "2026-03-04T10:30:00Z"},
		{"*/15 * * * *", "2026-03-04T10:46:00Z", "2026-03-04T11:00:00Z"},
		{"5/20 * * * *", "2026-03-04T10:26:00Z", "2026-03-04T10:45:00Z"},
		{"10-20/5 * * * *", "2026-03-04T10:16:00Z", "2026-03-04T10:20:00Z"},
		{"10-20/5 * * * *", "2026-03-04T10:20:00Z", "2026-03-04T11:10:00Z"},
		{"0,30 9-17 * * *", "2026-03-04T17:30:00Z", "2026-03-05T09:00:00Z"},
		{"0 0 * * *", "2026-12-31T23:59:59Z", "2027-01-01T00:00:00Z"},      // year end
		{"0 0 31 * *", "2026-04-01T00:00:00Z", "2026-05-31T00:00:00Z"},     // April has no 31st
		{"0 0 29 2 *", "2026-01-01T00:00:00Z", "2028-02-29T00:00:00Z"},     // leap day
		{"0 12 28-31 * *", "2026-02-28T12:00:00Z", "2026-03-28T12:00:00Z"}, // February ends on the 28th
		{"0 0 1 * *", "2026-01-31T10:00:00Z", "2026-02-01T00:00:00Z"},
		{"0 9 * * MON-FRI", "2026-03-06T09:00:00Z", "2026-03-09T09:00:00Z"}, // Friday -> Monday
		{"0 9 * * 7", "2026-03-04T00:00:00Z", "2026-03-08T09:00:00Z"},       // 7 is Sunday
		{"0 9 * * sun", "2026-03-04T00:00:00Z", "2026-03-08T09:00:00Z"},
		{"0 0 * JAN,jul *", "2026-02-01T00:00:00Z", "2026-07-01T00:00:00Z"},
		{"0 0 13 * FRI", "2026-03-01T00:00:00Z", "2026-03-06T00:00:00Z"}, // either day field (Vixie)
		{"0 0 13 * FRI", "2026-03-12T00:00:00Z", "2026-03-13T00:00:00Z"},
		{"@hourly", "2026-03-04T10:00:00Z", "2026-03-04T11:00:00Z"},
		{"@daily", "2026-03-04T10:00:00Z", "2026-03-05T00:00:00Z"},
		{"@weekly", "2026-03-04T10:00:00Z", "2026-03-08T00:00:00Z"},
		{"@monthly", "2026-03-04T10:00:00Z", "2026-04-01T00:00:00Z"},
		{"@yearly", "2026-03-04T10:00:00Z", "2027-01-01T00:00:00Z"},
		{"@every 30s", "2026-03-04T10:00:00Z", "2026-03-04T10:00:30Z"},
		{"@every 30s", "2026-03-04T10:00:29.999Z", "2026-03-04T10:00:30Z"},
		{"@every 1h", "2026-03-04T10:20:00Z", "2026-03-04T11:00:00Z"},
		{"@every 1s", "2026-03-04T10:20:00.5Z", "2026-03-04T10:20:01Z"},
	}
	for _, c := range cases {
		s, err := ParseSchedule(c.spec, nil)
		if err != nil {
			t.Fatalf("%q: %v", c.spec, err)
		}
		if got := s.Next(mustTime(t, c.after)).UTC(); !got.Equal(mustTime(t, c.want)) {
			t.Errorf("%q after %s = %s, want %s", c.spec, c.after, got.Format(time.RFC3339), c.want)
		}
	}
}

func TestCronTimezone(t *testing.T) {
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Skipf("no time zone database: %v", err)
	}
	s, err := ParseSchedule("0 9 * * *", tokyo)
	if err != nil {
		t.Fatal(err)
	}
	// 09:00 in Tokyo is 00:00 UTC.
	if got := s.Next(mustTime(t, "2026-03-04T01:00:00Z")).UTC(); !got.Equal(mustTime(t, "2026-03-05T00:00:00Z")) {
		t.Errorf("next = %s", got)
	}
}

func TestCronRejects(t *testing.T) {
	for _, spec := range []string{
		"", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * 32 * *",
		"* * * 13 *", "* * * * 8", "*/0 * * * *", "5-1 * * * *", "a * * * *", "* * * FOO *",
		"@every", "@every 0s", "@every 500ms", "@every soon", "@fortnightly", "0 0 30 2 *",
	} {
		if _, err := ParseSchedule(spec, nil); !errors.Is(err, ErrBadSpec) {
			t.Errorf("%q: err = %v, want ErrBadSpec", spec, err)
		}
	}
}
