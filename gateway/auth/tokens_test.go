package auth_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/kowai/kowai/gateway/auth"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

func newTokens(t *testing.T, clock func() time.Time) *auth.Tokens {
	t.Helper()
	tok, err := auth.NewTokens(auth.TokenConfig{Secret: testSecret, Issuer: "kowai", Audience: "kowai", AccessTTL: 15 * time.Minute, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestNewTokensRejectsWeakSecret(t *testing.T) {
	_, err := auth.NewTokens(auth.TokenConfig{Secret: testSecret[:31], Issuer: "kowai", Audience: "kowai"})
	if !errors.Is(err, auth.ErrWeakSecret) {
		t.Fatalf("31-byte secret: %v, want ErrWeakSecret", err)
	}
}

func TestTokenRoundTrip(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	tok := newTokens(t, func() time.Time { return now })
	signed, issued, err := tok.Issue("u1", "s1", []auth.Role{auth.RoleUser, auth.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	c, err := tok.Verify(signed)
	if err != nil {
		t.Fatal(err)
	}
	p := c.Principal()
	if p.UserID != "u1" || p.SessionID != "s1" || p.TokenID != issued.ID || p.TokenID == "" || len(p.Roles) != 2 ||
		!p.ExpiresAt.Equal(now.Add(15*time.Minute)) {
		t.Fatalf("principal %+v", p)
	}
	if c.ExpiresAt.Sub(c.IssuedAt.Time) != 15*time.Minute || !c.NotBefore.Equal(c.IssuedAt.Time) {
		t.Fatalf("exp/nbf/iat = %v/%v/%v", c.ExpiresAt, c.NotBefore, c.IssuedAt)
	}
}

// sign builds a token with arbitrary claims and method, for the hostile cases.
func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerifyRejectsHostileTokens(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	tok := newTokens(t, func() time.Time { return now })
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(&rsaKey.PublicKey))})

	good := func() jwt.MapClaims {
		return jwt.MapClaims{
			"iss": "kowai", "aud": []string{"kowai"}, "sub": "u1", "sid": "s1", "jti": "j1",
			"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Minute).Unix(), "roles": []string{"user"},
		}
	}
	with := func(k string, v any) jwt.MapClaims {
		c := good()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	valid := sign(t, jwt.SigningMethodHS256, testSecret, good())
	if _, err := tok.Verify(valid); err != nil {
		t.Fatalf("the baseline token must verify: %v", err)
	}
	tampered := valid[:len(valid)-2] + map[bool]string{true: "AA", false: "BB"}[!strings.HasSuffix(valid, "AA")]
	parts := strings.Split(valid, ".")

	tests := []struct {
		name  string
		token string
	}{
		{"empty", ""},
		{"garbage", "not.a.jwt"},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good())},
		{"RS256 signed", sign(t, jwt.SigningMethodRS256, rsaKey, good())},
		{"HS/RS confusion: HS256 keyed with the RSA public key", sign(t, jwt.SigningMethodHS256, pubPEM, good())},
		{"HS384", sign(t, jwt.SigningMethodHS384, testSecret, good())},
		{"HS512", sign(t, jwt.SigningMethodHS512, testSecret, good())},
		{"wrong secret", sign(t, jwt.SigningMethodHS256, []byte("ffffffffffffffffffffffffffffffff"), good())},
		{"tampered signature", tampered},
		{"payload swapped", parts[0] + "." + strings.Split(sign(t, jwt.SigningMethodHS256, testSecret, with("roles", []string{"admin"})), ".")[1] + "." + parts[2]},
		{"expired beyond leeway", sign(t, jwt.SigningMethodHS256, testSecret, with("exp", now.Add(-31*time.Second).Unix()))},
		{"not yet valid beyond leeway", sign(t, jwt.SigningMethodHS256, testSecret, with("nbf", now.Add(31*time.Second).Unix()))},
		{"issued in the future beyond leeway", sign(t, jwt.SigningMethodHS256, testSecret, with("iat", now.Add(31*time.Second).Unix()))},
		{"no exp", sign(t, jwt.SigningMethodHS256, testSecret, with("exp", nil))},
		{"wrong iss", sign(t, jwt.SigningMethodHS256, testSecret, with("iss", "evil"))},
		{"no iss", sign(t, jwt.SigningMethodHS256, testSecret, with("iss", nil))},
		{"wrong aud", sign(t, jwt.SigningMethodHS256, testSecret, with("aud", []string{"other"}))},
		{"no aud", sign(t, jwt.SigningMethodHS256, testSecret, with("aud", nil))},
		{"no sub", sign(t, jwt.SigningMethodHS256, testSecret, with("sub", nil))},
		{"no sid", sign(t, jwt.SigningMethodHS256, testSecret, with("sid", nil))},
		{"empty sid", sign(t, jwt.SigningMethodHS256, testSecret, with("sid", ""))},
		{"no jti", sign(t, jwt.SigningMethodHS256, testSecret, with("jti", nil))},
		{"unknown role", sign(t, jwt.SigningMethodHS256, testSecret, with("roles", []string{"root"}))},
		{"roles not a list", sign(t, jwt.SigningMethodHS256, testSecret, with("roles", 7))},
		{"exp as string", sign(t, jwt.SigningMethodHS256, testSecret, with("exp", "tomorrow"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c, err := tok.Verify(tt.token); !errors.Is(err, auth.ErrInvalidToken) {
				t.Fatalf("Verify = %+v, %v; want ErrInvalidToken", c, err)
			}
		})
	}
}

func TestVerifyLeeway(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	tok := newTokens(t, func() time.Time { return now })
	for _, c := range []jwt.MapClaims{
		{"exp": now.Add(-29 * time.Second).Unix(), "nbf": now.Add(-time.Minute).Unix(), "iat": now.Add(-time.Minute).Unix()},
		{"exp": now.Add(time.Minute).Unix(), "nbf": now.Add(29 * time.Second).Unix(), "iat": now.Add(29 * time.Second).Unix()},
	} {
		for k, v := range map[string]any{"iss": "kowai", "aud": "kowai", "sub": "u", "sid": "s", "jti": "j"} {
			c[k] = v
		}
		if _, err := tok.Verify(sign(t, jwt.SigningMethodHS256, testSecret, c)); err != nil {
			t.Errorf("claims %v within the 30 s leeway: %v", c, err)
		}
	}
}

func TestRefreshTokens(t *testing.T) {
	a, ha := auth.NewRefreshToken()
	b, hb := auth.NewRefreshToken()
	if a == b || ha == hb || len(a) != 43 || len(ha) != 64 || ha != auth.HashRefreshToken(a) || strings.Contains(ha, a) {
		t.Fatalf("refresh tokens %q/%q with hashes %q/%q", a, b, ha, hb)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestVerifyCacheRechecksTime(t *testing.T) {
	issued := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		later time.Duration // clock offset from issue at the second Verify
		ok    bool
	}{
		{"a minute later", time.Minute, true},
		{"inside exp leeway", 15*time.Minute + 29*time.Second, true},
		{"past exp and leeway", 15*time.Minute + 31*time.Second, false},
		{"clock set back inside the leeway", -29 * time.Second, true},
		{"clock set back before iat and leeway", -31 * time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &clock{now: issued}
			tok := newTokens(t, c.Now)
			signed, _, err := tok.Issue("u1", "s1", []auth.Role{auth.RoleUser})
			if err != nil {
				t.Fatal(err)
			}
			first, err := tok.Verify(signed)
			if err != nil {
				t.Fatal(err)
			}
			first.Roles[0] = auth.RoleAdmin // a caller's change must not reach the cache
			c.Advance(tc.later)
			again, err := tok.Verify(signed)
			if tc.ok && (err != nil || again.Subject != "u1" || again.SessionID != "s1" || len(again.Roles) != 1 || again.Roles[0] != auth.RoleUser) {
				t.Fatalf("second Verify = %+v, %v; want the original claims", again, err)
			}
			if !tc.ok && !errors.Is(err, auth.ErrInvalidToken) {
				t.Fatalf("second Verify = %+v, %v; want ErrInvalidToken", again, err)
			}
		})
	}
}
