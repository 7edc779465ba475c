package agents

import (
	"time"

	"github.com/google/uuid"
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
