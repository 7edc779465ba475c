package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"

	"github.com/kowai/kowai/internal/config"
	"github.com/kowai/kowai/internal/logging"
	"github.com/kowai/kowai/node"
)

// stdio are the streams a command reads and writes.
type stdio struct {
	in       io.Reader
	out, err io.Writer
}

// usageError is bad input from the operator: a flag, an argument or a
// configuration value. It exits with status 2, as do the configuration errors of
// packages config and node; every other error exits 1.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// command is one subcommand.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, io stdio, getenv func(string) string) error
}

func commands() map[string]command {
	return map[string]command{
		"serve":    {"run a node: gateway and actor runtime", serveCmd},
		"cert":     {"create a development cluster CA and node certificates: cert ca, cert node NAME", certCmd},
		"health":   {"exit 0 when a node's /health/live answers (container health checks)", healthCmd},
		"backup":   {"write an online, consistent copy of the embedded SQLite database", backupCmd},
		"restore":  {"replace the embedded SQLite database with a backup (node stopped)", restoreCmd},
		"migrate":  {"apply (up), roll back (down N, down --all) or list (status) database migrations", migrateCmd},
		"optimize": {"compile a signature program on a train set and report its score", optimizeCmd},
		"user":     {"manage users: user create", userCmd},
		"version":  {"print version, commit and Go version", versionCmd},
		"workflow": {"list, run, watch, cancel and resume workflow runs on a node over HTTP (KOWAI_URL, KOWAI_TOKEN)", workflowCmd},
	}
}

// run executes the command named by args[0] and returns the exit status.
func run(ctx context.Context, args []string, io stdio, getenv func(string) string) int {
	cmds := commands()
	if len(args) > 1 && args[0] == "help" {
		args = []string{args[1], "--help"} // kowai help serve
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
		printUsage(io.out, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(io.err, "kowai: unknown command %q; want one of %s (kowai --help)\n", args[0], strings.Join(names(cmds), ", "))
		return 2
	}
	err := cmd.run(ctx, args[1:], io, getenv)
	var ue usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue), errors.Is(err, config.ErrInvalid), errors.Is(err, node.ErrConfig):
		fmt.Fprintf(io.err, "kowai %s: %v\n", args[0], oneLine(err))
		return 2
	default:
		fmt.Fprintf(io.err, "kowai %s: %v\n", args[0], oneLine(err))
		return 1
	}
}

func names(cmds map[string]command) []string {
	var out []string
	for n := range cmds {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func printUsage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: kowai <command> [flags]\n\ncommands:")
	for _, n := range names(cmds) {
		fmt.Fprintf(w, "  %-9s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nkowai COMMAND --help (or kowai help COMMAND) lists the command's flags. Configuration comes\nfrom KOWAI_* variables or the matching flags; a flag wins.")
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

// flagSet returns a flag set whose parse errors become usage errors and whose
// --help prints the usage line and every flag, with its variable and default,
// to io.out (see parse).
func flagSet(name, usage string, std stdio) *flag.FlagSet {
	fs := flag.NewFlagSet("kowai "+name, flag.ContinueOnError)
	// Parse errors are reported by run, on one line.
	fs.SetOutput(io.Discard)
	fs.Usage = func() { printHelp(std.out, fs, usage) }
	return fs
}

// parse parses args; a parse error is a usage error that names the flag, and
// --help prints the help once. Flags may follow arguments, as in
// `kowai migrate down --all`; after "--" everything is an argument. fs.Args()
// returns the arguments.
func parse(fs *flag.FlagSet, args []string) error {
	// The flag package calls Usage on every parse error as well as on
	// --help; only --help should print it, and only once.
	usage := fs.Usage
	fs.Usage = func() {}
	defer func() { fs.Usage = usage }()
	var positional []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			usage()
			return flag.ErrHelp
		}
		if err != nil {
			return usageError{err.Error()}
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			positional = append(positional, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	// Parsing "--" and the arguments leaves them in fs.Args().
	if err := fs.Parse(append([]string{"--"}, positional...)); err != nil {
		return usageError{err.Error()}
	}
	return nil
}

// printHelp writes the usage line and fs's flags, one block per flag:
//
//	--http-addr string
//	      gateway listen address (env KOWAI_HTTP_ADDR, default 127.0.0.1:8080)
func printHelp(w io.Writer, fs *flag.FlagSet, usage string) {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: kowai %s\n", usage)
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		if n == 0 {
			b.WriteString("\nflags:\n")
		}
		n++
		kind, text := flag.UnquoteUsage(f)
		if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
			kind = ""
		}
		fmt.Fprintf(&b, "  --%s", f.Name)
		if kind != "" {
			fmt.Fprintf(&b, " %s", kind)
		}
		fmt.Fprintf(&b, "\n        %s", text)
		if d := f.DefValue; d != "" && d != "0" && d != "false" && d != "[]" {
			fmt.Fprintf(&b, " (default %s)", d)
		}
		b.WriteString("\n")
	})
	// A help that cannot be written has nowhere else to go.
	_, _ = io.WriteString(w, b.String())
}

// withConfig registers the flags of the configuration settings the command
// reads (every setting when reads is empty), parses args and loads the
// configuration, returning it with a logger built from it. A command other
// than serve logs plain messages unless KOWAI_LOG_FORMAT or --log-format asks
// for json or text.
func withConfig(fs *flag.FlagSet, args []string, io stdio, getenv func(string) string, reads ...string) (*config.Config, *slog.Logger, error) {
	load := config.Flags(fs, getenv, reads...)
	if err := parse(fs, args); err != nil {
		return nil, nil, err
	}
	cfg, err := load()
	if err != nil {
		return nil, nil, err
	}
	level, err := logging.ParseLevel(cfg.LogLevel)
	if err != nil {
		return nil, nil, usagef("KOWAI_LOG_LEVEL=%q: %v", cfg.LogLevel, err)
	}
	if cfg.LogFormat == "" && fs.Name() != "kowai serve" {
		return cfg, slog.New(newPlainHandler(io.err, level)), nil
	}
	return cfg, logging.New(io.err, level, cfg.LogFormat), nil
}
