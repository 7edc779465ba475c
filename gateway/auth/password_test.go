package auth_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/kowai/kowai/gateway/auth"
)

func newHasher(t testing.TB, p auth.Argon2Params) *auth.Hasher {
	t.Helper()
	h, err := auth.NewHasher(p, 0)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHasherRoundTrip(t *testing.T) {
	h := newHasher(t, auth.TestArgon2Params())
	enc, err := h.Hash(t.Context(), "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("hash %q is not in PHC form", enc)
	}
	other, _ := h.Hash(t.Context(), "correct horse battery")
	if other == enc {
		t.Fatal("two hashes of one password are equal: salt is not random")
	}
	tests := []struct {
		pw     string
		wantOK bool
	}{
		{"correct horse battery", true},
		{"correct horse batterY", false},
		{"", false},
		{"correct horse battery ", false},
	}
	for _, tt := range tests {
		ok, rehash, err := h.Verify(t.Context(), tt.pw, enc)
		if err != nil || ok != tt.wantOK || rehash {
			t.Errorf("Verify(%q) = %v, %v, %v; want %v, false, nil", tt.pw, ok, rehash, err, tt.wantOK)
		}
	}
}

func TestHasherNeedsRehash(t *testing.T) {
	old := newHasher(t, auth.TestArgon2Params())
	enc, _ := old.Hash(t.Context(), "password1")
	stronger := auth.TestArgon2Params()
	stronger.Time = 2
	ok, rehash, err := newHasher(t, stronger).Verify(t.Context(), "password1", enc)
	if err != nil || !ok || !rehash {
		t.Fatalf("Verify with new params = %v, %v, %v; want true, true, nil", ok, rehash, err)
	}
}

func TestHasherRejectsMalformedHashes(t *testing.T) {
	h := newHasher(t, auth.TestArgon2Params())
	good, _ := h.Hash(t.Context(), "password1")
	parts := strings.Split(good, "$")
	for _, bad := range []string{
		"",
		"plaintext",
		"$argon2i$v=19$m=64,t=1,p=1$" + parts[4] + "$" + parts[5],
		"$argon2id$v=16$m=64,t=1,p=1$" + parts[4] + "$" + parts[5],
		"$argon2id$v=19$m=64,t=1,p=1x$" + parts[4] + "$" + parts[5],
		"$argon2id$v=19$m=4294967295,t=1,p=1$" + parts[4] + "$" + parts[5],
		"$argon2id$v=19$m=64,t=0,p=1$" + parts[4] + "$" + parts[5],
		"$argon2id$v=19$m=64,t=1,p=1$!!!$" + parts[5],
		"$argon2id$v=19$m=64,t=1,p=1$" + parts[4] + "$",
		good + "$extra",
	} {
		if ok, _, err := h.Verify(t.Context(), "password1", bad); err == nil || ok {
			t.Errorf("Verify against %q = %v, %v; want an error", bad, ok, err)
		}
	}
}

func TestHasherRejectsUnsafeParams(t *testing.T) {
	for _, p := range []auth.Argon2Params{
		{},
		{Memory: 64, Time: 1, Threads: 1, SaltLen: 4, KeyLen: 32},
		{Memory: 4, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 8},
	} {
		if _, err := auth.NewHasher(p, 1); !errors.Is(err, auth.ErrConfig) {
			t.Errorf("NewHasher(%+v): %v, want ErrConfig", p, err)
		}
	}
}

// TestCheckPassword: the audit's weak passwords (12345678, password, eight
// spaces, the email itself) and their neighbours are refused with a field
// error that says why; ordinary long passwords pass.
func TestCheckPassword(t *testing.T) {
	const email = "Alice.Longname@Example.com"
	tests := []struct {
		pw   string
		ok   bool
		says string // part of the message when refused
	}{
		{"12345678", false, "at least 12"},
		{"password", false, "at least 12"},
		{"        ", false, "at least 12"},
		{"            ", false, "only spaces"},
		{"aaaaaaaaaaaa", false, "repeated"},
		{"qwerty123456", false, "most common"},
		{"QWERTY123456", false, "most common"},
		{"1q2w3e4r5t6y", false, "most common"},
		{" 1qaz2wsx3edc", false, "most common"},
		{"alice.longname@example.com", false, "email"},
		{"ALICE.LONGNAME", false, "email"},
		{"my alice.longname@example.com!", false, "email"},
		{"alice.longname-is-me", true, ""},
		{"correct horse battery", true, ""},
		{"äöüßéèêëäöüß", true, ""},
		{"äöüßéèêëäöü", false, "at least 12"},
		{strings.Repeat("ab", 512), true, ""},
		{strings.Repeat("ab", 512) + "c", false, "at most 1024 bytes"},
		{"valid\xffpassword-long", false, "UTF-8"},
		{"", false, "at least 12"},
	}
	for _, tt := range tests {
		err := auth.CheckPassword(tt.pw, email)
		var fe *auth.FieldError
		if tt.ok != (err == nil) || (err != nil && (!errors.As(err, &fe) || fe.Field != "password" || !errors.Is(err, auth.ErrInvalidInput) || !strings.Contains(fe.Message, tt.says))) {
			t.Errorf("CheckPassword(%.30q) = %v, want ok=%v saying %q", tt.pw, err, tt.ok, tt.says)
		}
	}
	if err := auth.CheckPassword("alice.longname", ""); err != nil {
		t.Errorf("without an email, a long local part is an ordinary password: %v", err)
	}
}

func TestCommonPasswordList(t *testing.T) {
	for _, pw := range []string{"123456", "password", "qwerty", "iloveyou", "Password", "qwertyuiop"} {
		if !auth.IsCommonPassword(pw) {
			t.Errorf("IsCommonPassword(%q) = false", pw)
		}
	}
	if auth.IsCommonPassword("correct horse battery") || auth.IsCommonPassword("") || auth.IsCommonPassword("# The 10,000 most common passwords, most common first, one a line, as") {
		t.Error("an uncommon password, the empty string or a header line counted as common")
	}
}
