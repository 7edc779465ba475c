//go:build !k8s

package cluster

import (
	"fmt"

	"github.com/asynkron/protoactor-go/cluster"
)

// k8sBuiltIn reports whether this binary has the Kubernetes provider. It is
// left out by default because the Kubernetes client adds about 30 MB to the
// binary; build with -tags k8s (make build-k8s) to include it.
const k8sBuiltIn = false

func k8sProvider() (cluster.ClusterProvider, error) {
	return nil, fmt.Errorf("%w: Provider %q needs a binary built with -tags k8s (make build-k8s)", ErrConfig, ProviderK8s)
}
