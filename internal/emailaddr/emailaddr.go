// Package emailaddr holds the one canonical form of an email address that
// kowai stores, compares and throttles on.
//
// # Why one form
//
// Two spellings that a database collation, a mail server or a person would
// treat as the same address ("Victim@corp.test", "victim@corp.test",
// "ｖictim@corp.test") must be one account and one throttle key, and two
// spellings that are really different ("víctim" and "victim") must not be
// folded together by a database collation behind the application's back.
// So every entry point normalizes with Normalize, and the database compares
// the stored bytes exactly (a binary collation).
//
//	key := emailaddr.Normalize("  Ｖictim@Corp.TEST ") // "victim@corp.test"
package emailaddr

import (
	"strings"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Normalize returns email trimmed of surrounding white space, in Unicode
// normalization form KC, case folded (full Unicode case folding, so "ß"
// becomes "ss"), and in form KC again (folding can leave a string that is
// not). Accents are kept: "víctim" and "victim" stay different. The result is
// stable: Normalize(Normalize(s)) == Normalize(s). It does not validate; the
// caller checks that the result is an address.
func Normalize(email string) string {
	s := norm.NFKC.String(strings.TrimSpace(email))
	// A Caser is stateful, so each call makes its own.
	s = cases.Fold().String(s)
	return strings.TrimSpace(norm.NFKC.String(s))
}
