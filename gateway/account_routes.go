package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/persistence"
)

// AccountService is what the self-service account routes need from
// authentication; *auth.Service implements it.
type AccountService interface {
	Sessions(ctx context.Context, p auth.Principal) ([]auth.SessionInfo, error)
	RevokeSession(ctx context.Context, p auth.Principal, sessionID string) error
	ChangePassword(ctx context.Context, p auth.Principal, current, next string) error
	DeleteAccount(ctx context.Context, p auth.Principal, password string, erase func(context.Context) error) error
}

var _ AccountService = (*auth.Service)(nil)

// auditUserErase is the audit action of an account erasing itself.
const auditUserErase = "user.erase"

// sessionView is one sign-in session in GET /api/v1/auth/sessions.
type sessionView struct {
	ID              string     `json:"id"`
	CreatedAt       time.Time  `json:"created_at" doc:"when the session signed in"`
	LastRefreshedAt *time.Time `json:"last_refreshed_at,omitempty" doc:"when its current refresh token was issued: at sign-in or at the last refresh"`
	ExpiresAt       *time.Time `json:"expires_at,omitempty" doc:"the end of its absolute lifetime (KOWAI_SESSION_MAX_AGE)"`
	UserAgent       string     `json:"user_agent,omitempty" doc:"the User-Agent that signed in, when known"`
	IP              string     `json:"ip,omitempty" doc:"the client address that signed in, when known"`
	Current         bool       `json:"current" doc:"true for the session of the token making this request"`
}

// sessionsPage is the body of GET /api/v1/auth/sessions.
type sessionsPage struct {
	Sessions []sessionView `json:"sessions" doc:"newest first"`
}

// passwordRequest is the body of POST /api/v1/auth/password.
type passwordRequest struct {
	CurrentPassword string `json:"current_password"`
	NewPassword     string `json:"new_password" doc:"at least 12 characters, at most 1024 bytes; not one of the 10,000 most common passwords, not your email or its part before the @"`
}

// Validate implements Validator; the password policy is the auth service's.
func (r passwordRequest) Validate() []FieldError {
	var f []FieldError
	f = append(f, required("current_password", r.CurrentPassword, auth.MaxPasswordBytes)...)
	f = append(f, required("new_password", r.NewPassword, auth.MaxPasswordBytes)...)
	return f
}

// deleteAccountRequest is the body of DELETE /api/v1/users/me.
type deleteAccountRequest struct {
	Password string `json:"password,omitempty" doc:"your password; accounts without one (Appwrite sign-in) leave it out and must have signed in within the last 10 minutes"`
}

// Validate implements Validator.
func (r deleteAccountRequest) Validate() []FieldError {
	if len(r.Password) > auth.MaxPasswordBytes {
		return []FieldError{{Field: "password", Message: fmt.Sprintf("must be at most %d bytes", auth.MaxPasswordBytes)}}
	}
	return nil
}

// accountProblem maps the account errors of the auth service to problems,
// and the rest as authProblem does.
func accountProblem(err error) error {
	for _, m := range []struct {
		err    error
		status int
	}{
		{auth.ErrWrongPassword, http.StatusForbidden},
		{auth.ErrRecentLoginRequired, http.StatusForbidden},
		{auth.ErrSessionNotFound, http.StatusNotFound},
		{auth.ErrNoPassword, http.StatusConflict},
	} {
		if errors.Is(err, m.err) {
			e := NewError(m.status, strings.TrimPrefix(m.err.Error(), "auth: "))
			e.Err = err
			return e
		}
	}
	return authProblem(err)
}

// accountRoutes serves the caller's sessions, password and account.
type accountRoutes struct {
	svc   AccountService
	users persistence.Users
}

func (a accountRoutes) sessions(c *fiber.Ctx) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	list, err := a.svc.Sessions(c.UserContext(), p)
	if err != nil {
		return accountProblem(err)
	}
	out := sessionsPage{Sessions: make([]sessionView, len(list))}
	for i, s := range list {
		v := sessionView{ID: s.ID, CreatedAt: s.CreatedAt.UTC(), UserAgent: s.UserAgent, IP: s.IP, Current: s.ID == p.SessionID}
		if !s.RefreshedAt.IsZero() {
			at := s.RefreshedAt.UTC()
			v.LastRefreshedAt = &at
		}
		if !s.ExpiresAt.IsZero() {
			at := s.ExpiresAt.UTC()
			v.ExpiresAt = &at
		}
		out.Sessions[i] = v
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(out)
}

func (a accountRoutes) revokeSession(c *fiber.Ctx) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	if err := a.svc.RevokeSession(c.UserContext(), p, id); err != nil {
		return accountProblem(err)
	}
	return c.SendStatus(http.StatusNoContent)
}

func (a accountRoutes) changePassword(c *fiber.Ctx) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	req, err := Decode[passwordRequest](c)
	if err != nil {
		return err
	}
	if err := a.svc.ChangePassword(c.UserContext(), p, req.CurrentPassword, req.NewPassword); err != nil {
		return accountProblem(err)
	}
	return c.SendStatus(http.StatusNoContent)
}

// deleteAccount erases the caller's account and data. The audit entry names
// the user by ID and counts what went; it keeps neither the email nor the
// client address.
func (a accountRoutes) deleteAccount(c *fiber.Ctx) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	req, err := Decode[deleteAccountRequest](c)
	if err != nil {
		return err
	}
	var detailErr error
	erase := func(ctx context.Context) error {
		_, err := a.users.Erase(ctx, p.UserID, func(e persistence.Erasure) persistence.AuditEntry {
			detail, err := json.Marshal(map[string]int64{
				"conversations": e.Conversations, "messages": e.Messages, "feedback": e.Feedback,
				"agents": e.Agents, "workflow_runs": e.WorkflowRuns, "sessions": e.Sessions,
			})
			detailErr = err
			return persistence.AuditEntry{ActorID: p.UserID, Action: auditUserErase, TargetType: "user", TargetID: p.UserID, Detail: detail}
		})
		return errors.Join(err, detailErr)
	}
	if err := a.svc.DeleteAccount(c.UserContext(), p, req.Password, erase); err != nil {
		return accountProblem(err)
	}
	return c.SendStatus(http.StatusNoContent)
}

// withClient records the request's client for the sessions it starts and the
// attempts it spends (auth.WithClient).
func withClient(c *fiber.Ctx) error {
	c.SetUserContext(auth.WithClient(c.UserContext(), auth.ClientInfo{IP: ClientAddr(c), UserAgent: c.Get(fiber.HeaderUserAgent)}))
	return c.Next()
}

// mountAccount registers the caller's session, password and account routes.
func (s *Server) mountAccount(a accountRoutes, authed fiber.Handler, rl rateLimits) {
	s.Route(fiber.MethodGet, "/api/v1/auth/sessions", Op{Summary: "Your sign-in sessions that can still be used", Tag: "Auth", Auth: true,
		Response: sessionsPage{}}, authed, rl.user("auth.sessions.list"), a.sessions)
	s.Route(fiber.MethodDelete, "/api/v1/auth/sessions/:id", Op{Summary: "Revoke one of your sessions (yours only; revoking the current one logs out)", Tag: "Auth", Auth: true,
		Status: http.StatusNoContent, Errors: []int{http.StatusBadRequest, http.StatusNotFound}},
		authed, rl.user("auth.sessions.revoke"), a.revokeSession)
	s.Route(fiber.MethodPost, "/api/v1/auth/password", Op{Summary: "Change your password; your other sessions are revoked, this one stays", Tag: "Auth", Auth: true,
		Request: passwordRequest{}, Status: http.StatusNoContent, Errors: []int{http.StatusBadRequest, http.StatusForbidden, http.StatusConflict}},
		authed, rl.strict("auth.password"), a.changePassword)
	s.Route(fiber.MethodDelete, "/api/v1/users/me", Op{Summary: "Erase your account and its data (conversations, messages, feedback, agents, workflow runs, sessions)", Tag: "Auth", Auth: true,
		Request: deleteAccountRequest{}, Status: http.StatusNoContent, Errors: []int{http.StatusBadRequest, http.StatusForbidden}},
		authed, rl.strict("users.me.delete"), a.deleteAccount)
}
