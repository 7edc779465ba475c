// Package auth authenticates kowai users and authorizes their requests:
// argon2id passwords, HS256 access tokens, rotating refresh tokens, session
// revocation visible on every node, login throttling, role-based access
// control, Appwrite sign-in, and the Fiber middleware that applies them.
//
// # Service
//
// Service implements the auth routes of the API (Register, Login, Refresh,
// Logout, Me, SignInWithAppwrite, LinkAppwrite) plus Authenticate for every request,
// CreateUser for the command line and EnsureAdmin for the first admin. It
// reaches storage only through two small interfaces, UserStore and
// SessionStore, which an adapter over the persistence repositories
// implements; package authtest holds in-memory fakes and the contract suite
// that adapter must pass.
//
//	svc, err := auth.NewService(auth.Config{
//		Users: users, Sessions: sessions, Tokens: tokens, Hasher: hasher,
//		Revocations: revocations, // auth.NewRevocations(sessions, auth.RevocationsOptions{Redis: rdb})
//	})
//	pair, err := svc.Login(ctx, email, password, clientIP)
//
// Bad credentials of any kind give the one error ErrInvalidCredentials, after
// the same hashing work whether or not the email exists. HTTPStatus maps the
// package's errors to statuses for the gateway's error handler.
//
// # Accounts
//
// Emails are normalized once, at every entry, by NormalizeEmail (NFKC and
// case folding); stores compare them exactly. CheckPassword is the one
// password policy: 12 characters or more, none of the 10,000 most common
// passwords (common_passwords.txt, embedded), not the email. An Appwrite
// account signs in as the user it is linked to; it never takes over an
// unlinked local account with the same email (ErrAppwriteLinkRequired):
// the owner links it with LinkAppwrite from a session of their own. Logins,
// refused logins, logouts, refresh-token reuse, Appwrite links and account
// creation go to Config.Audit; Service.Audit records the events other
// components see (a password change, an account deletion).
//
// # Throttling
//
// Throttle counts password logins per client address, per (account,
// address) and per account, the account being the user the email resolves
// to. The per-account ceiling is ten times the per-(account, address) limit,
// so one address cannot lock the owner out.
//
// # Tokens
//
// Access tokens are HS256 JWTs carrying iss, sub, aud, exp, iat, nbf, jti,
// roles and sid (the session). Verification accepts HS256 only and requires
// every claim, with 30 seconds of leeway for clock skew. A token that passed
// is remembered for up to a minute (bounded), so the same string presented
// again costs a map lookup and a re-check of exp, nbf and iat instead of
// base64, JSON and HMAC; nothing else about the verdict can change while the
// secret stays the same. Refresh tokens are
// 32 random bytes, stored only as SHA-256 hashes, and spent on use: every
// refresh returns a new pair in the same session, and presenting a spent
// token revokes the whole session.
//
// # Revocation
//
// Logout revokes the session in the SessionStore, which is the record of
// every session and its revocation, and publishes it through a
// RevocationStore checked by Authenticate. NewRevocations assembles that
// store: a RevocationCache answering most checks locally, then, with Redis,
// RedisRevocations, a cache shared by the nodes in which a revocation
// overwrites its session's entry at once, then StoreRevocations, the
// SessionStore itself, which refuses revoked sessions and sessions it does
// not know. Losing Redis's keys sends checks back to the database and brings
// no session back. A revocation reaches every other node within the local
// cache's TTL (one second by default) and the revoking node at once.
//
// # Sessions and accounts
//
// A session ends at its creation plus Config.SessionMaxAge, however often it
// is refreshed. Sessions lists a user's usable sessions and RevokeSession
// ends one of them; ChangePassword checks the current password (through the
// login throttle) and revokes every other session; DeleteAccount confirms
// with the password (or, without one, a sign-in younger than RecentLogin),
// revokes every session and runs the caller's erasure.
//
// # Caches and staleness
//
// Me reads the user through a bounded cache with the same one-second TTL
// (Config.UserCacheTTL). A change to a user committed at time T by another
// node shows in every Me that starts after T + TTL; a change made through
// this Service (RevokeUserSessions, which the admin routes call after a role
// change, a disable or before a delete; a password rehash; an Appwrite link)
// shows at once, reads in flight included. Since every such admin change
// also revokes the user's sessions, an old token is refused within the
// revocation cache's bound anyway; the user cache only decides what a new
// session's Me shows, and never for longer than the revocation cache could
// keep an old token alive.
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
//
// # API keys
//
// APIKeys issues keys "kowai_" + 43 base64url characters (256 random bits)
// for machine clients; only their SHA-256 is stored (APIKeyStore) and only
// a signed-in session, never a key, creates, lists or revokes them.
// WithAPIKeys sends Bearer tokens of that form to APIKeys.Authenticate,
// which yields a Principal with APIKeyID and Scopes set: Can then grants a
// permission only when a scope and one of the user's current roles both do,
// no scope grants an ":any" or admin permission, and HasRole never reports
// moderator or admin. A node keeps a looked-up key for at most one second;
// a revocation drops it on this node at once and, with Redis, is published
// so every node drops it at once. A key's last use is written at most once
// per TouchEvery (a minute) in batches (Flush, Run).
//
//	keys, _ := auth.NewAPIKeys(auth.APIKeysConfig{Store: store, Users: svc})
//	authed := auth.RequireAuth(auth.WithAPIKeys(svc, keys))
package auth
