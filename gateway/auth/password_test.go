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

func TestValidatePassword(t *testing.T) {
	tests := []struct {
		pw string
		ok bool
	}{
		{"12345678", true},
		{"1234567", false},
		{"", false},
		{"äöüßéèêë", true},
		{"äöüßéèê", false},
		{strings.Repeat("a", 1024), true},
		{strings.Repeat("a", 1025), false},
		{"valid\xffpassword", false},
	}
	for _, tt := range tests {
		err := auth.ValidatePassword(tt.pw)
		var fe *auth.FieldError
		if tt.ok != (err == nil) || (err != nil && (!errors.As(err, &fe) || fe.Field != "password" || !errors.Is(err, auth.ErrInvalidInput))) {
			t.Errorf("ValidatePassword(%.20q) = %v, want ok=%v", tt.pw, err, tt.ok)
		}
	}
}
