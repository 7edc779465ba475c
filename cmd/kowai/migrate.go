package main

import (
	"context"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/kowai/kowai/node"
	"github.com/kowai/kowai/persistence"
)

func migrateCmd(ctx context.Context, args []string, io stdio, getenv func(string) string) error {
	fs := flagSet("migrate", "migrate up | down N | down --all | status [flags]", io)
	all := fs.Bool("all", false, "with down: roll back every applied migration")
	cfg, log, err := withConfig(fs, args, io, getenv, databaseSettings()...)
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
		switch {
		case *all && len(rest) == 1:
		case *all:
			return usagef("down --all takes no count")
		case len(rest) != 2:
			return usagef("down needs a count: want down N with N >= 1, or down --all")
		default:
			if n, err = strconv.Atoi(rest[1]); err != nil || n < 1 {
				return usagef("down %q: want down N with N >= 1, or down --all", rest[1])
			}
		}
	default:
		return usagef("unknown action %q: want up, down N or status", rest[0])
	}
	if *all && rest[0] != "down" {
		return usagef("--all goes with down only")
	}
	db, mig, err := node.OpenDatabase(ctx, cfg, log)
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
		applied, err := countApplied(ctx, mig)
		if err != nil {
			return err
		}
		if *all {
			n = max(applied, 1)
		} else if n > applied {
			// A count beyond what is applied is more likely a typo than a
			// wish to drop every table.
			return usagef("down %d: only %d migration(s) are applied; roll them all back with down --all", n, applied)
		}
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

// databaseSettings are the settings of the commands that only open the
// database: they do not need KOWAI_JWT_SECRET or any other setting of serve.
func databaseSettings() []string { return []string{"KOWAI_DATABASE_URL", "KOWAI_DATA_DIR"} }

// countApplied returns how many migrations the database has fully applied.
func countApplied(ctx context.Context, mig *persistence.Migrator) (int, error) {
	st, err := mig.Status(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range st {
		if s.Applied {
			n++
		}
	}
	return n, nil
}
