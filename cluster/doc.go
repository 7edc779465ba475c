// Package cluster runs kowai's grains on a protoactor-go cluster: node bootstrap,
// membership providers, the typed grain client, the membership watchdog and the graceful
// leave. It is the only package that imports the actor library's cluster code, so that
// a patched fork can be swapped in here alone.
//
// # Nodes
//
// A Node is one member. New validates a Config; Start binds the remoting listener (Addr,
// default 127.0.0.1:0) and joins; Run watches membership until its context ends and then
// leaves gracefully; Stop leaves gracefully on its own.
//
//	tlsMaterial, err := cluster.LoadTLS("ca.crt", "node.crt", "node.key")
//	if err != nil { ... }
//	node, err := cluster.New(cluster.Config{
//		Provider: cluster.ProviderAutomanaged,
//		TLS:      tlsMaterial,
//		Addr:     "127.0.0.1:7001",
//		MembershipAddr: "127.0.0.1:6331",
//		Peers:    []string{"127.0.0.1:6331", "127.0.0.1:6332", "127.0.0.1:6333"},
//		Kinds:    []*pcluster.Kind{sessionKind, agentKind},
//		Logger:   log,
//		Metrics:  registry,
//	})
//	if err != nil { ... }
//	err = node.Run(ctx) // nil after a graceful leave; ErrBlocked / ErrNotMember: exit 1
//
// # Providers
//
//   - local: one node, or several in one process sharing a LocalGroup (tests). The default.
//   - automanaged: every node serves GET /_health on MembershipAddr and polls Peers (every
//     node's MembershipAddr, its own included) each second. The protocol is the library's
//     automanaged provider's, but the provider is this package's own (membership.go): the
//     library's binds 0.0.0.0 and its HTTP client is fixed to plaintext, so it could not
//     be served over mutual TLS. This one binds exactly MembershipAddr, refuses a wildcard
//     host, and speaks HTTPS with client certificates when Config.TLS is set.
//   - etcd: members are keys under /kowai/<Name>/ with a 3 s lease; EtcdEndpoints lists
//     the client endpoints. The provider is this package's own (cluster/etcdprovider): the
//     library's reads the member keys and then starts its watch without a start
//     revision, so a member registering in between is never seen by it, and nodes
//     started together can disagree about the members until the next change. This one
//     watches from the revision it read, reads again when a watch ends (compaction, lost
//     etcd leader), and revokes the lease on leave so the key goes at once. When the lease
//     expires under a running node (paused or cut off from etcd beyond the TTL), the
//     others have dropped and blocked its ID: the key is not written again, the node drops
//     out of its own member list and the watchdog restarts it with a new ID. Keys and
//     values are the library provider's, so nodes running either agree during a rolling
//     upgrade.
//   - k8s: members are the pods labelled with the cluster name, found through the
//     Kubernetes API with the pod's in-cluster service account, which needs get, list,
//     watch and patch on pods in its namespace (the provider labels each pod with its
//     cluster name and kinds). Addr must be the pod's IP (e.g. from the downward API:
//     KOWAI_CLUSTER_ADDR=$(POD_IP):7090). The provider is compiled in only with
//     -tags k8s (make build-k8s), since the Kubernetes client adds about 30 MB to the
//     binary; without the tag, ProviderK8s is refused with ErrConfig.
//
// Identity lookup is disthash: the owner of a grain is a rendezvous hash of its identity
// over the members hosting its kind, so grains move when members join or leave.
//
// # Mutual TLS
//
// Grain messages carry the caller's identity, so remoting between nodes must be
// authenticated. With Config.TLS (LoadTLS: the cluster CA, this node's certificate and
// key), actor remoting (gRPC) and the automanaged membership endpoint accept TLS 1.3
// only, require a client certificate that chains to the CA (RequireAndVerifyClientCert),
// and present the node's certificate when dialing, verifying the peer against the CA and
// the host dialed. Refused handshakes are logged. Every provider but local needs TLS;
// New refuses one without it (ErrInsecure) unless Config.Insecure is set, and then logs a
// warning. LoadTLS refuses a certificate that does not chain to the CA or has expired.
// The material is read once: rotate by restarting each node with new files signed by
// the same CA (a CA file may hold several CAs, to move to a new CA node by node). The
// etcd client connection is not covered.
//
// # Calling grains
//
// Client.Call sends a protobuf request to kind/identity and returns the reply. Each call
// is sent once (the library's retries would re-send a request with side effects), is
// bounded by RequestTimeout or the caller's deadline, whichever is earlier, and returns
// at once when the caller's context is cancelled. The correlation ID and idempotency
// key set on the context with clusterpb.WithCorrelationID and
// clusterpb.WithIdempotencyKey travel as message headers (clusterpb.HeaderCorrelationID,
// clusterpb.HeaderIdempotencyKey). With tracing on (Config.Tracing) each call is a
// client span whose W3C trace context travels as the traceparent and tracestate
// headers, and the grain's node wraps the request in a server span, its child, before
// the grain sees it.
//
// Only generated protobuf messages are sent: anything else would be dropped silently by
// a remote node, so it is refused with ErrNotProtobuf before sending.
//
// A grain reports a refusal or failure by answering with an actorpb.ErrorReply, the one
// error protocol of kowai's grains. The client hands it back as the reply (counting it
// as refused) and actorpb.As turns it into an *actorpb.Error that matches
// actorpb.ErrForbidden, actorpb.ErrBusy, ... with errors.Is, while checking the type of
// any other reply:
//
//	res, err := actorpb.As[*actorpb.TurnResult](client.Call(ctx, "session", convID, req))
//
// Transport failures are ErrTimeout and ErrUnavailable.
//
// # For grain authors (package actors)
//
// Package actors must not import this package. It declares the caller it needs, with
// the same method set as GrainCaller, and receives a *Client:
//
//	type GrainCaller interface {
//		Call(ctx context.Context, kind, identity string, req proto.Message) (proto.Message, error)
//	}
//
// It may import cluster/clusterpb, the message headers, which depends on nothing of
// kowai's but internal/logging. A grain reads the request's headers with
// clusterpb.ContextFromHeader(ctx, actorCtx.MessageHeader()) and answers failures with
// actorpb.NewError(code, correlationID, message).
//
// # Membership watchdog
//
// Run checks every WatchdogInterval whether the node's member ID is blocked, or missing
// from its own member list. Once either has lasted longer than WatchdogGrace, Run logs
// "cluster membership lost", shuts the node down without the graceful steps, and returns
// ErrBlocked or ErrNotMember. A blocked ID is never let back in, so the process must exit
// non-zero and be restarted, which draws a new ID. The watchdog sees what this node's
// library sees: a node that the others blocked while it was partitioned, and that never
// hears of it, still counts itself a member.
//
// # Graceful leave
//
// When Run's context ends (SIGTERM) or Stop is called, the node:
//
//  1. sets Draining, which readiness checks and the gateway read to stop taking work;
//  2. waits for grain calls in flight through its Client (up to LeaveTimeout);
//  3. runs Config.OnLeave, where the actors layer passivates its grains with snapshots;
//  4. poisons the grains still alive here: each finishes the messages already queued,
//     gets *actor.Stopping (save the final snapshot there) and stops;
//  5. leaves the cluster (the library takes about 3 s), after which other members
//     activate the moved grains on demand.
//
// # Observability
//
// Info returns the members, this node and its live activations per kind, for
// GET /api/v1/admin/cluster. Metrics: kowai_cluster_members (updated by Run),
// kowai_actor_activations_total{kind}, kowai_grain_requests_total{kind,outcome} with
// outcome ok, refused (the grain answered with an actorpb.ErrorReply), timeout,
// unavailable, canceled or invalid, and
// kowai_grain_request_duration_seconds{kind}.
//
// # Testing
//
// The library has data races of its own, so tests that start a node live in package
// cluster/clustertest, which runs without the race detector; clustertest.Start starts N
// in-process nodes for other packages' tests too, with certificates from a test CA
// (clustertest.NewCerts) for every provider but local.
package cluster
