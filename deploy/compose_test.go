package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

type composeService struct {
	Profiles    []string          `yaml:"profiles"`
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Volumes     []string          `yaml:"volumes"`
	ReadOnly    bool              `yaml:"read_only"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
}

// loadCompose reads docker-compose.yml with its anchors and merge keys
// resolved (yaml.v3 applies "<<").
func loadCompose(t *testing.T) map[string]composeService {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services map[string]yaml.Node `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("docker-compose.yml does not parse: %v", err)
	}
	out := map[string]composeService{}
	for name, node := range doc.Services {
		var s composeService
		// depends_on is a list for some services and a map for others.
		var generic map[string]any
		if err := node.Decode(&generic); err != nil {
			t.Fatalf("service %s: %v", name, err)
		}
		if list, ok := generic["depends_on"].([]any); ok {
			m := map[string]any{}
			for _, d := range list {
				m[d.(string)] = map[string]any{"condition": "service_started"}
			}
			generic["depends_on"] = m
		}
		b, err := yaml.Marshal(generic)
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(b, &s); err != nil {
			t.Fatalf("service %s: %v", name, err)
		}
		out[name] = s
	}
	return out
}

// The compose file's cluster profile: three kowai nodes from the
// repository's image on the etcd provider with mutual TLS, migrated first,
// behind nginx, scraped by Prometheus on their metrics port, and Grafana;
// every file it mounts exists (deploy/certs is made by `kowai cert`), and the
// default profile is still MariaDB and Redis alone.
func TestComposeClusterProfile(t *testing.T) {
	services := loadCompose(t)
	var defaults []string
	for name, s := range services {
		if len(s.Profiles) == 0 {
			defaults = append(defaults, name)
		} else if !slices.Equal(s.Profiles, []string{"cluster"}) {
			t.Errorf("%s: profiles %v, want [cluster]", name, s.Profiles)
		}
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if !strings.HasPrefix(src, "./") {
				continue
			}
			if src == "./deploy/certs" {
				continue // written by kowai cert (README), never committed
			}
			if _, err := os.Stat(filepath.Join("..", src)); err != nil {
				t.Errorf("%s mounts %s: %v", name, src, err)
			}
		}
		for _, p := range s.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("%s publishes %s beyond the host's loopback", name, p)
			}
		}
	}
	slices.Sort(defaults)
	if !slices.Equal(defaults, []string{"mariadb", "redis"}) {
		t.Errorf("the default profile runs %v, want MariaDB and Redis only", defaults)
	}
	for _, name := range []string{"etcd", "migrate", "kowai-1", "kowai-2", "kowai-3", "nginx", "prometheus", "grafana", "jaeger"} {
		if _, ok := services[name]; !ok {
			t.Errorf("service %s missing from the cluster profile", name)
		}
	}

	nodes := []string{"kowai-1", "kowai-2", "kowai-3"}
	addrs := map[string]bool{}
	for _, name := range nodes {
		s := services[name]
		if s.Build != "." || s.Image != "kowai:dev" {
			t.Errorf("%s: build %v image %s; want the repository's Dockerfile", name, s.Build, s.Image)
		}
		if !s.ReadOnly {
			t.Errorf("%s: the root filesystem must be read-only", name)
		}
		if len(s.Ports) > 0 {
			t.Errorf("%s publishes ports; clients go through nginx", name)
		}
		env := s.Environment
		if env["OTEL_EXPORTER_OTLP_ENDPOINT"] != "http://jaeger:4318" {
			t.Errorf("%s: OTEL_EXPORTER_OTLP_ENDPOINT=%q, want the jaeger service's OTLP/HTTP port", name, env["OTEL_EXPORTER_OTLP_ENDPOINT"])
		}
		if env["KOWAI_CLUSTER_PROVIDER"] != "etcd" || env["KOWAI_ETCD_ENDPOINTS"] != "etcd:2379" {
			t.Errorf("%s: provider %q at %q, want etcd at etcd:2379", name, env["KOWAI_CLUSTER_PROVIDER"], env["KOWAI_ETCD_ENDPOINTS"])
		}
		if _, insecure := env["KOWAI_CLUSTER_INSECURE"]; insecure {
			t.Errorf("%s: KOWAI_CLUSTER_INSECURE; the compose cluster uses mutual TLS", name)
		}
		for _, v := range []string{"KOWAI_CLUSTER_TLS_CA", "KOWAI_CLUSTER_TLS_CERT", "KOWAI_CLUSTER_TLS_KEY"} {
			if !strings.HasPrefix(env[v], "/etc/kowai/tls/") {
				t.Errorf("%s: %s=%q, want a file in the mounted /etc/kowai/tls", name, v, env[v])
			}
		}
		if !strings.Contains(env["KOWAI_CLUSTER_TLS_CERT"], name) {
			t.Errorf("%s uses another node's certificate %s", name, env["KOWAI_CLUSTER_TLS_CERT"])
		}
		if !slices.Contains(s.Volumes, "./deploy/certs:/etc/kowai/tls:ro") {
			t.Errorf("%s does not mount deploy/certs read-only", name)
		}
		if addr := env["KOWAI_CLUSTER_ADDR"]; addr != name+":7000" || addrs[addr] {
			t.Errorf("%s: KOWAI_CLUSTER_ADDR=%q, want %s:7000", name, addr, name)
		}
		addrs[env["KOWAI_CLUSTER_ADDR"]] = true
		if !strings.HasPrefix(env["KOWAI_DATABASE_URL"], "mysql://") {
			t.Errorf("%s: the nodes must share MariaDB", name)
		}
		if s.DependsOn["migrate"].Condition != "service_completed_successfully" {
			t.Errorf("%s must start after the migration completed", name)
		}
	}
	if m := services["migrate"]; !slices.Equal(m.Command, []string{"migrate", "up"}) || m.Image != "kowai:dev" {
		t.Errorf("migrate runs %v on %s", m.Command, m.Image)
	}
	if n := services["nginx"]; !slices.Contains(n.Volumes, "./deploy/nginx/kowai.conf:/etc/nginx/conf.d/default.conf:ro") || !slices.Equal(n.Ports, []string{"127.0.0.1:8080:8080"}) {
		t.Errorf("nginx: volumes %v ports %v", n.Volumes, n.Ports)
	}

	// nginx's upstreams and Prometheus' targets are the nodes: the gateway
	// port and the metrics port.
	conf, err := os.ReadFile(filepath.Join("nginx", "kowai.conf"))
	if err != nil {
		t.Fatal(err)
	}
	var upstreams []string
	for _, m := range regexp.MustCompile(`(?m)^\s*server\s+([\w.-]+):(\d+)`).FindAllStringSubmatch(string(conf), -1) {
		upstreams = append(upstreams, m[1]+":"+m[2])
	}
	if want := []string{"kowai-1:8080", "kowai-2:8080", "kowai-3:8080"}; !slices.Equal(upstreams, want) {
		t.Errorf("nginx upstreams %v, want %v", upstreams, want)
	}
	var prom struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	raw, err := os.ReadFile(filepath.Join("prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &prom); err != nil {
		t.Fatal(err)
	}
	if len(prom.ScrapeConfigs) != 1 || prom.ScrapeConfigs[0].JobName != "kowai" || len(prom.ScrapeConfigs[0].StaticConfigs) != 1 {
		t.Fatalf("want one scrape job kowai (the alerts select job=\"kowai\"): %+v", prom.ScrapeConfigs)
	}
	if got, want := prom.ScrapeConfigs[0].StaticConfigs[0].Targets, []string{"kowai-1:9090", "kowai-2:9090", "kowai-3:9090"}; !slices.Equal(got, want) {
		t.Errorf("Prometheus scrapes %v, want every node's metrics port %v", got, want)
	}
	if !slices.Equal(prom.RuleFiles, []string{"/etc/prometheus/alerts.yml"}) || !slices.Contains(services["prometheus"].Volumes, "./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro") {
		t.Errorf("Prometheus does not load the mounted alert rules: %v", prom.RuleFiles)
	}
	ignore, err := os.ReadFile(filepath.Join("..", ".gitignore"))
	if err != nil || !strings.Contains(string(ignore), "/deploy/certs/") {
		t.Error(".gitignore must keep deploy/certs (private keys) out of the repository")
	}
}
