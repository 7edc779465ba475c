package auth_test

import (
	"testing"

	"github.com/kowai/kowai/gateway/auth"
)

func TestPermissions(t *testing.T) {
	tests := []struct {
		role auth.Role
		perm auth.Permission
		want bool
	}{
		{auth.RoleUser, auth.PermChatWrite, true},
		{auth.RoleUser, auth.PermChatReadAny, false},
		{auth.RoleUser, auth.PermAgentsWriteAny, false},
		{auth.RoleUser, auth.PermAdminUsers, false},
		{auth.RoleUser, auth.PermPremiumModels, false},
		{auth.RolePremium, auth.PermPremiumModels, true},
		{auth.RolePremium, auth.PermChatReadAny, false},
		{auth.RoleModerator, auth.PermChatReadAny, true},
		{auth.RoleModerator, auth.PermAdminUsersRead, true},
		{auth.RoleModerator, auth.PermAdminUsers, false},
		{auth.RoleModerator, auth.PermAgentsWriteAny, false},
		{auth.RoleModerator, auth.PermAdminCluster, true},
		{auth.RoleAdmin, auth.PermAdminUsers, true},
		{auth.RoleAdmin, auth.PermAdminCluster, true},
		{auth.RoleAdmin, auth.PermAgentsWriteAny, true},
		{auth.Role("root"), auth.PermChatRead, false},
	}
	for _, tt := range tests {
		p := auth.Principal{UserID: "u", Roles: []auth.Role{tt.role}}
		if got := p.Can(tt.perm); got != tt.want {
			t.Errorf("%s can %s = %v, want %v", tt.role, tt.perm, got, tt.want)
		}
	}
}

func TestOwnership(t *testing.T) {
	user := auth.Principal{UserID: "alice", Roles: []auth.Role{auth.RoleUser, auth.RolePremium}}
	mod := auth.Principal{UserID: "mia", Roles: []auth.Role{auth.RoleModerator}}
	admin := auth.Principal{UserID: "ada", Roles: []auth.Role{auth.RoleAdmin}}
	anon := auth.Principal{}
	tests := []struct {
		name                    string
		p                       auth.Principal
		owner                   string
		read, write, writeAgent bool
	}{
		{"own data", user, "alice", true, true, true},
		{"another user's data", user, "bob", false, false, false},
		{"empty owner", user, "", false, false, false},
		{"moderator reads any, writes none", mod, "bob", true, false, false},
		{"admin reads any, changes agents only", admin, "bob", true, false, true},
		{"no principal", anon, "", false, false, false},
	}
	for _, tt := range tests {
		if r, w, wa := tt.p.CanRead(tt.owner), tt.p.CanWrite(tt.owner), tt.p.CanWriteAgent(tt.owner); r != tt.read || w != tt.write || wa != tt.writeAgent {
			t.Errorf("%s: read/write/writeAgent = %v/%v/%v, want %v/%v/%v", tt.name, r, w, wa, tt.read, tt.write, tt.writeAgent)
		}
	}
}

func TestParseRole(t *testing.T) {
	for _, r := range auth.Roles() {
		if got, err := auth.ParseRole(string(r)); err != nil || got != r {
			t.Errorf("ParseRole(%q) = %q, %v", r, got, err)
		}
	}
	for _, bad := range []string{"", "Admin", "root", "admin "} {
		if _, err := auth.ParseRole(bad); err == nil {
			t.Errorf("ParseRole(%q) succeeded", bad)
		}
	}
}
