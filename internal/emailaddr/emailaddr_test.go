package emailaddr_test

import (
	"testing"

	"github.com/kowai/kowai/internal/emailaddr"
)

func TestNormalize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"victim@corp.test", "victim@corp.test"},
		{"  Victim@Corp.TEST\t", "victim@corp.test"},
		{"ＶＩＣＴＩＭ@corp.test", "victim@corp.test"},                 // full-width letters (compatibility forms)
		{"victim＠corp.test", "victim@corp.test"},                 // full-width at sign
		{"strasse@corp.test", "strasse@corp.test"},               // ß and ss are one address
		{"STRAßE@corp.test", "strasse@corp.test"},                //
		{"v\u0069\u0301ctim@corp.test", "v\u00edctim@corp.test"}, // decomposed accent composes
		{"VÍCTIM@corp.test", "víctim@corp.test"},                 // accents are kept
		{"ﬁle@corp.test", "file@corp.test"},                      // ligature
		{"", ""},
	}
	for _, tt := range tests {
		got := emailaddr.Normalize(tt.in)
		if got != tt.want {
			t.Errorf("Normalize(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if again := emailaddr.Normalize(got); again != got {
			t.Errorf("Normalize is not stable on %q: %q", got, again)
		}
	}
	if emailaddr.Normalize("víctim@corp.test") == emailaddr.Normalize("victim@corp.test") {
		t.Error("an accented address folded onto the plain one")
	}
}
