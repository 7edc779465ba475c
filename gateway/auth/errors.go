package auth

import "errors"

// Errors returned by the service. The gateway maps them to HTTP statuses as
// noted; every one of them is safe to show a client.
var (
	// ErrInvalidCredentials means the email or password is wrong, or the user
	// does not exist: the three are indistinguishable on purpose (401).
	ErrInvalidCredentials = errors.New("auth: invalid email or password")
	// ErrAccountDisabled means the credentials were right but the account is
	// disabled (403). It is only returned after a correct password or a valid
	// refresh token, so it reveals nothing to a guesser.
	ErrAccountDisabled = errors.New("auth: account disabled")
	// ErrInvalidToken means an access or refresh token is malformed, expired,
	// forged, or belongs to a revoked session (401).
	ErrInvalidToken = errors.New("auth: invalid or expired token")
	// ErrTokenReused means a refresh token that was already spent was
	// presented again; the whole session has been revoked (401).
	ErrTokenReused = errors.New("auth: refresh token reused; session revoked")
	// ErrThrottled means too many login attempts for the account or the
	// client address (429). The error is a *ThrottledError carrying the wait.
	ErrThrottled = errors.New("auth: too many login attempts")
	// ErrEmailTaken means registration found the email already in use (409).
	ErrEmailTaken = errors.New("auth: email already registered")
	// ErrInvalidInput means a field failed validation (400/422); the wrapping
	// error names the field, and FieldError carries it for the gateway.
	ErrInvalidInput = errors.New("auth: invalid input")
	// ErrForbidden means the principal lacks the role or permission (403).
	ErrForbidden = errors.New("auth: forbidden")
	// ErrAppwriteDisabled means Appwrite sign-in is not configured (404).
	ErrAppwriteDisabled = errors.New("auth: appwrite sign-in is not configured")
	// ErrAppwriteUnavailable means the Appwrite endpoint failed, timed out or
	// answered something unreadable (502).
	ErrAppwriteUnavailable = errors.New("auth: appwrite unavailable")
	// ErrAppwriteEmailUnverified means an Appwrite account with no linked
	// user would create one, but Appwrite has not verified its email (403).
	ErrAppwriteEmailUnverified = errors.New("auth: the appwrite account's email is not verified; verify it in appwrite, then sign in again")
	// ErrAppwriteLinkRequired means an Appwrite account with no linked user
	// has the email of an existing kowai account. Linking is never implicit:
	// whoever registered that email locally proved nothing about owning it
	// (409).
	ErrAppwriteLinkRequired = errors.New("auth: an account with this email exists; log in to it with its password and link appwrite with POST /api/v1/auth/appwrite/link")
	// ErrAppwriteAlreadyLinked means the Appwrite account is linked to
	// another user, or the user to another Appwrite account (409).
	ErrAppwriteAlreadyLinked = errors.New("auth: the appwrite account or this account is already linked to another")
	// ErrWeakSecret means the JWT signing secret is shorter than 32 bytes.
	ErrWeakSecret = errors.New("auth: jwt secret must be at least 32 bytes")
	// ErrConfig means a constructor was given an unusable configuration.
	ErrConfig = errors.New("auth: invalid configuration")
)

// Errors that store implementations return, wrapped or bare; the service
// tests for them with errors.Is. Adapters over another package's
// repositories translate that package's sentinels to these.
var (
	// ErrNotFound means no record matches.
	ErrNotFound = errors.New("auth: not found")
	// ErrConflict means a unique key (email, Appwrite ID, token hash) is
	// already taken.
	ErrConflict = errors.New("auth: conflict")
	// ErrTokenSpent is returned by SessionStore.SpendRefreshToken for a
	// token that was spent before, together with its record.
	ErrTokenSpent = errors.New("auth: refresh token already spent")
)

// FieldError is an ErrInvalidInput naming the offending input field, for
// the gateway's problem+json "errors" list.
type FieldError struct {
	// Field is the JSON field name, e.g. "password".
	Field string
	// Message says what is wrong, e.g. "must be at least 12 characters".
	Message string
}

// Error implements error.
func (e *FieldError) Error() string { return "auth: invalid " + e.Field + ": " + e.Message }

// Unwrap makes errors.Is(err, ErrInvalidInput) true.
func (e *FieldError) Unwrap() error { return ErrInvalidInput }
