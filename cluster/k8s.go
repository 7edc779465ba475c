//go:build k8s

package cluster

import (
	"fmt"

	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/k8s"
)

// k8sBuiltIn reports whether this binary has the Kubernetes provider.
const k8sBuiltIn = true

// k8sProvider discovers members through the Kubernetes API with the pod's
// in-cluster service account. The pod needs get, list, watch and patch on
// pods in its namespace; the provider labels each pod with the cluster name
// and its kinds, and every pod with the same cluster name is a member.
func k8sProvider() (cluster.ClusterProvider, error) {
	p, err := k8s.New()
	if err != nil {
		return nil, fmt.Errorf("kubernetes provider (is this a pod with a service account?): %w", err)
	}
	return p, nil
}
