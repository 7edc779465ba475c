package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/kowai/kowai/actors"
	"github.com/kowai/kowai/cluster"
	"github.com/kowai/kowai/gateway"
	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/gateway/clientaddr"
	"github.com/kowai/kowai/gateway/ratelimit"
	"github.com/kowai/kowai/gateway/streams"
	"github.com/kowai/kowai/internal/config"
	"github.com/kowai/kowai/internal/logging"
	"github.com/kowai/kowai/internal/netguard"
	"github.com/kowai/kowai/internal/tracing"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/supervisors"
	"github.com/kowai/kowai/workflows"
	"github.com/kowai/kowai/workflows/builtin"
)

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
	return serve(ctx, cfg, log, getenv)
}

// serve constructs a node and runs it until ctx ends. Shutdown order is the
// graceful leave: the gateway stops taking requests and finishes those in
// flight, the cluster node passivates its grains (final snapshots) and
// leaves, and only then does the group-commit writer drain and stop.
func serve(ctx context.Context, cfg *config.Config, log *slog.Logger, getenv func(string) string) error {
	// Tracing is set up first and shut down last, so the spans of the final
	// drain are exported too.
	tracer, err := tracing.New(ctx, getenv, tracing.Options{Version: version, InstanceID: cfg.ClusterAddr})
	if errors.Is(err, tracing.ErrConfig) {
		return usagef("%v", err)
	}
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := tracer.Shutdown(sctx); err != nil {
			log.Warn("traces not flushed at shutdown", "error", err)
		}
	}()
	tp := tracer.TracerProvider()
	if tracer.Enabled() {
		// The SDK reports failed exports (collector down) to its process-wide
		// handler, which would print them unstructured; they go to the log.
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
			log.Warn("tracing export failed", "error", err)
		}))
		log.Info("tracing on: exporting spans over OTLP/HTTP", "endpoint", cmp.Or(getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), getenv("OTEL_EXPORTER_OTLP_ENDPOINT")))
	}
	rateLimit, err := ratelimit.ParseLimit(cfg.RateLimit)
	if err != nil {
		return usagef("KOWAI_RATE_LIMIT: %v", err)
	}
	authRateLimit, err := ratelimit.ParseLimit(cfg.AuthRateLimit)
	if err != nil {
		return usagef("KOWAI_AUTH_RATE_LIMIT: %v", err)
	}
	budgetRoles, err := roleBudgets(cfg)
	if err != nil {
		return err
	}
	clusterTLS, err := loadClusterTLS(cfg, log)
	if err != nil {
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
	rdb, err := openRedis(ctx, cfg)
	if err != nil {
		return err
	}
	if rdb != nil {
		defer rdb.Close()
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

	limiter := newLimiter(rdb)
	authSvc, err := newAuth(cfg, db, rdb, limiter, log)
	if err != nil {
		return err
	}
	if cfg.AdminEmail != "" {
		created, err := authSvc.EnsureAdmin(ctx, cfg.AdminEmail, cfg.AdminPassword)
		if err != nil {
			return fmt.Errorf("KOWAI_ADMIN_EMAIL: create the first admin: %w", err)
		}
		if created {
			log.Info("first admin created", "email", cfg.AdminEmail)
		}
	}
	modelOpts, err := modelOptions(log, reg, lm.WithTracerProvider(tp))
	if err != nil {
		return err
	}
	model, err := newModelWith(cfg, modelOpts)
	if err != nil {
		return err
	}
	defer model.Close()
	models, closeModels, err := newCatalog(cfg, model, modelOpts)
	if err != nil {
		return err
	}
	defer func() {
		if err := closeModels(); err != nil {
			log.Warn("closing model stacks", "error", err)
		}
	}()
	supMetrics, err := supervisors.NewMetrics(reg)
	if err != nil {
		return err
	}

	stores := gateway.NewStores(db)
	writer := persistence.NewWriter(db, persistence.WriterOptions{Logger: log, Metrics: reg, Tracing: tp})
	spending, err := newBudgets(budgetRoles, db, stores.Users, rdb, writer, log, reg)
	if err != nil {
		return err
	}
	types, err := agentTypes()
	if err != nil {
		return err
	}
	rt, err := actors.New(actors.Deps{
		Types:             types,
		Writer:            writer,
		Conversations:     stores.Conversations,
		Messages:          stores.Messages,
		Agents:            stores.Agents,
		Stats:             stores.Stats,
		Snapshots:         persistence.NewSnapshotStore(db),
		LM:                model,
		Models:            models,
		Budgets:           spending,
		Logger:            log,
		Metrics:           reg,
		SupervisorMetrics: supMetrics,
		Tracing:           tp,
	})
	if err != nil {
		return err
	}
	if err := rt.EnsureBuiltins(ctx); err != nil {
		return fmt.Errorf("create built-in agents: %w", err)
	}
	wf, profiles, err := newWorkflows(db, writer, model, log, reg, tp)
	if err != nil {
		return err
	}
	schedules := persistence.NewWorkflowScheduleStore(db)
	scheduler, err := actors.NewScheduler(actors.SchedulerDeps{Schedules: schedules, NodeID: scheduleNodeID(cfg.ClusterAddr), Logger: log, Metrics: reg})
	if err != nil {
		return err
	}
	webhooks := persistence.NewWebhookStore(db)
	webhookGuard := netguard.New(cfg.WebhookAllow)
	notifier, err := newNotifier(cfg, db, webhooks, webhookGuard, log, reg)
	if err != nil {
		return err
	}
	node, err := cluster.New(cluster.Config{
		Name:           cfg.ClusterName,
		Provider:       cluster.Provider(cfg.ClusterProvider),
		Addr:           cfg.ClusterAddr,
		Peers:          cfg.ClusterPeers,
		MembershipAddr: cfg.ClusterMembershipAddr,
		EtcdEndpoints:  cfg.EtcdEndpoints,
		TLS:            clusterTLS,
		Insecure:       cfg.ClusterInsecure,
		Kinds:          append(rt.Kinds(), wf.Kind()),
		// A chat turn may wait on the model for up to the turn timeout.
		RequestTimeout: actors.DefaultTurnTimeout + 10*time.Second,
		OnLeave: func(ctx context.Context) {
			wf.OnLeave(ctx)
			rt.OnLeave(ctx)
		},
		Logger:  log,
		Metrics: reg,
		Tracing: tp,
	})
	if errors.Is(err, cluster.ErrConfig) {
		return usagef("%v", err)
	}
	if err != nil {
		return err
	}
	grains := node.Client()
	rt.SetCaller(grains)
	wf.SetCaller(grains)
	scheduler.SetCaller(grains)

	checks := []gateway.Check{
		{Name: "database", Probe: db.Ping},
		{Name: "cluster", Probe: func(context.Context) error {
			if info := node.Info(); len(info.Members) == 0 {
				return errors.New("this node has not joined its cluster")
			}
			return nil
		}},
	}
	if rdb != nil {
		checks = append(checks, gateway.Check{Name: "redis", Probe: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }})
	}
	var draining atomic.Bool
	gw, err := gateway.New(gateway.Options{
		Addr:           cfg.HTTPAddr,
		Logger:         log,
		Registry:       reg,
		TrustedProxies: clientaddr.FromIPNets(cfg.TrustedProxies),
		Checks:         checks,
		Draining:       func() bool { return draining.Load() || node.Draining() },
		CORSOrigins:    cfg.CORSOrigins,
		// A turn may wait on the model; the HTTP deadline must not cut it first.
		RequestTimeout: actors.DefaultTurnTimeout + 15*time.Second,
		Tracing:        tp,
	})
	if err != nil {
		return err
	}
	// Streamed replies are kept for resumption where every node reads them
	// when Redis is configured, else in this process.
	var replyStreams streams.Store = streams.NewMemory(streams.MemoryOptions{})
	if rdb != nil {
		replyStreams = streams.NewRedis(rdb, streams.RedisOptions{Logger: log})
	}
	keyOpts := auth.APIKeysConfig{Store: gateway.NewAuthAPIKeys(db), Users: authSvc, Logger: log}
	if rdb != nil {
		keyOpts.Redis = rdb
	}
	apiKeys, err := auth.NewAPIKeys(keyOpts)
	if err != nil {
		return err
	}
	chat := &gateway.ClusterChat{Grains: grains}
	if err := gw.Mount(gateway.API{
		Authenticator:     authSvc,
		Chat:              chat,
		Completions:       chat,
		APIKeys:           apiKeys,
		Auth:              authSvc,
		Accounts:          authSvc,
		OpenRegistration:  cfg.OpenRegistration,
		Stores:            stores,
		AgentTypes:        rt.AgentTypes,
		ValidateSignature: types.CheckSignature,
		ValidateAgentConfig: func(t string, raw json.RawMessage) error {
			_, err := types.ParseConfig(t, raw)
			return err
		},
		CheckProgram:  types.CheckProgram,
		AgentWriter:   &gateway.ClusterAgents{Grains: grains},
		Models:        models,
		Budgets:       spending,
		ClusterInfo:   func() any { return node.Info() },
		Limiter:       limiter,
		RateLimit:     rateLimit,
		AuthRateLimit: authRateLimit,
		Streams:       replyStreams,
		Workflows: &gateway.Workflows{Registry: wf.Registry(), Runs: persistence.NewWorkflowStore(db),
			Commands: cluster.WorkflowClient{Caller: grains}, Profiles: profiles, Schedules: schedules,
			Webhooks: webhooks, WebhookGuard: webhookGuard},
	}); err != nil {
		return err
	}
	var metricsSrv *gateway.MetricsServer
	if cfg.MetricsAddr != "" {
		if metricsSrv, err = gateway.NewMetricsServer(gateway.MetricsOptions{Addr: cfg.MetricsAddr, Gatherer: reg, Logger: log}); err != nil {
			return err
		}
	}

	// Join the cluster before the gateway listens, so the first request
	// already finds its grains.
	if err := node.Start(ctx); err != nil {
		return err
	}
	// Shutdown runs in stages, each component with its own context: readiness
	// reports draining for the grace period while requests are still served,
	// then the gateway stops and finishes its requests, then the node leaves
	// the cluster (final snapshots), then the writer drains.
	g, gctx := errgroup.WithContext(ctx)
	writerCtx, stopWriter := context.WithCancel(context.WithoutCancel(ctx))
	nodeCtx, stopNode := context.WithCancel(context.WithoutCancel(ctx))
	gwCtx, stopGateway := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWriter()
	defer stopNode()
	defer stopGateway()
	g.Go(func() error { return writer.Run(writerCtx) })
	g.Go(func() error {
		defer stopWriter()
		// Ledger rows of the last replies go through the writer before it stops.
		defer spending.Wait()
		return node.Run(nodeCtx)
	})
	g.Go(func() error {
		defer stopNode()
		return gw.Run(gwCtx)
	})
	// Last-use times of API keys are written after the gateway stops.
	g.Go(func() error { return apiKeys.Run(writerCtx) })
	// Runs left by a lost node are resumed here without any request.
	g.Go(func() error { return wf.Run(nodeCtx) })
	// Schedule ticks fire from every node; each tick from one of them.
	g.Go(func() error { return scheduler.Run(nodeCtx) })
	// Webhook notifications of finished runs, at least once, from every node.
	g.Go(func() error { return notifier.Run(nodeCtx) })
	if metricsSrv != nil {
		// Metrics stay up while the node drains and leaves the cluster.
		g.Go(func() error { return metricsSrv.Run(writerCtx) })
	}
	g.Go(func() error {
		<-gctx.Done()
		draining.Store(true)
		if ctx.Err() != nil {
			log.Info("draining", "grace", cfg.DrainGrace)
			time.Sleep(cfg.DrainGrace)
		}
		stopGateway()
		return nil
	})
	log.Info("kowai node starting", "http_addr", cfg.HTTPAddr, "metrics_addr", cfg.MetricsAddr, "database", db.String(),
		"cluster_provider", cfg.ClusterProvider, "llm_provider", cfg.LLMProvider)
	if err := g.Wait(); err != nil {
		return err
	}
	log.Info("kowai node stopped")
	return nil
}

// newNotifier builds the webhook notifier: its key is KOWAI_WEBHOOK_SECRET, or
// derived from the JWT secret; its client reaches only addresses the guard allows.
func newNotifier(cfg *config.Config, db *persistence.DB, webhooks *persistence.WebhookStore, guard *netguard.Guard, log *slog.Logger, reg prometheus.Registerer) (*actors.Notifier, error) {
	secret := []byte(cfg.WebhookSecret)
	if len(secret) == 0 {
		jwt, err := cfg.EnsureJWTSecret()
		if err != nil {
			return nil, err
		}
		if secret, err = actors.DeriveWebhookSecret([]byte(jwt)); err != nil {
			return nil, err
		}
	}
	return actors.NewNotifier(actors.NotifierDeps{Webhooks: webhooks, Runs: persistence.NewWorkflowStore(db),
		Client: guard.Client(actors.DefaultWebhookTimeout), Secret: secret, Logger: log, Metrics: reg})
}

// newWorkflows builds the workflow engine with the built-in workflows.
func newWorkflows(db *persistence.DB, writer *persistence.Writer, model lm.LM, log *slog.Logger, reg prometheus.Registerer, tp trace.TracerProvider) (*actors.Workflows, *persistence.ProfileStore, error) {
	profiles := persistence.NewProfileStore(db)
	registry := workflows.NewRegistry()
	if err := builtin.Register(registry, builtin.Options{Profiles: profiles}); err != nil {
		return nil, nil, err
	}
	wf, err := actors.NewWorkflows(actors.WorkflowDeps{Runs: persistence.NewWorkflowStore(db), Writer: writer, Registry: registry,
		Model: model, Cache: workflows.NewMemoryCache(), Logger: log, Metrics: reg, Tracing: tp})
	return wf, profiles, err
}

// certExpiryWarning is how long before its node certificate expires a node starts
// warning at startup.
const certExpiryWarning = 30 * 24 * time.Hour

// loadClusterTLS loads the cluster's mutual TLS material from KOWAI_CLUSTER_TLS_CA,
// _CERT and _KEY. Without them it returns nil for a local cluster and refuses any other
// provider unless KOWAI_CLUSTER_INSECURE is set: grain messages carry the caller's
// identity, so unauthenticated remoting would let anyone on the network act for any user.
func loadClusterTLS(cfg *config.Config, log *slog.Logger) (*cluster.TLS, error) {
	files := []struct{ name, value string }{
		{"KOWAI_CLUSTER_TLS_CA", cfg.ClusterTLSCA},
		{"KOWAI_CLUSTER_TLS_CERT", cfg.ClusterTLSCert},
		{"KOWAI_CLUSTER_TLS_KEY", cfg.ClusterTLSKey},
	}
	var (
		missing []string
		err     error
	)
	for _, f := range files {
		if f.value == "" {
			missing = append(missing, f.name)
		}
	}
	switch {
	case len(missing) == len(files) && cfg.ClusterProvider != string(cluster.ProviderLocal) && !cfg.ClusterInsecure:
		return nil, usagef("KOWAI_CLUSTER_PROVIDER=%s needs mutual TLS between nodes: set KOWAI_CLUSTER_TLS_CA, KOWAI_CLUSTER_TLS_CERT and KOWAI_CLUSTER_TLS_KEY (kowai cert makes them), or KOWAI_CLUSTER_INSECURE=true for development only", cfg.ClusterProvider)
	case len(missing) == len(files):
		return nil, nil
	case len(missing) > 0:
		return nil, usagef("%s not set: KOWAI_CLUSTER_TLS_CA, KOWAI_CLUSTER_TLS_CERT and KOWAI_CLUSTER_TLS_KEY go together", strings.Join(missing, " and "))
	}
	pems := make([][]byte, len(files))
	for i, f := range files {
		if pems[i], err = os.ReadFile(f.value); err != nil {
			return nil, usagef("%s: %v", f.name, err)
		}
	}
	t, err := cluster.NewTLS(pems[0], pems[1], pems[2])
	if err != nil {
		return nil, usagef("KOWAI_CLUSTER_TLS_CA, KOWAI_CLUSTER_TLS_CERT, KOWAI_CLUSTER_TLS_KEY: %v", err)
	}
	if left := time.Until(t.NotAfter()); left < certExpiryWarning {
		log.Warn("cluster node certificate expires soon; restart with a new one signed by the same CA",
			"expires", t.NotAfter(), "cert", cfg.ClusterTLSCert)
	}
	return t, nil
}

// scheduleNodeID names this node in a schedule's claim_owner: its cluster address and a
// random suffix (two processes may reuse an address in turn), cut to the column's 64
// characters, so an operator can tell which node holds a claim.
func scheduleNodeID(clusterAddr string) string {
	id := uuid.NewString()[:8]
	if clusterAddr != "" {
		id = clusterAddr + " " + id
	}
	if len(id) > 64 {
		id = id[len(id)-64:]
	}
	return id
}
