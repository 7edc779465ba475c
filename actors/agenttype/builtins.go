package agenttype

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/kowai/kowai/persistence"
)

// Builtins returns the agent types kowai ships, in listing order. now is the react
// agent's clock. To add a type, write one file with a function returning its Type (see
// chat.go for the smallest) and add it here, or pass it to NewRegistry yourself.
func Builtins(now func() time.Time) []Type {
	return []Type{Chat(), AdvancedChat(), Analysis(), React(now)}
}

// builtinNamespace seeds the IDs of built-in agents, so every node and every restart
// agrees on them without coordination.
var builtinNamespace = uuid.MustParse("6b6f7761-692d-4275-916c-742d696e2d61")

// BuiltinID returns the ID of the built-in agent of the named type, a name-based UUID
// that is the same on every node.
func BuiltinID(typeName string) string {
	return uuid.NewSHA1(builtinNamespace, []byte("builtin-agent:"+typeName)).String()
}

// DefaultAgentID is the agent of a conversation that names none: the built-in chat agent.
func DefaultAgentID() string { return BuiltinID("chat") }

// EnsureBuiltins creates the built-in agent of every type in r that does not exist yet
// (owner empty, so every user sees it). It is idempotent and safe to run on several
// nodes at once: an agent another node created first is left as it is, and so is one an
// administrator has edited since.
func EnsureBuiltins(ctx context.Context, repo persistence.Agents, r *Registry) error {
	for _, info := range r.List() {
		id := BuiltinID(info.Name)
		if _, err := repo.Get(ctx, id); err == nil {
			continue
		} else if !errors.Is(err, persistence.ErrNotFound) {
			return fmt.Errorf("ensure built-in agent %s: %w", info.Name, err)
		}
		_, err := repo.Create(ctx, persistence.Agent{ID: id, Name: info.Name, Type: info.Name,
			Signature: info.Signature, Config: []byte("{}")})
		if err != nil && !errors.Is(err, persistence.ErrDuplicate) {
			return fmt.Errorf("ensure built-in agent %s: %w", info.Name, err)
		}
	}
	return nil
}
