package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/kowai/kowai/internal/logging"
	"github.com/kowai/kowai/node"
)

// serveCmd parses serve's flags and configuration and runs a node (package
// node) until ctx ends.
func serveCmd(ctx context.Context, args []string, io stdio, getenv func(string) string) (err error) {
	// The node's log, the access log's line per request included, goes through a
	// bounded buffer flushed every 100 ms and when serve returns: one write system
	// call per request cost a fifth of the CPU of a cheap authenticated read.
	logBuf := logging.NewBuffer(io.err, logging.DefaultBufferSize, logging.DefaultFlushInterval)
	defer func() {
		if cerr := logBuf.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("flush the log: %w", cerr))
		}
	}()
	io.err = logBuf
	fs := flagSet("serve", "serve [flags]", io)
	cfg, log, err := withConfig(fs, args, io, getenv)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	types, err := agentTypes()
	if err != nil {
		return err
	}
	n, err := node.New(ctx, cfg, node.Options{Logger: log, Getenv: getenv, Version: version, Types: types})
	if err != nil {
		return err
	}
	return n.Run(ctx)
}
