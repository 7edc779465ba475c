package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	_ "embed" // the common password list
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/kowai/kowai/internal/emailaddr"
)

// Password policy bounds.
const (
	// MinPasswordChars is the fewest characters (Unicode code points) a
	// password may have (OWASP ASVS 2.1.1).
	MinPasswordChars = 12
	// MaxPasswordBytes caps a password's size so hashing cost stays bounded.
	MaxPasswordBytes = 1024
)

// commonPasswordsFile is the list CheckPassword refuses; its header says
// where it comes from.
//
//go:embed common_passwords.txt
var commonPasswordsFile string

// commonPasswords is the set of commonPasswordsFile's entries, built on
// first use and never changed after.
var commonPasswords = sync.OnceValue(func() map[string]struct{} {
	set := make(map[string]struct{}, 10_000)
	for line := range strings.Lines(commonPasswordsFile) {
		line = strings.TrimRight(line, "\r\n")
		if line != "" && !strings.HasPrefix(line, "#") {
			set[line] = struct{}{}
		}
	}
	return set
})

// IsCommonPassword reports whether pw, ignoring case, is one of the 10,000
// most common passwords of the embedded list.
func IsCommonPassword(pw string) bool {
	_, ok := commonPasswords()[strings.ToLower(pw)]
	return ok
}

// CheckPassword is the password policy, for every place a password is set
// (registration, password change, user creation, the first admin, kowai
// user create): valid UTF-8, at least MinPasswordChars characters, at most
// MaxPasswordBytes bytes, not only white space or one repeated character,
// not one of the 10,000 most common passwords, and not the account's email
// or the email's local part (ignoring case). email may be empty when there
// is none. A failure is a *FieldError for field "password" whose message
// says what to change.
func CheckPassword(pw, email string) error {
	fail := func(msg string) error { return &FieldError{Field: "password", Message: msg} }
	switch {
	case !utf8.ValidString(pw):
		return fail("must be valid UTF-8")
	case len(pw) > MaxPasswordBytes:
		return fail(fmt.Sprintf("must be at most %d bytes", MaxPasswordBytes))
	case utf8.RuneCountInString(pw) < MinPasswordChars:
		return fail(fmt.Sprintf("must be at least %d characters", MinPasswordChars))
	case strings.TrimSpace(pw) == "":
		return fail("must not be only spaces")
	case oneRepeatedRune(pw):
		return fail("must not be one character repeated")
	case IsCommonPassword(pw) || IsCommonPassword(strings.TrimSpace(pw)):
		return fail("is one of the most common passwords; choose one that is harder to guess")
	}
	if email != "" {
		lower := emailaddr.Normalize(pw)
		e := emailaddr.Normalize(email)
		local, _, _ := strings.Cut(e, "@")
		if e != "" && (strings.Contains(lower, e) || lower == local) {
			return fail("must not be your email address or its part before the @")
		}
	}
	return nil
}

// ValidatePassword checks pw against the policy without an email.
//
// Deprecated: use CheckPassword, which also refuses the account's email.
func ValidatePassword(pw string) error { return CheckPassword(pw, "") }

func oneRepeatedRune(s string) bool {
	first, _ := utf8.DecodeRuneInString(s)
	for _, r := range s {
		if r != first {
			return false
		}
	}
	return true
}

// Argon2Params are argon2id cost parameters.
type Argon2Params struct {
	// Memory is in KiB.
	Memory uint32
	// Time is the number of passes.
	Time uint32
	// Threads is the parallelism.
	Threads uint8
	// SaltLen and KeyLen are in bytes.
	SaltLen, KeyLen uint32
}

// DefaultArgon2Params returns OWASP's recommended argon2id setting (19 MiB,
// two passes, one thread): tens of milliseconds per hash on a server core.
func DefaultArgon2Params() Argon2Params {
	return Argon2Params{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
}

// TestArgon2Params returns parameters cheap enough for tests. Never use them
// in production: they offer little resistance to offline guessing.
func TestArgon2Params() Argon2Params {
	return Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
}

// Upper bounds accepted when decoding a stored hash, so a corrupted or
// hostile row cannot make one verification allocate gigabytes.
const (
	maxArgon2Memory  = 1 << 20 // 1 GiB in KiB
	maxArgon2Time    = 64
	maxArgon2Threads = 64
	maxArgon2Bytes   = 1024
)

func (p Argon2Params) validate() error {
	switch {
	case p.Time < 1 || p.Time > maxArgon2Time:
		return fmt.Errorf("%w: argon2 time %d out of range 1..%d", ErrConfig, p.Time, maxArgon2Time)
	case p.Threads < 1 || p.Threads > maxArgon2Threads:
		return fmt.Errorf("%w: argon2 threads %d out of range 1..%d", ErrConfig, p.Threads, maxArgon2Threads)
	case p.Memory < 8*uint32(p.Threads) || p.Memory > maxArgon2Memory:
		return fmt.Errorf("%w: argon2 memory %d KiB out of range %d..%d", ErrConfig, p.Memory, 8*uint32(p.Threads), maxArgon2Memory)
	case p.SaltLen < 8 || p.SaltLen > maxArgon2Bytes || p.KeyLen < 16 || p.KeyLen > maxArgon2Bytes:
		return fmt.Errorf("%w: argon2 salt %d / key %d bytes out of range", ErrConfig, p.SaltLen, p.KeyLen)
	}
	return nil
}

// errBadHash means a stored hash is not an argon2id PHC string this package
// can verify.
var errBadHash = errors.New("auth: malformed password hash")

// Hasher hashes and verifies passwords with argon2id in PHC string form:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>
//
// (unpadded standard base64). At most MaxConcurrent hashes run at once, so a
// burst of logins cannot allocate Memory KiB per request without bound.
type Hasher struct {
	params Argon2Params
	sem    chan struct{}
	dummy  string
}

// NewHasher returns a Hasher using params for new hashes; maxConcurrent <= 0
// means GOMAXPROCS. It fails on parameters outside safe bounds.
func NewHasher(params Argon2Params, maxConcurrent int) (*Hasher, error) {
	if err := params.validate(); err != nil {
		return nil, err
	}
	if maxConcurrent <= 0 {
		maxConcurrent = runtime.GOMAXPROCS(0)
	}
	h := &Hasher{params: params, sem: make(chan struct{}, maxConcurrent)}
	dummy, err := h.Hash(context.Background(), rand.Text())
	if err != nil {
		return nil, err
	}
	h.dummy = dummy
	return h, nil
}

// Hash returns the PHC string for pw. It does not apply the password policy;
// callers validate first.
func (h *Hasher) Hash(ctx context.Context, pw string) (string, error) {
	salt := make([]byte, h.params.SaltLen)
	_, _ = rand.Read(salt) // crypto/rand.Read never fails (it aborts the program instead)
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(pw), salt, h.params.Time, h.params.Memory, h.params.Threads, h.params.KeyLen)
	<-h.sem
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version,
		h.params.Memory, h.params.Time, h.params.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// Verify reports whether pw matches encoded, comparing in constant time, and
// whether encoded was made with parameters other than the current ones and
// should be replaced by a fresh Hash after a successful login.
func (h *Hasher) Verify(ctx context.Context, pw, encoded string) (ok, needsRehash bool, err error) {
	params, salt, want, err := decodeHash(encoded)
	if err != nil {
		return false, false, err
	}
	if err := h.acquire(ctx); err != nil {
		return false, false, err
	}
	got := argon2.IDKey([]byte(pw), salt, params.Time, params.Memory, params.Threads, uint32(len(want)))
	<-h.sem
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return false, false, nil
	}
	return true, params != h.params, nil
}

// VerifyDummy spends the same time as a Verify of a real hash and always
// fails. Login calls it when the email is unknown, so response time does not
// reveal which emails exist.
func (h *Hasher) VerifyDummy(ctx context.Context, pw string) error {
	_, _, err := h.Verify(ctx, pw, h.dummy)
	return err
}

func (h *Hasher) acquire(ctx context.Context) error {
	select {
	case h.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("auth: waiting to hash a password: %w", ctx.Err())
	}
}

func decodeHash(encoded string) (Argon2Params, []byte, []byte, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return Argon2Params{}, nil, nil, fmt.Errorf("%w: not an argon2id PHC string", errBadHash)
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return Argon2Params{}, nil, nil, fmt.Errorf("%w: unsupported version %q", errBadHash, parts[2])
	}
	var p Argon2Params
	if n, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil || n != 3 ||
		fmt.Sprintf("m=%d,t=%d,p=%d", p.Memory, p.Time, p.Threads) != parts[3] {
		return Argon2Params{}, nil, nil, fmt.Errorf("%w: bad parameters %q", errBadHash, parts[3])
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return Argon2Params{}, nil, nil, fmt.Errorf("%w: salt: %w", errBadHash, err)
	}
	key, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil {
		return Argon2Params{}, nil, nil, fmt.Errorf("%w: hash: %w", errBadHash, err)
	}
	p.SaltLen, p.KeyLen = uint32(len(salt)), uint32(len(key))
	if err := p.validate(); err != nil {
		return Argon2Params{}, nil, nil, fmt.Errorf("%w: %w", errBadHash, err)
	}
	return p, salt, key, nil
}
