package gateway

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/kowai/kowai/gateway/auth"
)

// AuthService is what the auth and admin routes need from authentication;
// *auth.Service implements it.
type AuthService interface {
	Register(ctx context.Context, email, password, name string) (auth.User, error)
	Login(ctx context.Context, email, password, ip string) (auth.TokenPair, error)
	Refresh(ctx context.Context, token string) (auth.TokenPair, error)
	Logout(ctx context.Context, p auth.Principal) error
	Me(ctx context.Context, p auth.Principal) (auth.User, error)
	SignInWithAppwrite(ctx context.Context, appwriteJWT string) (auth.TokenPair, error)
	LinkAppwrite(ctx context.Context, p auth.Principal, appwriteJWT string) (auth.User, error)
	RevokeUserSessions(ctx context.Context, userID string) error
}

var _ AuthService = (*auth.Service)(nil)

// Bounds of opaque credentials in request bodies; real ones are far shorter.
const (
	maxRefreshTokenBytes = 512
	maxAppwriteJWTBytes  = 8192
)

// registerRequest is the body of POST /api/v1/auth/register.
type registerRequest struct {
	Email    string `json:"email" doc:"a plain email address, at most 254 bytes"`
	Password string `json:"password" doc:"at least 12 characters, at most 1024 bytes; not one of the 10,000 most common passwords, not the email or its part before the @"`
	Name     string `json:"name,omitempty" doc:"display name, at most 100 characters"`
}

// Validate implements Validator with the same rules the auth service
// applies, so every failing field is reported at once.
func (r registerRequest) Validate() []FieldError {
	var f []FieldError
	if _, err := auth.NormalizeEmail(r.Email); err != nil {
		f = append(f, fieldOf(err))
	}
	if err := auth.CheckPassword(r.Password, r.Email); err != nil {
		f = append(f, fieldOf(err))
	}
	f = append(f, checkName("name", r.Name, auth.MaxNameChars, false)...)
	return f
}

// loginRequest is the body of POST /api/v1/auth/login. Only presence and
// size are checked here: a malformed email must fail like a wrong password.
type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// Validate implements Validator.
func (r loginRequest) Validate() []FieldError {
	var f []FieldError
	f = append(f, required("email", r.Email, auth.MaxEmailBytes)...)
	f = append(f, required("password", r.Password, auth.MaxPasswordBytes)...)
	return f
}

// refreshRequest is the body of POST /api/v1/auth/refresh.
type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

// Validate implements Validator.
func (r refreshRequest) Validate() []FieldError {
	return required("refresh_token", r.RefreshToken, maxRefreshTokenBytes)
}

// appwriteRequest is the body of POST /api/v1/auth/appwrite.
type appwriteRequest struct {
	JWT string `json:"jwt" doc:"an Appwrite JWT (account.createJWT)"`
}

// Validate implements Validator.
func (r appwriteRequest) Validate() []FieldError {
	return required("jwt", r.JWT, maxAppwriteJWTBytes)
}

// required checks that a string field is present and at most max bytes.
func required(field, v string, max int) []FieldError {
	switch {
	case v == "":
		return []FieldError{{Field: field, Message: "is required"}}
	case len(v) > max:
		return []FieldError{{Field: field, Message: "must be at most " + strconv.Itoa(max) + " bytes"}}
	}
	return nil
}

// fieldOf turns an auth.FieldError into the gateway's FieldError.
func fieldOf(err error) FieldError {
	var fe *auth.FieldError
	if errors.As(err, &fe) {
		return FieldError{Field: fe.Field, Message: fe.Message}
	}
	return FieldError{Field: "body", Message: "is invalid"}
}

// publicAuthErrors are the auth sentinels whose text a client may read, in
// the order they are matched.
var publicAuthErrors = []error{
	auth.ErrTokenReused, auth.ErrInvalidToken, auth.ErrInvalidCredentials, auth.ErrAccountDisabled,
	auth.ErrThrottled, auth.ErrEmailTaken, auth.ErrForbidden, auth.ErrAppwriteDisabled,
	auth.ErrAppwriteUnavailable, auth.ErrAppwriteEmailUnverified, auth.ErrAppwriteLinkRequired, auth.ErrAppwriteAlreadyLinked,
	auth.ErrAPIKeyNotAllowed,
}

// authProblem maps an error of the auth service to a problem. Invalid input
// becomes a 400 with field errors, like every other validation failure in
// the API (auth.HTTPStatus says 422); throttling carries Retry-After. The
// detail is the sentinel's own text, never the wrapped cause, so a client
// cannot learn which check refused a token. Unknown errors pass through as
// server errors.
func authProblem(err error) error {
	if errors.Is(err, auth.ErrInvalidInput) {
		return Validation(fieldOf(err))
	}
	status, ok := auth.HTTPStatus(err)
	if !ok {
		return err
	}
	e := &Error{Status: status, Err: err}
	for _, s := range publicAuthErrors {
		if errors.Is(err, s) {
			e.Detail = strings.TrimPrefix(s.Error(), "auth: ")
			break
		}
	}
	var te *auth.ThrottledError
	if errors.As(err, &te) {
		e.Headers = map[string]string{fiber.HeaderRetryAfter: strconv.FormatInt(max(1, int64((te.RetryAfter+time.Second-1)/time.Second)), 10)}
	}
	return e
}

// authRoutes serves /api/v1/auth.
type authRoutes struct {
	svc  AuthService
	open bool
}

func (a authRoutes) register(c *fiber.Ctx) error {
	if !a.open {
		return NewError(http.StatusForbidden, "registration is closed on this server; ask an administrator for an account")
	}
	req, err := Decode[registerRequest](c)
	if err != nil {
		return err
	}
	u, err := a.svc.Register(c.UserContext(), req.Email, req.Password, req.Name)
	if err != nil {
		return authProblem(err)
	}
	return c.Status(http.StatusCreated).JSON(u.Public())
}

// tokens answers with a token pair, which no cache may keep (RFC 6749 5.1).
func tokens(c *fiber.Ctx, pair auth.TokenPair, err error) error {
	if err != nil {
		return authProblem(err)
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(pair)
}

func (a authRoutes) login(c *fiber.Ctx) error {
	req, err := Decode[loginRequest](c)
	if err != nil {
		return err
	}
	pair, err := a.svc.Login(c.UserContext(), req.Email, req.Password, ClientAddr(c))
	return tokens(c, pair, err)
}

func (a authRoutes) refresh(c *fiber.Ctx) error {
	req, err := Decode[refreshRequest](c)
	if err != nil {
		return err
	}
	pair, err := a.svc.Refresh(c.UserContext(), req.RefreshToken)
	return tokens(c, pair, err)
}

func (a authRoutes) appwrite(c *fiber.Ctx) error {
	req, err := Decode[appwriteRequest](c)
	if err != nil {
		return err
	}
	pair, err := a.svc.SignInWithAppwrite(c.UserContext(), req.JWT)
	return tokens(c, pair, err)
}

// linkAppwrite links an Appwrite account to the caller's own user.
func (a authRoutes) linkAppwrite(c *fiber.Ctx) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	req, err := Decode[appwriteRequest](c)
	if err != nil {
		return err
	}
	u, err := a.svc.LinkAppwrite(c.UserContext(), p, req.JWT)
	if err != nil {
		return authProblem(err)
	}
	return c.JSON(u.Public())
}

func (a authRoutes) logout(c *fiber.Ctx) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	if err := a.svc.Logout(c.UserContext(), p); err != nil {
		return authProblem(err)
	}
	return c.SendStatus(http.StatusNoContent)
}

func (a authRoutes) me(c *fiber.Ctx) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	u, err := a.svc.Me(c.UserContext(), p)
	if err != nil {
		return authProblem(err)
	}
	// Me returns a copy of its own (roles included), which User.Public
	// would copy again.
	return sendPublicUser(c, &auth.PublicUser{ID: u.ID, Email: u.Email, Name: u.Name, Roles: u.Roles})
}

// mountAuth registers the /api/v1/auth routes. The credential routes are
// limited per client address at the strict limit; the login throttle of the
// auth service limits per account on top.
func (s *Server) mountAuth(a authRoutes, authed fiber.Handler, rl rateLimits) {
	s.Route(fiber.MethodPost, "/api/v1/auth/register", Op{Summary: "Create an account (403 when registration is closed)", Tag: "Auth", AddrLimited: true,
		Request: registerRequest{}, Response: auth.PublicUser{}, Status: http.StatusCreated, Errors: []int{http.StatusForbidden, http.StatusConflict}},
		rl.strict("auth.register"), a.register)
	s.Route(fiber.MethodPost, "/api/v1/auth/login", Op{Summary: "Log in with email and password", Tag: "Auth", AddrLimited: true,
		Request: loginRequest{}, Response: auth.TokenPair{}, Errors: []int{http.StatusUnauthorized, http.StatusForbidden}},
		rl.strict("auth.login"), a.login)
	s.Route(fiber.MethodPost, "/api/v1/auth/refresh", Op{Summary: "Exchange a refresh token for a new pair; reusing a spent one revokes the session", Tag: "Auth", AddrLimited: true,
		Request: refreshRequest{}, Response: auth.TokenPair{}, Errors: []int{http.StatusUnauthorized, http.StatusForbidden}},
		rl.strict("auth.refresh"), a.refresh)
	s.Route(fiber.MethodPost, "/api/v1/auth/appwrite", Op{Summary: "Sign in with an Appwrite JWT (404 when Appwrite is not configured; " +
		"403 when a new account's email is unverified; 409 when the email belongs to an account not linked to Appwrite: link it from that account)", Tag: "Auth", AddrLimited: true,
		Request: appwriteRequest{}, Response: auth.TokenPair{},
		Errors: []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusConflict, http.StatusBadGateway}},
		rl.strict("auth.appwrite"), a.appwrite)
	s.Route(fiber.MethodPost, "/api/v1/auth/appwrite/link", Op{Summary: "Link an Appwrite account (its JWT) to the caller's own account, " +
		"so it can sign in through Appwrite (409 when either is linked to another)", Tag: "Auth", Auth: true,
		Request: appwriteRequest{}, Response: auth.PublicUser{},
		Errors: []int{http.StatusUnauthorized, http.StatusNotFound, http.StatusConflict, http.StatusBadGateway}},
		authed, rl.strict("auth.appwrite.link"), a.linkAppwrite)
	s.Route(fiber.MethodPost, "/api/v1/auth/logout", Op{Summary: "Revoke this session; its tokens stop working at once", Tag: "Auth", Auth: true,
		Status: http.StatusNoContent}, authed, rl.user("auth.logout"), a.logout)
	s.Route(fiber.MethodGet, "/api/v1/auth/me", Op{Summary: "The authenticated user", Tag: "Auth", Auth: true, Response: auth.PublicUser{}},
		authed, rl.user("auth.me"), a.me)
}
