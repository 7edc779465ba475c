package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// AppwriteConfig configures NewAppwriteVerifier.
type AppwriteConfig struct {
	// Endpoint is the Appwrite API base URL including its version path,
	// e.g. "https://cloud.appwrite.io/v1". Required.
	Endpoint string
	// ProjectID is sent as X-Appwrite-Project. Required.
	ProjectID string
	// LabelRoles maps Appwrite user labels to kowai roles. Nil means
	// {"premium": premium, "moderator": moderator}. The admin role is only
	// ever granted when this map names it explicitly.
	LabelRoles map[string]Role
	// Timeout bounds one verification call; default 5 seconds.
	Timeout time.Duration
	// MaxResponseBytes bounds the body read from Appwrite; default 64 KiB.
	MaxResponseBytes int64
	// Client sends the requests; nil means a client with Timeout.
	Client *http.Client
}

// AppwriteUser is the part of Appwrite's account object kowai uses.
type AppwriteUser struct {
	// ID is Appwrite's $id for the account.
	ID string `json:"$id"`
	// Email is the account's email, possibly unverified.
	Email string `json:"email"`
	// Name is the display name.
	Name string `json:"name"`
	// Labels are the account's labels, mapped to roles by LabelRoles.
	Labels []string `json:"labels"`
	// Status is false for blocked accounts.
	Status bool `json:"status"`
	// EmailVerification reports whether Appwrite verified Email.
	EmailVerification bool `json:"emailVerification"`
}

// maxAppwriteJWTBytes rejects absurd inputs before any network call; Appwrite
// JWTs are a few hundred bytes.
const maxAppwriteJWTBytes = 8192

// AppwriteVerifier checks Appwrite JWTs by asking the Appwrite server who
// they belong to: GET {Endpoint}/account with X-Appwrite-Project and
// X-Appwrite-JWT. The server's answer is the proof; kowai never needs
// Appwrite's signing key.
type AppwriteVerifier struct {
	accountURL string
	cfg        AppwriteConfig
}

// NewAppwriteVerifier validates cfg; ErrConfig names the bad field.
func NewAppwriteVerifier(cfg AppwriteConfig) (*AppwriteVerifier, error) {
	u, err := url.Parse(strings.TrimRight(cfg.Endpoint, "/"))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("%w: appwrite endpoint %q must be an http(s) URL like https://cloud.appwrite.io/v1", ErrConfig, cfg.Endpoint)
	}
	if cfg.ProjectID == "" {
		return nil, fmt.Errorf("%w: appwrite project ID is required", ErrConfig)
	}
	if cfg.LabelRoles == nil {
		cfg.LabelRoles = map[string]Role{"premium": RolePremium, "moderator": RoleModerator}
	}
	for label, r := range cfg.LabelRoles {
		if _, err := ParseRole(string(r)); err != nil {
			return nil, fmt.Errorf("%w: appwrite label %q maps to unknown role %q", ErrConfig, label, r)
		}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = 64 << 10
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: cfg.Timeout}
	}
	return &AppwriteVerifier{accountURL: u.String() + "/account", cfg: cfg}, nil
}

// Verify returns the Appwrite account jwt belongs to. A JWT Appwrite refuses
// (401, 403) or an account Appwrite reports blocked gives ErrInvalidToken;
// timeouts, 5xx, other statuses and unreadable bodies give
// ErrAppwriteUnavailable.
func (v *AppwriteVerifier) Verify(ctx context.Context, jwt string) (AppwriteUser, error) {
	if jwt == "" || len(jwt) > maxAppwriteJWTBytes || strings.ContainsAny(jwt, " \t\r\n") {
		return AppwriteUser{}, fmt.Errorf("%w: malformed appwrite jwt", ErrInvalidToken)
	}
	ctx, cancel := context.WithTimeout(ctx, v.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.accountURL, nil)
	if err != nil {
		return AppwriteUser{}, fmt.Errorf("%w: %w", ErrAppwriteUnavailable, err)
	}
	req.Header.Set("X-Appwrite-Project", v.cfg.ProjectID)
	req.Header.Set("X-Appwrite-JWT", jwt)
	req.Header.Set("Accept", "application/json")
	resp, err := v.cfg.Client.Do(req)
	if err != nil {
		return AppwriteUser{}, fmt.Errorf("%w: %w", ErrAppwriteUnavailable, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, v.cfg.MaxResponseBytes+1))
	if err != nil {
		return AppwriteUser{}, fmt.Errorf("%w: reading response: %w", ErrAppwriteUnavailable, err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return AppwriteUser{}, fmt.Errorf("%w: appwrite refused the jwt (%d)", ErrInvalidToken, resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return AppwriteUser{}, fmt.Errorf("%w: appwrite answered %d", ErrAppwriteUnavailable, resp.StatusCode)
	case int64(len(body)) > v.cfg.MaxResponseBytes:
		return AppwriteUser{}, fmt.Errorf("%w: response larger than %d bytes", ErrAppwriteUnavailable, v.cfg.MaxResponseBytes)
	}
	var au AppwriteUser
	if err := json.Unmarshal(body, &au); err != nil {
		return AppwriteUser{}, fmt.Errorf("%w: malformed account JSON: %w", ErrAppwriteUnavailable, err)
	}
	if au.ID == "" {
		return AppwriteUser{}, fmt.Errorf("%w: account has no $id", ErrAppwriteUnavailable)
	}
	if !au.Status {
		return AppwriteUser{}, fmt.Errorf("%w: appwrite account is blocked", ErrInvalidToken)
	}
	return au, nil
}

// Roles returns user plus the roles u's labels map to, in Roles() order.
func (v *AppwriteVerifier) Roles(u AppwriteUser) []Role {
	roles := []Role{RoleUser}
	for _, l := range u.Labels {
		if r, ok := v.cfg.LabelRoles[l]; ok {
			roles = append(roles, r)
		}
	}
	return sortedRoles(roles)
}
