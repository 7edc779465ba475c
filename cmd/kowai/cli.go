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
)

// stdio are the streams a command reads and writes.
type stdio struct {
	in       io.Reader
	out, err io.Writer
}

// usageError is bad input from the operator: a flag, an argument or a
// configuration value. It exits with status 2; every other error exits 1.
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
		"migrate":  {"apply (up), roll back (down N) or list (status) database migrations", migrateCmd},
		"optimize": {"compile a signature program on a train set and report its score", optimizeCmd},
		"user":     {"manage users: user create", userCmd},
		"version":  {"print version, commit and Go version", versionCmd},
	}
}

// run executes the command named by args[0] and returns the exit status.
func run(ctx context.Context, args []string, io stdio, getenv func(string) string) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
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
	case errors.As(err, &ue), errors.Is(err, config.ErrInvalid):
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
	fmt.Fprintln(w, "\nEvery command takes --help. Configuration comes from KOWAI_* variables or the matching flags.")
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

// flagSet returns a flag set whose parse errors become usage errors and whose
// --help output goes to io.out.
func flagSet(name, usage string, io stdio) *flag.FlagSet {
	fs := flag.NewFlagSet("kowai "+name, flag.ContinueOnError)
	fs.SetOutput(io.out)
	fs.Usage = func() {
		fmt.Fprintf(io.out, "usage: kowai %s\n\nflags:\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args; a parse error is a usage error that names the flag.
func parse(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fs.Usage()
		return flag.ErrHelp
	}
	if err != nil {
		return usageError{err.Error()}
	}
	return nil
}

// withConfig registers the configuration flags, parses args and loads the
// configuration, returning it with a logger built from it.
func withConfig(fs *flag.FlagSet, args []string, io stdio, getenv func(string) string) (*config.Config, *slog.Logger, error) {
	load := config.Flags(fs, getenv)
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
	return cfg, logging.New(io.err, level, cfg.LogFormat), nil
}
