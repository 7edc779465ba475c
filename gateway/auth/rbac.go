package auth

import (
	"fmt"
	"slices"
	"time"
)

// Role is a named set of permissions held by a user.
type Role string

// The roles of API.md.
const (
	RoleUser      Role = "user"
	RolePremium   Role = "premium"
	RoleModerator Role = "moderator"
	RoleAdmin     Role = "admin"
)

// Permission is one action a route may require.
type Permission string

// Permissions. A ":any" permission extends the plain one to other users'
// data; without it a principal only touches its own.
const (
	PermChatRead         Permission = "chat:read"
	PermChatWrite        Permission = "chat:write"
	PermChatReadAny      Permission = "chat:read:any"
	PermAgentsRead       Permission = "agents:read"
	PermAgentsWrite      Permission = "agents:write"
	PermAgentsReadAny    Permission = "agents:read:any"
	PermAgentsWriteAny   Permission = "agents:write:any"
	PermWorkflowsRun     Permission = "workflows:run"
	PermWorkflowsReadAny Permission = "workflows:read:any"
	PermAdminUsersRead   Permission = "admin:users:read"
	PermAdminUsers       Permission = "admin:users"
	PermAdminCluster     Permission = "admin:cluster"
	PermPremiumModels    Permission = "models:premium"
)

// rolePermissions is the one table granting permissions. Roles do not
// inherit implicitly: each row lists everything the role may do, so a
// reader sees a role's power in one place.
var rolePermissions = map[Role][]Permission{
	RoleUser: {
		PermChatRead, PermChatWrite, PermAgentsRead, PermAgentsWrite, PermWorkflowsRun,
	},
	RolePremium: {
		PermChatRead, PermChatWrite, PermAgentsRead, PermAgentsWrite, PermWorkflowsRun,
		PermPremiumModels,
	},
	RoleModerator: {
		PermChatRead, PermChatWrite, PermAgentsRead, PermAgentsWrite, PermWorkflowsRun,
		PermChatReadAny, PermAgentsReadAny, PermWorkflowsReadAny, PermAdminUsersRead,
		PermAdminCluster,
	},
	RoleAdmin: {
		PermChatRead, PermChatWrite, PermAgentsRead, PermAgentsWrite, PermWorkflowsRun,
		PermChatReadAny, PermAgentsReadAny, PermWorkflowsReadAny, PermAdminUsersRead,
		PermPremiumModels, PermAgentsWriteAny, PermAdminUsers, PermAdminCluster,
	},
}

// Roles returns every role, least privileged first.
func Roles() []Role { return []Role{RoleUser, RolePremium, RoleModerator, RoleAdmin} }

// ParseRole returns the role named s, or a *FieldError for field "roles".
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if _, ok := rolePermissions[r]; !ok {
		return "", &FieldError{Field: "roles", Message: fmt.Sprintf("unknown role %q (want user, premium, moderator or admin)", s)}
	}
	return r, nil
}

// Permissions returns the permissions the role grants; nil for an unknown
// role. The slice is a copy.
func (r Role) Permissions() []Permission { return slices.Clone(rolePermissions[r]) }

// Principal is the authenticated caller of a request, taken from a verified
// access token.
type Principal struct {
	// UserID is the token's sub.
	UserID string
	// SessionID is the token's sid: the login session it belongs to.
	SessionID string
	// TokenID is the token's jti.
	TokenID string
	// Roles are the roles the token was issued with.
	Roles []Role
	// ExpiresAt is the token's exp: connections that outlive one request
	// (WebSocket) end there. Zero when the credential does not expire.
	ExpiresAt time.Time
	// APIKeyID is set when the caller authenticated with an API key; then
	// SessionID and TokenID are empty, and Scopes limit what Roles grant.
	APIKeyID string
	// Scopes are the API key's scopes; unused without APIKeyID.
	Scopes []Scope
}

// HasRole reports whether p holds any of roles. An API key never holds the
// moderator or admin role: administration needs a signed-in session.
func (p Principal) HasRole(roles ...Role) bool {
	for _, r := range roles {
		if p.APIKeyID != "" && (r == RoleModerator || r == RoleAdmin) {
			continue
		}
		if slices.Contains(p.Roles, r) {
			return true
		}
	}
	return false
}

// Can reports whether any of p's roles grants perm and, for an API key, one
// of its scopes grants it too.
func (p Principal) Can(perm Permission) bool {
	if p.APIKeyID != "" && !p.scopesGrant(perm) {
		return false
	}
	for _, r := range p.Roles {
		if slices.Contains(rolePermissions[r], perm) {
			return true
		}
	}
	return false
}

// CanRead reports whether p may read data owned by ownerID: its own, or
// anyone's with chat:read:any (moderators and admins). An empty ownerID is
// never matched by ownership.
func (p Principal) CanRead(ownerID string) bool {
	return p.owns(ownerID) || p.Can(PermChatReadAny)
}

// CanWrite reports whether p may change data owned by ownerID: only its own.
// Moderators and admins read other users' conversations but never write
// into them; for agents, whose admins may change any, use CanWriteAgent.
func (p Principal) CanWrite(ownerID string) bool {
	return p.owns(ownerID)
}

// CanWriteAgent reports whether p may change an agent owned by ownerID: its
// own, or any with agents:write:any (admins).
func (p Principal) CanWriteAgent(ownerID string) bool {
	return p.owns(ownerID) || p.Can(PermAgentsWriteAny)
}

func (p Principal) owns(ownerID string) bool {
	return ownerID != "" && p.UserID != "" && ownerID == p.UserID
}

// scopesGrant reports whether one of p's scopes grants perm.
func (p Principal) scopesGrant(perm Permission) bool {
	for _, s := range p.Scopes {
		if slices.Contains(scopePermissions[s], perm) {
			return true
		}
	}
	return false
}
