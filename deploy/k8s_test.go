//go:build k8s

package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// render runs kustomize on dir (relative to deploy/k8s) and decodes every
// object strictly with the Kubernetes scheme: an unknown or duplicated field,
// or a kind the scheme does not know, fails the test.
func render(t *testing.T, dir string) []runtime.Object {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resources, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join("k8s", dir))
	if err != nil {
		t.Fatalf("kustomize %s: %v", dir, err)
	}
	strict := kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
		kjson.SerializerOptions{Yaml: false, Strict: true})
	var out []runtime.Object
	for _, r := range resources.Resources() {
		raw, err := r.MarshalJSON()
		if err != nil {
			t.Fatalf("%s: %s: %v", dir, r.CurId(), err)
		}
		obj, _, err := strict.Decode(raw, nil, nil)
		if err != nil {
			t.Errorf("%s: %s does not decode strictly: %v", dir, r.CurId(), err)
			continue
		}
		out = append(out, obj)
	}
	return out
}

func only[T runtime.Object](t *testing.T, objs []runtime.Object) T {
	t.Helper()
	var found []T
	for _, o := range objs {
		if v, ok := o.(T); ok {
			found = append(found, v)
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("want one %T, found %d", zero, len(found))
	}
	return found[0]
}

// providerPodVerbs reads the Kubernetes provider's source in the module
// cache and returns the verbs it uses on pods (CoreV1().Pods(ns).Get -> get).
func providerPodVerbs(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-tags", "k8s", "-f", "{{.Dir}}", "github.com/asynkron/protoactor-go/cluster/clusterproviders/k8s").Output()
	if err != nil {
		t.Fatalf("locate the Kubernetes provider: %v", err)
	}
	dir := strings.TrimSpace(string(out))
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	call := regexp.MustCompile(`CoreV1\(\)\.(\w+)\(.*?\)\.(\w+)\(`)
	verbs := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range call.FindAllStringSubmatch(string(src), -1) {
			if m[1] != "Pods" {
				t.Errorf("the provider calls %s on %s: the Role grants only pods", m[2], m[1])
			}
			verbs[strings.ToLower(m[2])] = true
		}
	}
	var list []string
	for v := range verbs {
		list = append(list, v)
	}
	slices.Sort(list)
	return list
}

func envOf(c corev1.Container) map[string]corev1.EnvVar {
	m := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		m[e.Name] = e
	}
	return m
}

// hardened fails unless c runs without privileges on a read-only root with
// every capability dropped, and has CPU and memory requests and limits.
func hardened(t *testing.T, what string, pod corev1.PodSpec, c corev1.Container) {
	t.Helper()
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("%s: the pod must run as a non-root UID (runAsNonRoot, runAsUser)", what)
	}
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: seccompProfile RuntimeDefault missing", what)
	}
	sc := c.SecurityContext
	switch {
	case sc == nil:
		t.Errorf("%s: container %s has no securityContext", what, c.Name)
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Errorf("%s: container %s: readOnlyRootFilesystem must be true", what, c.Name)
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Errorf("%s: container %s: allowPrivilegeEscalation must be false", what, c.Name)
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
		t.Errorf("%s: container %s must drop ALL capabilities and add none", what, c.Name)
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[r]; !ok {
			t.Errorf("%s: container %s has no %s request", what, c.Name, r)
		}
		if _, ok := c.Resources.Limits[r]; !ok {
			t.Errorf("%s: container %s has no %s limit", what, c.Name, r)
		}
	}
	for name, e := range envOf(c) {
		if strings.Contains(strings.ToLower(name), "secret") || strings.Contains(name, "DATABASE_URL") || strings.HasSuffix(name, "API_KEY") {
			if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				t.Errorf("%s: %s must come from a Secret by reference", what, name)
			}
		}
	}
}

func TestK8sKustomization(t *testing.T) {
	for _, dir := range []string{"base", "overlays/example"} {
		t.Run(dir, func(t *testing.T) {
			objs := render(t, dir)
			dep := only[*appsv1.Deployment](t, objs)
			if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 3 {
				t.Errorf("replicas %v, want 3", dep.Spec.Replicas)
			}
			pod := dep.Spec.Template.Spec
			if len(pod.Containers) != 1 {
				t.Fatalf("want one container, got %d", len(pod.Containers))
			}
			c := pod.Containers[0]
			hardened(t, "Deployment", pod, c)
			env := envOf(c)
			if env["KOWAI_CLUSTER_PROVIDER"].Value != "k8s" {
				t.Errorf("KOWAI_CLUSTER_PROVIDER=%q, want k8s", env["KOWAI_CLUSTER_PROVIDER"].Value)
			}
			if env["KOWAI_AUTO_MIGRATE"].Value != "false" {
				t.Error("nodes must not migrate on start: the kowai-migrate Job does, before the rollout")
			}
			for _, v := range []string{"KOWAI_CLUSTER_TLS_CA", "KOWAI_CLUSTER_TLS_CERT", "KOWAI_CLUSTER_TLS_KEY"} {
				if env[v].Value == "" {
					t.Errorf("%s not set: remoting between pods needs mutual TLS", v)
				}
			}
			if _, insecure := env["KOWAI_CLUSTER_INSECURE"]; insecure {
				t.Error("KOWAI_CLUSTER_INSECURE is set")
			}

			// Probes on the health routes.
			for name, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
				want := "/health/live"
				if name == "readiness" {
					want = "/health/ready"
				}
				if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != want {
					t.Errorf("%s probe: want an HTTP GET of %s", name, want)
				}
			}
			// The grace period covers the drain: the readiness grace, a
			// turn in flight (the gateway's request timeout) and the leave.
			drain, err := time.ParseDuration(env["KOWAI_DRAIN_GRACE"].Value)
			if err != nil {
				t.Errorf("KOWAI_DRAIN_GRACE: %v", err)
			}
			if drain < 5*time.Second {
				t.Errorf("KOWAI_DRAIN_GRACE=%s: endpoints take a few seconds to drop a pod; want at least 5s", drain)
			}
			// No preStop hook: the image has no shell (an exec of sh or sleep
			// fails, and a failed hook is only logged while the pod is killed
			// all the same), and KOWAI_DRAIN_GRACE already does the preStop
			// sleep's work in process: SIGTERM arrives when the pod starts
			// terminating, exactly when the endpoints controller starts
			// dropping it, and the node keeps serving meanwhile. A hook would
			// only add its own wait to the same grace period.
			if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
				t.Errorf("container %s has a preStop hook %+v; the drain grace is in process (KOWAI_DRAIN_GRACE)", c.Name, c.Lifecycle.PreStop)
			}
			need := drain + 2*time.Minute + 15*time.Second + 15*time.Second
			if g := pod.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second < need {
				t.Errorf("terminationGracePeriodSeconds %v: the drain sequence needs %s", g, need)
			}
			if a := pod.Affinity; a == nil || a.PodAntiAffinity == nil || len(a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution)+len(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) == 0 {
				t.Error("no pod anti-affinity")
			}
			if len(pod.TopologySpreadConstraints) == 0 {
				t.Error("no topology spread constraint")
			}
			var tlsSecret bool
			for _, v := range pod.Volumes {
				tlsSecret = tlsSecret || (v.Secret != nil && v.Secret.SecretName != "")
			}
			if !tlsSecret {
				t.Error("the cluster TLS certificates must be mounted from a Secret")
			}
			ports := map[string]int32{}
			for _, p := range c.Ports {
				ports[p.Name] = p.ContainerPort
			}

			// The Role grants exactly what the provider calls.
			sa := only[*corev1.ServiceAccount](t, objs)
			if pod.ServiceAccountName != sa.Name {
				t.Errorf("the pods run as %q, not the ServiceAccount %q", pod.ServiceAccountName, sa.Name)
			}
			role := only[*rbacv1.Role](t, objs)
			binding := only[*rbacv1.RoleBinding](t, objs)
			if binding.RoleRef.Name != role.Name || len(binding.Subjects) != 1 || binding.Subjects[0].Name != sa.Name {
				t.Errorf("the RoleBinding does not bind Role %s to ServiceAccount %s", role.Name, sa.Name)
			}
			if len(role.Rules) != 1 || !slices.Equal(role.Rules[0].Resources, []string{"pods"}) || !slices.Equal(role.Rules[0].APIGroups, []string{""}) {
				t.Fatalf("want one rule on core pods, got %+v", role.Rules)
			}
			verbs := slices.Clone(role.Rules[0].Verbs)
			slices.Sort(verbs)
			if want := providerPodVerbs(t); !slices.Equal(verbs, want) {
				t.Errorf("the Role grants %v on pods; the provider calls %v", verbs, want)
			}

			// Services: the gateway, and a headless one for remoting.
			var http, remoting *corev1.Service
			for _, o := range objs {
				if s, ok := o.(*corev1.Service); ok {
					if s.Spec.ClusterIP == corev1.ClusterIPNone {
						remoting = s
					} else {
						http = s
					}
				}
			}
			if http == nil || len(http.Spec.Ports) != 1 || http.Spec.Ports[0].TargetPort.String() != "http" {
				t.Error("want a Service exposing only the http port")
			}
			if remoting == nil || len(remoting.Spec.Ports) != 1 || remoting.Spec.Ports[0].TargetPort.String() != "remoting" {
				t.Error("want a headless Service for the remoting port")
			}
			for _, s := range []*corev1.Service{http, remoting} {
				if s != nil && !selects(s.Spec.Selector, dep.Spec.Template.Labels) {
					t.Errorf("Service %s does not select the kowai pods", s.Name)
				}
			}

			pdb := only[*policyv1.PodDisruptionBudget](t, objs)
			if pdb.Spec.Selector == nil || !selects(pdb.Spec.Selector.MatchLabels, dep.Spec.Template.Labels) {
				t.Error("the PodDisruptionBudget does not select the kowai pods")
			}
			hpa := only[*autoscalingv2.HorizontalPodAutoscaler](t, objs)
			if hpa.Spec.ScaleTargetRef.Kind != "Deployment" || hpa.Spec.ScaleTargetRef.Name != dep.Name || hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas < 3 {
				t.Errorf("the HorizontalPodAutoscaler must scale Deployment %s from at least 3", dep.Name)
			}

			// NetworkPolicy: the gateway port from anywhere, remoting only
			// from kowai pods, nothing else without a source.
			np := only[*networkingv1.NetworkPolicy](t, objs)
			if !selects(np.Spec.PodSelector.MatchLabels, dep.Spec.Template.Labels) {
				t.Error("the NetworkPolicy does not select the kowai pods")
			}
			for _, rule := range np.Spec.Ingress {
				for _, p := range rule.Ports {
					port := p.Port.IntVal
					switch {
					case port == ports["http"]:
					case len(rule.From) == 0:
						t.Errorf("port %d is open to everyone; only the gateway port may be", port)
					case port == ports["remoting"]:
						for _, f := range rule.From {
							if f.PodSelector == nil || f.NamespaceSelector != nil || !selects(f.PodSelector.MatchLabels, dep.Spec.Template.Labels) {
								t.Errorf("remoting is reachable from %+v; only from kowai pods", f)
							}
						}
					}
				}
			}
		})
	}
}

func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// The migration Job runs kowai migrate up with the overlay's image, hardened
// like the nodes.
func TestK8sMigrationJob(t *testing.T) {
	app := only[*appsv1.Deployment](t, render(t, "overlays/example"))
	objs := render(t, "overlays/example/migrate")
	job := only[*batchv1.Job](t, objs)
	pod := job.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	hardened(t, "Job", pod, c)
	if !slices.Equal(c.Args, []string{"migrate", "up"}) {
		t.Errorf("the Job runs %v, want migrate up", c.Args)
	}
	if c.Image != app.Spec.Template.Spec.Containers[0].Image {
		t.Errorf("the Job runs image %s, the rollout %s", c.Image, app.Spec.Template.Spec.Containers[0].Image)
	}
	if job.Namespace != app.Namespace || job.Namespace == "" {
		t.Errorf("the Job runs in namespace %q, the nodes in %q", job.Namespace, app.Namespace)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("the migration needs no Kubernetes API token")
	}
	if pod.RestartPolicy != corev1.RestartPolicyNever && pod.RestartPolicy != corev1.RestartPolicyOnFailure {
		t.Errorf("restartPolicy %s", pod.RestartPolicy)
	}
}

// A field the Kubernetes API does not know fails the strict decoding (so a
// typo in a manifest cannot pass silently).
func TestK8sStrictDecodingRefusesUnknownFields(t *testing.T) {
	strict := kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme.Scheme, scheme.Scheme, kjson.SerializerOptions{Strict: true})
	raw, err := json.Marshal(map[string]any{
		"apiVersion": "v1", "kind": "Service", "metadata": map[string]any{"name": "x"},
		"spec": map[string]any{"ports": []any{map[string]any{"port": 80}}, "clusterIp": "None"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := strict.Decode(raw, nil, nil); err == nil || !strings.Contains(err.Error(), "clusterIp") {
		t.Fatalf("a misspelt field decoded: %v", err)
	}
}
