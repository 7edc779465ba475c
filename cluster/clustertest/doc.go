// Package clustertest starts in-process kowai clusters on loopback for tests, and holds
// the tests of package cluster that need a running cluster.
//
// The actor library has data races of its own, so this package, and any package whose
// tests start nodes, must run without -race.
//
// # Starting a cluster
//
//	nodes := clustertest.Start(t, clustertest.Options{
//		Provider: cluster.ProviderAutomanaged, // or ProviderLocal (default), ProviderEtcd
//		Nodes:    3,
//		Kinds:    func() []*pcluster.Kind { return []*pcluster.Kind{sessionKind} },
//	})
//	reply, err := actorpb.As[*mypb.Reply](nodes[0].Client().Call(ctx, "session", "c1", req))
//
// Start waits until every node sees all the others and stops them gracefully in
// t.Cleanup. Nodes of any provider but local talk over mutual TLS: Start makes a CA and
// a node certificate for them unless Options.TLS is given. NewCerts writes such a pair
// to t.TempDir() for nodes in other processes (Certs.Env) and in this one (Certs.TLS). With ProviderEtcd and no endpoints it starts an etcd server (StartEtcd):
// a missing etcd binary fails the test when CI=true and skips it loudly otherwise.
//
// # The echo grain
//
// NewEchoKind is a grain kind that answers testpb.EchoRequest with where and how it ran
// (node, identity, headers, requests served), after an optional delay that does not
// block its mailbox, or with a requested actorpb.ErrorReply.
//
// # Nodes in other processes
//
// BuildBinary builds a main package (testdata/node runs one echo node configured from
// KOWAI_CLUSTER_* variables, like `kowai serve`); StartProcess runs it, Process.Kill is a
// kill -9 and Process.Terminate a SIGTERM that returns the exit code.
//
// Set KOWAI_TEST_CLUSTER_LOG=debug to see the nodes' and the library's logs.
package clustertest
