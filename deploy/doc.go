// Package deploy holds kowai's operations artifacts and the tests that check
// them on a machine without a container engine or a Kubernetes cluster. It
// has no code of its own.
//
// # Artifacts
//
//	../Dockerfile, ../.dockerignore   the image (multi-stage, distroless, non-root)
//	../docker-compose.yml             MariaDB and Redis; with --profile cluster, three
//	                                  nodes, etcd, nginx, Prometheus, Grafana and Jaeger
//	nginx/kowai.conf                  the load balancer in front of the nodes
//	k8s/base, k8s/overlays/example    a kustomize base and an example overlay
//	prometheus/                       scrape configuration and alert rules
//	grafana/                          the kowai dashboard and its provisioning
//
// # Checks
//
// The Dockerfile is parsed and its stage layout, user, health check and
// version stamping asserted, and the build context it sees (after
// .dockerignore) is compiled with its build command. The compose file is
// parsed and every file it mounts must exist. nginx (Debian's package) checks
// the configuration and runs it in front of three `kowai serve` processes.
// Every metric the dashboard and the alert rules name must exist on a node's
// /metrics after a few turns and a workflow run, and the rules parse with
// Prometheus' own parser. A node started with OTEL_EXPORTER_OTLP_ENDPOINT must
// export a chat turn's spans, as one trace, to an in-process OTLP/HTTP receiver.
// Behind the k8s build tag, the kustomization is rendered and every object
// decoded strictly with the Kubernetes scheme; a preStop hook is refused (the
// drain grace is in process).
package deploy
