package archtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

type compose struct {
	Services map[string]struct {
		Image       string         `yaml:"image"`
		Ports       []string       `yaml:"ports"`
		Volumes     []string       `yaml:"volumes"`
		Healthcheck map[string]any `yaml:"healthcheck"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

// TestDockerCompose checks docker-compose.yml without a Docker engine: the
// MariaDB and Redis services exist, publish only on 127.0.0.1, keep data in
// named volumes and have health checks.
func TestDockerCompose(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c compose
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("docker-compose.yml does not parse: %v", err)
	}
	for name, port := range map[string]string{"mariadb": "3306", "redis": "6379"} {
		s, ok := c.Services[name]
		if !ok {
			t.Errorf("service %s missing", name)
			continue
		}
		if s.Image == "" || !strings.HasPrefix(s.Image, name) {
			t.Errorf("%s: image %q", name, s.Image)
		}
		if len(s.Ports) == 0 {
			t.Errorf("%s: no ports", name)
		}
		for _, p := range s.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") || !strings.HasSuffix(p, ":"+port) {
				t.Errorf("%s: port %q must be bound to 127.0.0.1 and map %s", name, p, port)
			}
		}
		if s.Healthcheck["test"] == nil {
			t.Errorf("%s: no health check", name)
		}
		if len(s.Volumes) == 0 {
			t.Errorf("%s: no volume", name)
		}
		for _, v := range s.Volumes {
			vol, _, _ := strings.Cut(v, ":")
			if _, named := c.Volumes[vol]; !named {
				t.Errorf("%s: volume %q is not a named volume", name, vol)
			}
		}
	}
}
