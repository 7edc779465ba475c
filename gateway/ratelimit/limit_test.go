package ratelimit_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kowai/kowai/gateway/ratelimit"
)

func TestParseLimit(t *testing.T) {
	tests := []struct {
		in   string
		want ratelimit.Limit
		err  bool
	}{
		{"120/m", ratelimit.Limit{Rate: 120, Period: time.Minute}, false},
		{"10/s", ratelimit.Limit{Rate: 10, Period: time.Second}, false},
		{"1000/h", ratelimit.Limit{Rate: 1000, Period: time.Hour}, false},
		{" 5/m ", ratelimit.Limit{Rate: 5, Period: time.Minute}, false},
		{"", ratelimit.Limit{}, true},
		{"120", ratelimit.Limit{}, true},
		{"/m", ratelimit.Limit{}, true},
		{"0/m", ratelimit.Limit{}, true},
		{"-3/m", ratelimit.Limit{}, true},
		{"1.5/s", ratelimit.Limit{}, true},
		{"10/d", ratelimit.Limit{}, true},
		{"10/min", ratelimit.Limit{}, true},
		{"10/", ratelimit.Limit{}, true},
		{"2000000/s", ratelimit.Limit{}, true},
		{"99999999999999999999/s", ratelimit.Limit{}, true},
	}
	for _, tt := range tests {
		got, err := ratelimit.ParseLimit(tt.in)
		if tt.err {
			if !errors.Is(err, ratelimit.ErrInvalidLimit) {
				t.Errorf("ParseLimit(%q): err %v, want ErrInvalidLimit", tt.in, err)
			}
			if tt.in != "2000000/s" && !strings.Contains(err.Error(), `"120/m"`) {
				t.Errorf("ParseLimit(%q): error %q does not name the accepted form", tt.in, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseLimit(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestLimitString(t *testing.T) {
	tests := []struct {
		in   ratelimit.Limit
		want string
	}{
		{ratelimit.PerMinute(120), "120/m"},
		{ratelimit.PerSecond(10), "10/s"},
		{ratelimit.PerHour(3), "3/h"},
		{ratelimit.Limit{Rate: 10, Period: 15 * time.Minute, Burst: 5}, "10/15m0s burst 5"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.in, got, tt.want)
		}
	}
}
