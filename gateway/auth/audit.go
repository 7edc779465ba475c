package auth

import (
	"context"
	"maps"
)

// Audit actions the Service records. The gateway's admin, agent and account
// erasure routes record theirs themselves.
const (
	// AuditLogin is a successful sign-in, by password or Appwrite (detail
	// "method").
	AuditLogin = "auth.login"
	// AuditLoginFailed is a refused password login; detail "reason" is
	// invalid_credentials, account_disabled or throttled, and "email" the
	// canonical address tried when it belongs to no account.
	AuditLoginFailed = "auth.login.failed"
	// AuditLogout is a session ended by its user (detail "session_id").
	AuditLogout = "auth.logout"
	// AuditRefreshReuse is a spent refresh token presented again, which
	// revoked its session (detail "session_id").
	AuditRefreshReuse = "auth.refresh.reuse"
	// AuditAppwriteLink is an Appwrite account linked to a user (detail
	// "appwrite_id").
	AuditAppwriteLink = "auth.appwrite.link"
	// AuditUserCreate is an account created by registration, an
	// administrator's tool or a first Appwrite sign-in (detail "roles",
	// "method").
	AuditUserCreate = "user.create"
	// AuditPasswordChange is a user changing their own password (detail
	// "sessions_revoked").
	AuditPasswordChange = "auth.password.change"
)

// AuditEvent is one security-relevant event about a user's own account.
type AuditEvent struct {
	// Action is one of the Audit* constants.
	Action string
	// UserID is the account concerned, which is also the actor; empty when
	// a failed login named no account.
	UserID string
	// IP is the client address; empty means the one WithClient put on the
	// context.
	IP string
	// Detail holds further facts, never a secret; nil when none.
	Detail map[string]string
}

// AuditLog stores audit events; it must be safe for concurrent use.
type AuditLog interface {
	// Record stores e.
	Record(ctx context.Context, e AuditEvent) error
}

// AuditFunc adapts a function to AuditLog.
type AuditFunc func(ctx context.Context, e AuditEvent) error

// Record implements AuditLog.
func (f AuditFunc) Record(ctx context.Context, e AuditEvent) error { return f(ctx, e) }

// Audit records e in the configured AuditLog, if any. A failure to record
// is logged, not returned: the event has happened and refusing the user
// afterwards would not undo it. The write does not stop when ctx is cancelled (a client that
// hangs up mid-login still leaves its trace).
func (s *Service) Audit(ctx context.Context, e AuditEvent) {
	if s.cfg.Audit == nil {
		return
	}
	if e.IP == "" {
		e.IP = ClientFromContext(ctx).IP
	}
	e.Detail = maps.Clone(e.Detail)
	if err := s.cfg.Audit.Record(context.WithoutCancel(ctx), e); err != nil {
		s.log.ErrorContext(ctx, "audit event not recorded", "action", e.Action, "user_id", e.UserID, "error", err)
	}
}
