package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

// version and commit are set by the linker (see the Makefile); a build
// without them reports the module version from the build info.
var (
	version = ""
	commit  = ""
)

func versionCmd(_ context.Context, args []string, io stdio, _ func(string) string) error {
	fs := flagSet("version", "version", io)
	if err := parse(fs, args); err != nil {
		return err
	}
	v, c := version, commit
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && c == "" {
				c = s.Value
			}
		}
	}
	if v == "" {
		v = "dev"
	}
	if c == "" {
		c = "unknown"
	}
	_, err := fmt.Fprintf(io.out, "kowai %s\ncommit %s\n%s %s/%s\n", v, c, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return err
}
