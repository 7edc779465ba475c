package gateway

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/gofiber/fiber/v2"

	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/persistence"
)

// Audit actions written by the routes themselves; the auth service writes
// the auth.Audit* ones.
const (
	auditRolesSet    = "user.roles.set"
	auditUserDelete  = "user.delete"
	auditAgentCreate = "agent.create"
	auditAgentUpdate = "agent.update"
	auditAgentDelete = "agent.delete"
)

// recordAudit appends an audit entry for a change that has been made, by
// actorID from the request's client address. A failure is an error for the
// caller: a change must not go unrecorded silently.
func recordAudit(c *fiber.Ctx, log persistence.AuditLog, actorID, action, targetType, targetID string, detail map[string]any) error {
	raw, err := json.Marshal(detail)
	if err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	if _, err := log.Append(c.UserContext(), persistence.AuditEntry{ActorID: actorID, Action: action,
		TargetType: targetType, TargetID: targetID, Detail: raw, IP: ClientAddr(c)}); err != nil {
		return fmt.Errorf("audit %s of %s %s (the change was made): %w", action, targetType, targetID, err)
	}
	return nil
}

// AuthAudit implements auth.AuditLog over the database's audit log: the
// event's user is both the actor and the target.
type AuthAudit struct{ log persistence.AuditLog }

var _ auth.AuditLog = AuthAudit{}

// NewAuthAudit returns the auth service's audit log over log.
func NewAuthAudit(log persistence.AuditLog) AuthAudit { return AuthAudit{log: log} }

// Record implements auth.AuditLog.
func (a AuthAudit) Record(ctx context.Context, e auth.AuditEvent) error {
	var detail json.RawMessage
	if len(e.Detail) > 0 {
		raw, err := json.Marshal(e.Detail)
		if err != nil {
			return fmt.Errorf("audit %s: %w", e.Action, err)
		}
		detail = raw
	}
	if _, err := a.log.Append(ctx, persistence.AuditEntry{ActorID: e.UserID, Action: e.Action, TargetType: "user",
		TargetID: e.UserID, Detail: detail, IP: e.IP}); err != nil {
		return fmt.Errorf("audit %s of user %s: %w", e.Action, e.UserID, err)
	}
	return nil
}
