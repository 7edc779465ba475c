// Command node runs one cluster node hosting the echo grain, configured from the
// environment like `kowai serve`, for clustertest's multi-process tests.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	pcluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/kowai/kowai/cluster"
	"github.com/kowai/kowai/cluster/clustertest"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var tlsConfig *cluster.TLS
	if ca := os.Getenv("KOWAI_CLUSTER_TLS_CA"); ca != "" {
		t, err := cluster.LoadTLS(ca, os.Getenv("KOWAI_CLUSTER_TLS_CERT"), os.Getenv("KOWAI_CLUSTER_TLS_KEY"))
		if err != nil {
			log.Error("bad cluster TLS configuration", "error", err)
			os.Exit(2)
		}
		tlsConfig = t
	}
	node, err := cluster.New(cluster.Config{
		Name:           "kowai-test",
		Provider:       cluster.Provider(os.Getenv("KOWAI_CLUSTER_PROVIDER")),
		Addr:           os.Getenv("KOWAI_CLUSTER_ADDR"),
		Peers:          split(os.Getenv("KOWAI_CLUSTER_PEERS")),
		MembershipAddr: os.Getenv("KOWAI_CLUSTER_MEMBERSHIP_ADDR"),
		EtcdEndpoints:  split(os.Getenv("KOWAI_ETCD_ENDPOINTS")),
		Kinds:          []*pcluster.Kind{clustertest.NewEchoKind()},
		Logger:         log,
		TLS:            tlsConfig,
		Insecure:       os.Getenv("KOWAI_CLUSTER_INSECURE") == "true",
	})
	if err != nil {
		log.Error("bad cluster configuration", "error", err)
		os.Exit(2)
	}
	if err := node.Run(ctx); err != nil {
		log.Error("node failed", "error", err)
		os.Exit(1)
	}
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}
