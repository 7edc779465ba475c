package main

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/kowai/kowai/internal/config"
	"github.com/kowai/kowai/persistence"
)

func migrateCmd(ctx context.Context, args []string, io stdio, getenv func(string) string) error {
	fs := flagSet("migrate", "migrate up | down N | status [flags]", io)
	cfg, log, err := withConfig(fs, args, io, getenv)
	if err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return usagef("missing action: want up, down N or status")
	}
	n := 0
	switch rest[0] {
	case "up", "status":
		if len(rest) != 1 {
			return usagef("%s takes no arguments", rest[0])
		}
	case "down":
		if len(rest) != 2 {
			return usagef("down needs a count: want down N with N >= 1")
		}
		if n, err = strconv.Atoi(rest[1]); err != nil || n < 1 {
			return usagef("down %q: want down N with N >= 1", rest[1])
		}
	default:
		return usagef("unknown action %q: want up, down N or status", rest[0])
	}
	db, mig, err := openDatabase(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer db.Close()
	switch rest[0] {
	case "up":
		applied, err := mig.Up(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(io.out, "applied %d migration(s); schema at version %d\n", applied, mig.Latest())
	case "down":
		reverted, err := mig.Down(ctx, n)
		if err != nil {
			return err
		}
		cur, err := mig.Current(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(io.out, "rolled back %d migration(s); schema at version %d\n", reverted, cur)
	case "status":
		st, err := mig.Status(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(io.out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "VERSION\tNAME\tSTATE\tAPPLIED AT")
		for _, s := range st {
			state, at := "pending", ""
			switch {
			case s.Dirty:
				state = "DIRTY"
			case s.Unknown:
				state = "unknown (newer binary)"
			case s.Applied:
				state, at = "applied", s.AppliedAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", s.Version, s.Name, state, at)
		}
		return tw.Flush()
	}
	return nil
}

// openDatabase opens KOWAI_DATABASE_URL and returns it with its migrator.
func openDatabase(ctx context.Context, cfg *config.Config, log *slog.Logger) (*persistence.DB, *persistence.Migrator, error) {
	db, err := persistence.Open(ctx, cfg.DatabaseURL, persistence.Options{Logger: log.With("component", "database")})
	if err != nil {
		return nil, nil, err
	}
	mig, err := persistence.NewMigrator(db, persistence.MigratorOptions{Logger: log.With("component", "migrate")})
	if err != nil {
		_ = db.Close()
		return nil, nil, err
	}
	return db, mig, nil
}
