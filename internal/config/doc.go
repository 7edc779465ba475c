// Package config resolves kowai's configuration from KOWAI_* environment
// variables and their matching command-line flags.
//
// # Plain values
//
// A Config holds strings, numbers, durations, lists and networks, checked for
// their form only. Values in the vocabulary of another package (rate limits,
// role budgets, model prices, fallbacks and endpoints) are kept as written;
// package node parses them into that package's types, and refuses a bad one,
// naming its variable, before it opens anything. This package imports no
// other kowai package outside internal/ (internal/archtest checks it).
//
// # Precedence
//
// A flag wins over its environment variable, which wins over the default of
// API.md. Every value is validated when loaded; an invalid one yields an
// error wrapping ErrInvalid that names the variable (or flag), hides secret
// values, and states the accepted form, so the command can print one line and
// exit with status 2.
//
// # Commands read only their settings
//
// Flags takes the settings a command reads; the others get no flag, are not
// looked up and keep their defaults. Checks across settings (KOWAI_JWT_SECRET
// is required with a mysql database, KOWAI_CLUSTER_PEERS with automanaged)
// run only when the command reads every setting they involve, so `kowai
// migrate` on MariaDB needs no JWT secret while `kowai serve`, which reads
// every setting, does.
//
// # Example
//
//	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
//	load := config.Flags(fs, os.Getenv, "KOWAI_DATABASE_URL", "KOWAI_DATA_DIR")
//	if err := fs.Parse(args); err != nil { ... }
//	cfg, err := load()
package config
