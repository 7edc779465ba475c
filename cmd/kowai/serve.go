package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/kowai/kowai/cluster"
	"github.com/kowai/kowai/gateway"
	"github.com/kowai/kowai/internal/config"
	"github.com/kowai/kowai/persistence"
)

func serveCmd(ctx context.Context, args []string, io stdio, getenv func(string) string) error {
	fs := flagSet("serve", "serve [flags]", io)
	cfg, log, err := withConfig(fs, args, io, getenv)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return serve(ctx, cfg, log)
}

// serve constructs a node and runs it until ctx ends. Shutdown order is the
// graceful leave: the gateway stops taking requests and finishes those in
// flight, the cluster node passivates its grains and leaves, and only then
// does the group-commit writer drain and stop, so final snapshots are stored.
func serve(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	if _, err := cfg.EnsureJWTSecret(); err != nil {
		return err
	}
	db, mig, err := openDatabase(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer db.Close()
	if cfg.AutoMigrate {
		n, err := mig.Up(ctx)
		if err != nil {
			return err
		}
		if n > 0 {
			log.Info("database migrated", "applied", n, "version", mig.Latest())
		}
	} else if err := mig.CheckCurrent(ctx); err != nil {
		return fmt.Errorf("%w (or set KOWAI_AUTO_MIGRATE=true)", err)
	}

	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		persistence.NewPoolCollector(db, "main"),
	} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register collectors: %w", err)
		}
	}

	writer := persistence.NewWriter(db, persistence.WriterOptions{Logger: log, Metrics: reg})
	node, err := cluster.New(cluster.Config{
		Name:           cfg.ClusterName,
		Provider:       cluster.Provider(cfg.ClusterProvider),
		Addr:           cfg.ClusterAddr,
		Peers:          cfg.ClusterPeers,
		MembershipAddr: cfg.ClusterMembershipAddr,
		EtcdEndpoints:  cfg.EtcdEndpoints,
		Logger:         log,
		Metrics:        reg,
	})
	if err != nil {
		return err
	}
	gw, err := gateway.New(gateway.Options{
		Addr:        cfg.HTTPAddr,
		Logger:      log,
		Registry:    reg,
		Gatherer:    reg,
		Checks:      []gateway.Check{{Name: "database", Probe: db.Ping}},
		Draining:    node.Draining,
		CORSOrigins: cfg.CORSOrigins,
	})
	if err != nil {
		return err
	}

	g, gctx := errgroup.WithContext(ctx)
	writerCtx, stopWriter := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWriter()
	g.Go(func() error { return writer.Run(writerCtx) })
	g.Go(func() error {
		defer stopWriter()
		return node.Run(gctx)
	})
	g.Go(func() error { return gw.Run(gctx) })
	log.Info("kowai node starting", "http_addr", cfg.HTTPAddr, "database", db.String(),
		"cluster_provider", cfg.ClusterProvider, "llm_provider", cfg.LLMProvider)
	if err := g.Wait(); err != nil {
		return err
	}
	log.Info("kowai node stopped")
	return nil
}
