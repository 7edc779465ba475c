// Package translator is an agent type written outside kowai, as README.md shows it.
package translator

import (
	"github.com/kowai/kowai/agents"
	"github.com/kowai/kowai/signatures"
)

// Config is the translator's own configuration; its JSON schema is derived from it.
type Config struct {
	Language  string  `json:"language,omitempty" default:"French" doc:"The language to translate into."`
	Formality float64 `json:"formality,omitempty" minimum:"0" maximum:"1" doc:"0 casual, 1 formal."`
}

// Type translates each message into the language of the agent's config.
func Type() agents.Type {
	return agents.TypeOf("translator", "Translates each message.", "message, language, formality: float -> translation",
		func(def agents.Definition, cfg Config) (agents.Program, error) {
			return agents.SignatureProgram(def, signatures.Values{"language": cfg.Language, "formality": cfg.Formality})
		})
}
