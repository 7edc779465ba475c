// Package config resolves kowai's configuration from KOWAI_* environment
// variables and their matching command-line flags.
//
// # Precedence
//
// A flag wins over its environment variable, which wins over the default of
// API.md. Every value is validated when loaded; an invalid one yields an
// error wrapping ErrInvalid that names the variable (or flag), hides secret
// values, and states the accepted form, so the command can print one line and
// exit with status 2.
//
// # Example
//
//	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
//	load := config.Flags(fs, os.Getenv)
//	if err := fs.Parse(args); err != nil { ... }
//	cfg, err := load()
package config
