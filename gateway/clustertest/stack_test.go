package clustertest

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/kowai/kowai/actors"
	"github.com/kowai/kowai/budgets"
	"github.com/kowai/kowai/cluster"
	ctest "github.com/kowai/kowai/cluster/clustertest"
	"github.com/kowai/kowai/gateway"
	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/gateway/ratelimit"
	"github.com/kowai/kowai/internal/netguard"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/signatures/lm/offline"
	"github.com/kowai/kowai/supervisors"
	"github.com/kowai/kowai/workflows"
	"github.com/kowai/kowai/workflows/builtin"
)

// testSecret signs the stack's access tokens.
var testSecret = []byte("clustertest-secret-0123456789abcdef")

// stack is one kowai node assembled as package node assembles it for kowai
// serve, serving HTTP on 127.0.0.1. It is wired by hand because the tests need
// what node.Options does not offer: several nodes in one process sharing one
// database and one local cluster group, a scripted model, cheap password
// hashing and short loop intervals. TestNodeServesATurnAndStops runs a node
// built by package node itself.
type stack struct {
	url string
	// keys are the node's API keys.
	keys   *auth.APIKeys
	db     *persistence.DB
	writer *persistence.Writer
	auth   *auth.Service
	client *http.Client
	// reg is the node's metrics registry.
	reg *prometheus.Registry
}

// stackOptions tune a stack.
type stackOptions struct {
	// rateLimit is the per-user limit; zero means the production default.
	rateLimit ratelimit.Limit
	// log receives the node's logs; nil discards them (after formatting).
	log *slog.Logger
	// workflows registers extra workflows next to the built-ins.
	workflows func(*workflows.Registry)
	// tracing, when set, makes the stack two cluster nodes in one process:
	// node 0 serves the gateway and hosts no grains, node 1 hosts every
	// grain (and runs the writer and the model), so a chat turn crosses a
	// node boundary. tracing[i] is node i's tracer provider.
	tracing []trace.TracerProvider
	// models, when set, is the node's model catalog (KOWAI_LLM_MODELS).
	models *lm.Catalog
	// budgets, when set, makes the enforcer that holds users to their budgets
	// (KOWAI_BUDGETS), given the node's writer.
	budgets func(*persistence.Writer) *budgets.Enforcer
	// model answers the agents; nil means the offline model.
	model lm.LM
}

// startStack builds a node on db and stops it in Cleanup in kowai serve's
// order: the gateway first, then the cluster node (final snapshots), then
// the writer.
func startStack(tb testing.TB, db *persistence.DB, opts stackOptions) *stack {
	tb.Helper()
	return startStacks(tb, db, 1, opts)[0]
}

// nodeParts is one node's writer and runtimes before its cluster node starts.
type nodeParts struct {
	log      *slog.Logger
	reg      *prometheus.Registry
	writer   *persistence.Writer
	stores   gateway.Stores
	rt       *actors.Runtime
	wf       *actors.Workflows
	wfReg    *workflows.Registry
	profiles *persistence.ProfileStore
	gwTP     trace.TracerProvider
	spending *budgets.Enforcer
	auth     *auth.Service
}

// startStacks builds n nodes of one cluster on db, each with its own
// runtimes, cluster node and gateway, as n kowai serve processes would be.
// With opts.tracing, n must be 1: the stack is then two cluster nodes.
func startStacks(tb testing.TB, db *persistence.DB, n int, opts stackOptions) []*stack {
	tb.Helper()
	if len(opts.tracing) == 2 && n != 1 {
		tb.Fatal("a traced stack is one gateway over two cluster nodes")
	}
	nodes := make([]*nodeParts, n)
	for i := range nodes {
		nodes[i] = buildNode(tb, db, opts)
	}
	// offset: the cluster node of nodes[i] is cnodes[i+offset].
	offset := 0
	if len(opts.tracing) == 2 {
		offset = 1
	}
	cnodes := ctest.Start(tb, ctest.Options{
		Nodes: n + offset,
		Configure: func(i int, cfg *cluster.Config) {
			cfg.RequestTimeout = actors.DefaultTurnTimeout + 10*time.Second
			if offset == 1 {
				cfg.Tracing = opts.tracing[i]
				if i == 0 {
					// The gateway's node hosts nothing: every grain call leaves it.
					// (One registry holds one set of cluster collectors: node 1's.)
					cfg.Kinds = nil
					return
				}
			}
			nd := nodes[i-offset]
			cfg.Kinds = append(nd.rt.Kinds(), nd.wf.Kind())
			cfg.Metrics = nd.reg
			cfg.OnLeave = func(ctx context.Context) {
				nd.wf.OnLeave(ctx)
				nd.rt.OnLeave(ctx)
			}
		},
	})
	out := make([]*stack, n)
	for i, nd := range nodes {
		// The gateway calls from its own node.
		gwNode := cnodes[i]
		out[i] = nd.serve(tb, db, cnodes[i+offset], gwNode, opts)
	}
	return out
}

// buildNode builds a node's writer and runtimes.
func buildNode(tb testing.TB, db *persistence.DB, opts stackOptions) *nodeParts {
	tb.Helper()
	log := opts.log
	if log == nil {
		log = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	reg := prometheus.NewRegistry()
	// gwTP traces the gateway's node, grainTP the grains' node (the same one
	// unless opts.tracing asks for two).
	var gwTP, grainTP trace.TracerProvider
	if len(opts.tracing) == 2 {
		gwTP, grainTP = opts.tracing[0], opts.tracing[1]
	}
	model := opts.model
	if model == nil {
		model = lm.NewProvider("offline", "kowai-offline", offline.New())
	}

	writer := persistence.NewWriter(db, persistence.WriterOptions{Logger: log, Metrics: reg, Tracing: grainTP})
	writerCtx, stopWriter := context.WithCancel(context.Background())
	writerDone := make(chan error, 1)
	go func() { writerDone <- writer.Run(writerCtx) }()
	tb.Cleanup(func() {
		stopWriter()
		if err := <-writerDone; err != nil {
			tb.Errorf("writer: %v", err)
		}
	})

	supMetrics, err := supervisors.NewMetrics(reg)
	if err != nil {
		tb.Fatal(err)
	}
	var spending *budgets.Enforcer
	if opts.budgets != nil {
		spending = opts.budgets(writer)
		// After the node stops (its cleanup runs first), before the writer does.
		tb.Cleanup(spending.Wait)
	}
	stores := gateway.NewStores(db)
	rt, err := actors.New(actors.Deps{
		Writer:            writer,
		Conversations:     stores.Conversations,
		Messages:          stores.Messages,
		Agents:            stores.Agents,
		Stats:             stores.Stats,
		Snapshots:         persistence.NewSnapshotStore(db),
		LM:                lm.NewTraced(model, grainTP),
		Logger:            log,
		Models:            resolver(opts.models),
		Budgets:           guard(spending),
		Metrics:           reg,
		SupervisorMetrics: supMetrics,
		Tracing:           grainTP,
	})
	if err != nil {
		tb.Fatal(err)
	}
	if err := rt.EnsureBuiltins(tb.Context()); err != nil {
		tb.Fatal(err)
	}
	profiles := persistence.NewProfileStore(db)
	registry := workflows.NewRegistry()
	if err := builtin.Register(registry, builtin.Options{Profiles: profiles}); err != nil {
		tb.Fatal(err)
	}
	if opts.workflows != nil {
		opts.workflows(registry)
	}
	svc := newAuth(tb, db, log)
	// As kowai serve wires it: a run owner's current roles decide premium models.
	premium := actors.PremiumAccessFunc(func(ctx context.Context, userID string) (bool, error) {
		return svc.UserCan(ctx, userID, auth.PermPremiumModels)
	})
	wf, err := actors.NewWorkflows(actors.WorkflowDeps{Runs: persistence.NewWorkflowStore(db), Writer: writer, Registry: registry,
		Model: lm.NewProvider("offline", "kowai-offline", offline.New()), Premium: premium, Logger: log, Metrics: reg,
		RecoveryInterval: 200 * time.Millisecond, Tracing: grainTP})
	if err != nil {
		tb.Fatal(err)
	}
	return &nodeParts{log: log, reg: reg, writer: writer, stores: stores, rt: rt, wf: wf, wfReg: registry, profiles: profiles, gwTP: gwTP,
		spending: spending, auth: svc}
}

// serve starts the node's loops on its cluster node and its gateway, which
// calls grains from gwNode.
func (nd *nodeParts) serve(tb testing.TB, db *persistence.DB, node, gwNode *cluster.Node, opts stackOptions) *stack {
	tb.Helper()
	log, reg, writer, stores, rt, wf, registry, profiles, gwTP := nd.log, nd.reg, nd.writer, nd.stores, nd.rt, nd.wf, nd.wfReg, nd.profiles, nd.gwTP
	grains := node.Client()
	rt.SetCaller(grains)
	wf.SetCaller(grains)
	gwGrains := gwNode.Client()
	wfCtx, stopWF := context.WithCancel(context.Background())
	wfDone := make(chan error, 1)
	go func() { wfDone <- wf.Run(wfCtx) }()
	tb.Cleanup(func() {
		stopWF()
		<-wfDone
	})
	// Schedules and webhook notifications, as kowai serve runs them; webhooks may
	// reach 127.0.0.1 (the tests' receivers).
	schedules, webhooks := persistence.NewWorkflowScheduleStore(db), persistence.NewWebhookStore(db)
	_, loopback, _ := net.ParseCIDR("127.0.0.1/32")
	webhookGuard := netguard.New([]*net.IPNet{loopback})
	scheduler, err := actors.NewScheduler(actors.SchedulerDeps{Schedules: schedules, Caller: grains, Interval: 100 * time.Millisecond, Logger: log})
	if err != nil {
		tb.Fatal(err)
	}
	notifier, err := actors.NewNotifier(actors.NotifierDeps{Webhooks: webhooks, Runs: persistence.NewWorkflowStore(db),
		Client: webhookGuard.Client(5 * time.Second), Secret: testSecret, Interval: 100 * time.Millisecond, Backoff: 50 * time.Millisecond, Logger: log})
	if err != nil {
		tb.Fatal(err)
	}
	loopsCtx, stopLoops := context.WithCancel(context.Background())
	loopsDone := make(chan error, 2)
	go func() { loopsDone <- scheduler.Run(loopsCtx) }()
	go func() { loopsDone <- notifier.Run(loopsCtx) }()
	tb.Cleanup(func() {
		stopLoops()
		<-loopsDone
		<-loopsDone
	})

	svc := nd.auth
	keys, err := auth.NewAPIKeys(auth.APIKeysConfig{Store: gateway.NewAuthAPIKeys(db), Users: svc, Logger: log})
	if err != nil {
		tb.Fatal(err)
	}
	chat := &gateway.ClusterChat{Grains: gwGrains}
	gw, err := gateway.New(gateway.Options{Addr: "127.0.0.1:0", Logger: log, Registry: reg,
		Checks:         []gateway.Check{{Name: "database", Probe: db.Ping}},
		Draining:       gwNode.Draining,
		RequestTimeout: actors.DefaultTurnTimeout + 15*time.Second,
		Tracing:        gwTP,
	})
	if err != nil {
		tb.Fatal(err)
	}
	types := rt.Types()
	if err := gw.Mount(gateway.API{
		Authenticator:     svc,
		Chat:              chat,
		Completions:       chat,
		APIKeys:           keys,
		Auth:              svc,
		Accounts:          svc,
		OpenRegistration:  true,
		Stores:            stores,
		AgentTypes:        rt.AgentTypes,
		ValidateSignature: types.CheckSignature,
		ValidateAgentConfig: func(t string, raw json.RawMessage) error {
			_, err := types.ParseConfig(t, raw)
			return err
		},
		CheckProgram: types.CheckProgram,
		AgentWriter:  &gateway.ClusterAgents{Grains: gwGrains},
		ClusterInfo:  func() any { return node.Info() },
		Models:       catalog(opts.models),
		Budgets:      nd.spending,
		RateLimit:    opts.rateLimit,
		Workflows: &gateway.Workflows{Registry: registry, Runs: persistence.NewWorkflowStore(db),
			Commands: cluster.WorkflowClient{Caller: gwGrains}, Profiles: profiles, EventPoll: 50 * time.Millisecond,
			Schedules: schedules, Webhooks: webhooks, WebhookGuard: webhookGuard},
	}); err != nil {
		tb.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- gw.Run(ctx) }()
	select {
	case <-gw.Ready():
	case err := <-served:
		tb.Fatalf("gateway did not start: %v", err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128, MaxConnsPerHost: 128}}
	tb.Cleanup(func() {
		client.CloseIdleConnections()
		stop()
		if err := <-served; err != nil {
			tb.Errorf("gateway: %v", err)
		}
	})
	return &stack{url: "http://" + gw.Addr().String(), keys: keys, db: db, writer: writer, auth: svc, client: client, reg: reg}
}

// resolver and catalog keep a nil catalog a nil interface.
func resolver(c *lm.Catalog) actors.ModelResolver {
	if c == nil {
		return nil
	}
	return c
}

func guard(b *budgets.Enforcer) actors.BudgetGuard {
	if b == nil {
		return nil
	}
	return b
}

func catalog(c *lm.Catalog) gateway.ModelCatalog {
	if c == nil {
		return nil
	}
	return c
}

// newAuth builds the authentication service as kowai serve does without
// Redis, with cheap password hashing.
func newAuth(tb testing.TB, db *persistence.DB, log *slog.Logger) *auth.Service {
	tb.Helper()
	tokens, err := auth.NewTokens(auth.TokenConfig{Secret: testSecret, Issuer: "kowai", Audience: "kowai"})
	if err != nil {
		tb.Fatal(err)
	}
	hasher, err := auth.NewHasher(auth.TestArgon2Params(), 0)
	if err != nil {
		tb.Fatal(err)
	}
	throttle, err := auth.NewThrottle(auth.ThrottleConfig{Limiter: ratelimit.NewMemory(ratelimit.MemoryOptions{})})
	if err != nil {
		tb.Fatal(err)
	}
	sessions := gateway.NewAuthSessions(db)
	svc, err := auth.NewService(auth.Config{
		Users:       gateway.NewAuthUsers(db),
		Sessions:    sessions,
		Tokens:      tokens,
		Hasher:      hasher,
		Revocations: auth.NewRevocationCache(auth.NewStoreRevocations(sessions, nil), auth.CacheOptions{}),
		Throttle:    throttle,
		Logger:      log,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return svc
}

// reply is a response: its status and body.
type reply struct {
	status int
	body   []byte
}

// call sends method path with an optional bearer token and JSON body.
func (s *stack) call(tb testing.TB, method, path, token, body string) reply {
	tb.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := s.client.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		tb.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return reply{status: res.StatusCode, body: b}
}

// decode checks the status and unmarshals the body into v.
func (r reply) decode(tb testing.TB, status int, v any) {
	tb.Helper()
	if r.status != status {
		tb.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if v != nil {
		if err := json.Unmarshal(r.body, v); err != nil {
			tb.Fatalf("body %s: %v", r.body, err)
		}
	}
}
