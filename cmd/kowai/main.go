// Command kowai runs a kowai node and its administrative tasks.
//
// main only turns signals into a context and the command's error into an
// exit status; each subcommand parses its flags and configuration and calls
// the packages that do the work: serve builds a node with package node and
// runs it until the context ends.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr}, os.Getenv)
	stop()
	os.Exit(code)
}
