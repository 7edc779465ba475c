package node

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"golang.org/x/sync/errgroup"

	"github.com/kowai/kowai/actors"
	"github.com/kowai/kowai/agents"
	"github.com/kowai/kowai/budgets"
	"github.com/kowai/kowai/cluster"
	"github.com/kowai/kowai/gateway"
	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/gateway/clientaddr"
	"github.com/kowai/kowai/gateway/streams"
	"github.com/kowai/kowai/internal/config"
	"github.com/kowai/kowai/internal/netguard"
	"github.com/kowai/kowai/internal/tracing"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/supervisors"
	"github.com/kowai/kowai/workflows"
)

// ErrConfig is matched by the errors of New (and of the constructors of this
// package) that a configuration setting must change to fix.
var ErrConfig = errors.New("node configuration")

// configError is an error that matches ErrConfig and reads as its cause alone,
// so that the command prints the operator's one line unchanged.
type configError struct{ err error }

func (e *configError) Error() string        { return e.err.Error() }
func (e *configError) Unwrap() error        { return e.err }
func (e *configError) Is(target error) bool { return target == ErrConfig }

// configErrorf formats an error that matches ErrConfig.
func configErrorf(format string, args ...any) error {
	return &configError{fmt.Errorf(format, args...)}
}

// Options are what a node is built from besides its configuration. The zero
// value is usable.
type Options struct {
	// Logger receives the node's logs; nil discards them.
	Logger *slog.Logger
	// Getenv reads the OTEL_* variables that configure tracing; nil means
	// os.Getenv.
	Getenv func(string) string
	// Version is the service version reported with the node's traces.
	Version string
	// Types are the agent types the node runs; nil means the built-in ones
	// (agents.Builtins).
	Types *agents.Registry
	// Workflows, when set, registers workflows next to the built-in ones.
	Workflows func(*workflows.Registry) error
}

// Node is one kowai node: see the package documentation for its lifecycle.
type Node struct {
	cfg *config.Config
	log *slog.Logger

	tracer   *tracing.Provider
	db       *persistence.DB
	rdb      *redis.Client
	writer   *persistence.Writer
	spending *budgets.Enforcer
	rt       *actors.Runtime
	wf       *actors.Workflows
	sched    *actors.Scheduler
	notifier *actors.Notifier
	cluster  *cluster.Node
	gw       *gateway.Server
	apiKeys  *auth.APIKeys
	metrics  *gateway.MetricsServer // nil without KOWAI_METRICS_ADDR
	draining atomic.Bool

	// closers release what New acquired, in reverse order.
	closers   []func() error
	closeOnce sync.Once
	closeErr  error
	ran       atomic.Bool
}

// New builds a node from cfg. See the package documentation for what it
// acquires and does under ctx.
func New(ctx context.Context, cfg *config.Config, opts Options) (_ *Node, err error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	n := &Node{cfg: cfg, log: log}
	set, err := parseSettings(cfg, getenv)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, n.Close())
		}
	}()

	// Tracing is set up first and shut down last, so the spans of the final
	// drain are exported too.
	if n.tracer, err = tracing.New(ctx, getenv, tracing.Options{Version: opts.Version, InstanceID: cfg.ClusterAddr}); err != nil {
		if errors.Is(err, tracing.ErrConfig) {
			return nil, &configError{err}
		}
		return nil, err
	}
	n.onClose(func() error {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := n.tracer.Shutdown(sctx); err != nil {
			// The collector being down must not fail the node's exit.
			log.Warn("traces not flushed at shutdown", "error", err)
		}
		return nil
	})
	tp := n.tracer.TracerProvider()
	if n.tracer.Enabled() {
		// The SDK reports failed exports (collector down) to its process-wide
		// handler, which would print them unstructured; they go to the log.
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
			log.Warn("tracing export failed", "error", err)
		}))
		log.Info("tracing on: exporting spans over OTLP/HTTP", "endpoint", cmp.Or(getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), getenv("OTEL_EXPORTER_OTLP_ENDPOINT")))
	}
	clusterTLS, err := loadClusterTLS(cfg, log)
	if err != nil {
		return nil, err
	}
	db, mig, err := OpenDatabase(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	n.db = db
	n.onClose(db.Close)
	if cfg.AutoMigrate {
		applied, err := mig.Up(ctx)
		if err != nil {
			return nil, err
		}
		if applied > 0 {
			log.Info("database migrated", "applied", applied, "version", mig.Latest())
		}
	} else if err := mig.CheckCurrent(ctx); err != nil {
		return nil, fmt.Errorf("%w (or set KOWAI_AUTO_MIGRATE=true)", err)
	}
	rdb, err := openRedis(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if rdb != nil {
		n.rdb = rdb
		n.onClose(rdb.Close)
	}

	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		persistence.NewPoolCollector(db, "main"),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register collectors: %w", err)
		}
	}

	limiter := NewLimiter(rdb)
	authSvc, err := NewAuth(cfg, db, rdb, limiter, log)
	if err != nil {
		return nil, err
	}
	if cfg.AdminEmail != "" {
		created, err := authSvc.EnsureAdmin(ctx, cfg.AdminEmail, cfg.AdminPassword)
		if err != nil {
			return nil, fmt.Errorf("KOWAI_ADMIN_EMAIL: create the first admin: %w", err)
		}
		if created {
			log.Info("first admin created", "email", cfg.AdminEmail)
		}
	}
	modelOpts, err := modelOptions(log, reg, lm.WithTracerProvider(tp))
	if err != nil {
		return nil, err
	}
	model, err := newModelWith(cfg, modelOpts)
	if err != nil {
		return nil, err
	}
	n.onClose(model.Close)
	models, closeModels := newCatalog(cfg, set, model, modelOpts)
	n.onClose(closeModels)
	supMetrics, err := supervisors.NewMetrics(reg)
	if err != nil {
		return nil, err
	}

	stores := gateway.NewStores(db)
	n.writer = persistence.NewWriter(db, persistence.WriterOptions{Logger: log, Metrics: reg, Tracing: tp})
	if n.spending, err = newBudgets(set.budgetRoles, db, stores.Users, rdb, n.writer, log, reg); err != nil {
		return nil, err
	}
	n.rt, err = actors.New(actors.Deps{
		Types:             opts.Types,
		Writer:            n.writer,
		Conversations:     stores.Conversations,
		Messages:          stores.Messages,
		Agents:            stores.Agents,
		Stats:             stores.Stats,
		Snapshots:         persistence.NewSnapshotStore(db),
		LM:                model,
		Models:            models,
		Budgets:           n.spending,
		Logger:            log,
		Metrics:           reg,
		SupervisorMetrics: supMetrics,
		Tracing:           tp,
	})
	if err != nil {
		return nil, err
	}
	if err := n.rt.EnsureBuiltins(ctx); err != nil {
		return nil, fmt.Errorf("create built-in agents: %w", err)
	}
	wf, profiles, err := newWorkflows(db, n.writer, model, opts.Workflows, premiumAccess(authSvc), log, reg, tp)
	if err != nil {
		return nil, err
	}
	n.wf = wf
	schedules := persistence.NewWorkflowScheduleStore(db)
	if n.sched, err = actors.NewScheduler(actors.SchedulerDeps{Schedules: schedules, NodeID: scheduleNodeID(cfg.ClusterAddr), Logger: log, Metrics: reg}); err != nil {
		return nil, err
	}
	webhooks := persistence.NewWebhookStore(db)
	webhookGuard := netguard.New(cfg.WebhookAllow)
	if n.notifier, err = newNotifier(cfg, db, webhooks, webhookGuard, log, reg); err != nil {
		return nil, err
	}
	n.cluster, err = cluster.New(cluster.Config{
		Name:           cfg.ClusterName,
		Provider:       cluster.Provider(cfg.ClusterProvider),
		Addr:           cfg.ClusterAddr,
		Peers:          cfg.ClusterPeers,
		MembershipAddr: cfg.ClusterMembershipAddr,
		EtcdEndpoints:  cfg.EtcdEndpoints,
		TLS:            clusterTLS,
		Insecure:       cfg.ClusterInsecure,
		Kinds:          append(n.rt.Kinds(), wf.Kind()),
		// A chat turn may wait on the model for up to the turn timeout.
		RequestTimeout: actors.DefaultTurnTimeout + 10*time.Second,
		OnLeave: func(ctx context.Context) {
			wf.OnLeave(ctx)
			n.rt.OnLeave(ctx)
		},
		Logger:  log,
		Metrics: reg,
		Tracing: tp,
	})
	if errors.Is(err, cluster.ErrConfig) {
		return nil, &configError{err}
	}
	if err != nil {
		return nil, err
	}
	grains := n.cluster.Client()
	n.rt.SetCaller(grains)
	wf.SetCaller(grains)
	n.sched.SetCaller(grains)

	checks := []gateway.Check{
		{Name: "database", Probe: db.Ping},
		{Name: "cluster", Probe: func(context.Context) error {
			if info := n.cluster.Info(); len(info.Members) == 0 {
				return errors.New("this node has not joined its cluster")
			}
			return nil
		}},
	}
	if rdb != nil {
		checks = append(checks, gateway.Check{Name: "redis", Probe: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }})
	}
	n.gw, err = gateway.New(gateway.Options{
		Addr:           cfg.HTTPAddr,
		Logger:         log,
		Registry:       reg,
		TrustedProxies: clientaddr.FromIPNets(cfg.TrustedProxies),
		Checks:         checks,
		Draining:       func() bool { return n.draining.Load() || n.cluster.Draining() },
		CORSOrigins:    cfg.CORSOrigins,
		// A turn may wait on the model; the HTTP deadline must not cut it first.
		RequestTimeout: actors.DefaultTurnTimeout + 15*time.Second,
		Tracing:        tp,
	})
	if err != nil {
		return nil, err
	}
	// Streamed replies are kept for resumption where every node reads them
	// when Redis is configured, else in this process.
	var replyStreams streams.Store = streams.NewMemory(streams.MemoryOptions{})
	if rdb != nil {
		replyStreams = streams.NewRedis(rdb, streams.RedisOptions{Logger: log})
	}
	// Every node signs the stream IDs it announces with the same key, so any
	// node recognizes them.
	jwtSecret, err := cfg.EnsureJWTSecret()
	if err != nil {
		return nil, err
	}
	streamKey, err := gateway.DeriveStreamKey([]byte(jwtSecret))
	if err != nil {
		return nil, err
	}
	keyOpts := auth.APIKeysConfig{Store: gateway.NewAuthAPIKeys(db), Users: authSvc, Logger: log}
	if rdb != nil { // a nil *redis.Client in the interface would not be nil
		keyOpts.Redis = rdb
	}
	if n.apiKeys, err = auth.NewAPIKeys(keyOpts); err != nil {
		return nil, err
	}
	types := n.rt.Types()
	chat := &gateway.ClusterChat{Grains: grains}
	if err := n.gw.Mount(gateway.API{
		Authenticator:     authSvc,
		Chat:              chat,
		Completions:       chat,
		APIKeys:           n.apiKeys,
		Auth:              authSvc,
		Accounts:          authSvc,
		OpenRegistration:  cfg.OpenRegistration,
		Stores:            stores,
		AgentTypes:        n.rt.AgentTypes,
		ValidateSignature: types.CheckSignature,
		ValidateAgentConfig: func(t string, raw json.RawMessage) error {
			_, err := types.ParseConfig(t, raw)
			return err
		},
		CheckProgram:  types.CheckProgram,
		AgentWriter:   &gateway.ClusterAgents{Grains: grains},
		Models:        models,
		Budgets:       n.spending,
		ClusterInfo:   func() any { return n.cluster.Info() },
		Limiter:       limiter,
		RateLimit:     set.rateLimit,
		AuthRateLimit: set.authRateLimit,
		Streams:       replyStreams,
		StreamKey:     streamKey,
		Workflows: &gateway.Workflows{Registry: wf.Registry(), Runs: persistence.NewWorkflowStore(db),
			Commands: cluster.WorkflowClient{Caller: grains}, Profiles: profiles, Schedules: schedules,
			Webhooks: webhooks, WebhookGuard: webhookGuard},
	}); err != nil {
		return nil, err
	}
	if cfg.MetricsAddr != "" {
		if n.metrics, err = gateway.NewMetricsServer(gateway.MetricsOptions{Addr: cfg.MetricsAddr, Gatherer: reg, Logger: log, Pprof: cfg.Pprof}); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// onClose adds f to what Close (or the end of Run) releases, in reverse order.
func (n *Node) onClose(f func() error) { n.closers = append(n.closers, f) }

// Close releases the resources New acquired; see the package documentation.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		var errs []error
		for _, f := range slices.Backward(n.closers) {
			errs = append(errs, f())
		}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// Ready is closed once the gateway listens, which Run does after the node has
// joined its cluster. It stays open when Run fails before that, so a caller
// waits on it together with Run's return.
func (n *Node) Ready() <-chan struct{} { return n.gw.Ready() }

// HTTPAddr returns the address the gateway listens on once Ready is closed
// (useful with KOWAI_HTTP_ADDR=127.0.0.1:0), nil before.
func (n *Node) HTTPAddr() net.Addr { return n.gw.Addr() }

// Run runs the node until ctx is done or a component fails; see the package
// documentation for its shutdown order. The error of the first component that
// failed is returned, joined with any error releasing the node's resources.
func (n *Node) Run(ctx context.Context) (err error) {
	if !n.ran.CompareAndSwap(false, true) {
		return errors.New("node: Run called twice")
	}
	defer func() { err = errors.Join(err, n.Close()) }()
	// Join the cluster before the gateway listens, so the first request
	// already finds its grains.
	if err := n.cluster.Start(ctx); err != nil {
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
	g.Go(func() error { return n.writer.Run(writerCtx) })
	g.Go(func() error {
		defer stopWriter()
		// Ledger rows of the last replies go through the writer before it stops.
		defer n.spending.Wait()
		return n.cluster.Run(nodeCtx)
	})
	g.Go(func() error {
		defer stopNode()
		return n.gw.Run(gwCtx)
	})
	// Last-use times of API keys are written after the gateway stops.
	g.Go(func() error { return n.apiKeys.Run(writerCtx) })
	// Runs left by a lost node are resumed here without any request.
	g.Go(func() error { return n.wf.Run(nodeCtx) })
	// Schedule ticks fire from every node; each tick from one of them.
	g.Go(func() error { return n.sched.Run(nodeCtx) })
	// Webhook notifications of finished runs, at least once, from every node.
	g.Go(func() error { return n.notifier.Run(nodeCtx) })
	if n.metrics != nil {
		// Metrics stay up while the node drains and leaves the cluster.
		g.Go(func() error { return n.metrics.Run(writerCtx) })
	}
	g.Go(func() error {
		<-gctx.Done()
		n.draining.Store(true)
		if ctx.Err() != nil {
			n.log.Info("draining", "grace", n.cfg.DrainGrace)
			time.Sleep(n.cfg.DrainGrace)
		}
		stopGateway()
		return nil
	})
	n.log.Info("kowai node starting", "http_addr", n.cfg.HTTPAddr, "metrics_addr", n.cfg.MetricsAddr, "database", n.db.String(),
		"cluster_provider", n.cfg.ClusterProvider, "llm_provider", n.cfg.LLMProvider)
	if err := g.Wait(); err != nil {
		return err
	}
	n.log.Info("kowai node stopped")
	return nil
}
