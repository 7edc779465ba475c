// Package auth authenticates kowai users and authorizes their requests:
// argon2id passwords, HS256 access tokens, rotating refresh tokens, session
// revocation visible on every node, login throttling, role-based access
// control, Appwrite sign-in, and the Fiber middleware that applies them.
//
// # Service
//
// Service implements the auth routes of the API (Register, Login, Refresh,
// Logout, Me, SignInWithAppwrite) plus Authenticate for every request,
// CreateUser for the command line and EnsureAdmin for the first admin. It
// reaches storage only through two small interfaces, UserStore and
// SessionStore, which an adapter over the persistence repositories
// implements; package authtest holds in-memory fakes and the contract suite
// that adapter must pass.
//
//	svc, err := auth.NewService(auth.Config{
//		Users: users, Sessions: sessions, Tokens: tokens, Hasher: hasher,
//		Revocations: auth.NewRevocationCache(auth.NewRedisRevocations(rdb, "kowai:revoked:"), auth.CacheOptions{}),
//	})
//	pair, err := svc.Login(ctx, email, password, clientIP)
//
// Bad credentials of any kind give the one error ErrInvalidCredentials, after
// the same hashing work whether or not the email exists. HTTPStatus maps the
// package's errors to statuses for the gateway's error handler.
//
// # Tokens
//
// Access tokens are HS256 JWTs carrying iss, sub, aud, exp, iat, nbf, jti,
// roles and sid (the session). Verification accepts HS256 only and requires
// every claim, with 30 seconds of leeway for clock skew. Refresh tokens are
// 32 random bytes, stored only as SHA-256 hashes, and spent on use: every
// refresh returns a new pair in the same session, and presenting a spent
// token revokes the whole session.
//
// # Revocation
//
// Logout revokes the session in the SessionStore (ending its refreshes) and
// in a RevocationStore checked by Authenticate: Redis keys that live as long
// as an access token can (RedisRevocations), or the sessions table when
// there is no Redis (StoreRevocations). A RevocationCache in front answers
// most checks locally; a revocation reaches every other node within the
// cache TTL (one second by default) and the revoking node at once.
//
// # Authorization
//
// Roles (user, premium, moderator, admin) map to Permissions in one table in
// rbac.go. RequireAuth, RequireRoles and RequirePermission are Fiber
// middleware; a Principal's CanRead, CanWrite and CanWriteAgent check
// ownership: a user touches only its own data, moderators and admins read
// anyone's, admins change anyone's agents.
//
//	api := app.Group("/api/v1", auth.RequireAuth(svc))
//	api.Get("/admin/users", auth.RequirePermission(auth.PermAdminUsersRead), listUsers)
package auth
