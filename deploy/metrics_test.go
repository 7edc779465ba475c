package deploy

import (
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/kowai/kowai/signatures/lm/lmtest"
)

// grafanaVars stand in for the variables Grafana substitutes before a query
// reaches Prometheus.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h", "$instance", ".*")

// metricNames parses a PromQL expression and returns the metric names its
// selectors name.
func metricNames(t *testing.T, where, expr string) []string {
	t.Helper()
	e, err := parser.ParseExpr(grafanaVars.Replace(expr))
	if err != nil {
		t.Errorf("%s: %q does not parse: %v", where, expr, err)
		return nil
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			if vs.Name == "" {
				t.Errorf("%s: a selector without a metric name: %s", where, vs)
			}
			names = append(names, vs.Name)
		}
		return nil
	})
	if len(names) == 0 {
		t.Errorf("%s: %q names no metric", where, expr)
	}
	return names
}

// ruleMetrics parses the alert rules with Prometheus' rule parser and returns
// the metrics each rule names, by rule.
func ruleMetrics(t *testing.T) map[string][]string {
	t.Helper()
	groups, errs := rulefmt.ParseFile(filepath.Join("prometheus", "alerts.yml"))
	for _, err := range errs {
		t.Errorf("alerts.yml: %v", err)
	}
	if groups == nil {
		t.FailNow()
	}
	out := map[string][]string{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			name := r.Alert.Value + r.Record.Value
			if r.Annotations["runbook"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("alert %s: needs a summary and a runbook line", name)
			}
			if r.Labels["severity"] == "" {
				t.Errorf("alert %s: no severity label", name)
			}
			out[name] = metricNames(t, "alert "+name, r.Expr.Value)
		}
	}
	return out
}

// dashboardMetrics returns the metrics the dashboard's queries name, by
// panel title.
func dashboardMetrics(t *testing.T) map[string][]string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("grafana", "kowai.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	if err := dec.Decode(&dash); err != nil {
		t.Fatalf("grafana/kowai.json: %v", err)
	}
	out := map[string][]string{}
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			out["panel "+p.Title] = append(out["panel "+p.Title], metricNames(t, "panel "+p.Title, tg.Expr)...)
		}
	}
	labelValues := regexp.MustCompile(`^label_values\((\w+),\s*\w+\)$`)
	for _, v := range dash.Templating.List {
		if v.Definition == "" {
			continue
		}
		m := labelValues.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Errorf("variable %s: unexpected query %q", v.Name, v.Definition)
			continue
		}
		out["variable "+v.Name] = []string{m[1]}
	}
	return out
}

// scrape returns the sample names on a node's metrics page: the metrics
// listener (KOWAI_METRICS_ADDR) when it answers, else the API port's
// /metrics, where nodes served it before the separate listener.
func scrape(t *testing.T, metricsAddr, apiAddr string) (map[string]bool, string) {
	t.Helper()
	url := "http://" + metricsAddr + "/metrics"
	res, err := http.Get(url)
	if err != nil {
		url = "http://" + apiAddr + "/metrics"
		t.Logf("no metrics listener on %s (%v); scraping %s", metricsAddr, err, url)
		res, err = http.Get(url)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("%s: %d %v", url, res.StatusCode, err)
	}
	names := map[string]bool{}
	for _, line := range strings.Split(string(raw), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names, url
}

// registeredInSource returns the metric family names written as string
// literals in kowai's non-test Go code.
func registeredInSource(t *testing.T) map[string]bool {
	t.Helper()
	lit := regexp.MustCompile(`"(kowai_[a-z0-9_]+)"`)
	out := map[string]bool{}
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != ".." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range lit.FindAllStringSubmatch(string(src), -1) {
			out[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// rareMetrics count failures a healthy node does not produce on demand
// (supervisor restarts and escalations, failed group commits): their series
// appear only after the first such event. They must still be registered
// under exactly the name the dashboard and the alerts use.
var rareMetrics = []string{"kowai_actor_restarts_total", "kowai_actor_escalations_total", "kowai_db_group_commit_errors_total"}

// Every metric the dashboard and the alert rules name exists on a node's
// /metrics after a few turns, one of them through a model that fails once
// (errors and retries), and one workflow run; the rule file parses with Prometheus' rule parser
// and every query with its PromQL parser.
func TestDashboardAndAlertMetricsExist(t *testing.T) {
	named := ruleMetrics(t)
	for k, v := range dashboardMetrics(t) {
		named[k] = v
	}
	if len(named) < 20 {
		t.Fatalf("found %d queries in the dashboard and rules; the reading is broken", len(named))
	}

	model := lmtest.NewOpenAIServer(t, lmtest.Reply{Status: http.StatusServiceUnavailable, ErrorMessage: "overloaded"})
	dir := t.TempDir()
	api, metrics := freePort(t), freePort(t)
	node := start(t, dir, []string{
		"KOWAI_DATA_DIR=" + filepath.Join(dir, "data"), "KOWAI_HTTP_ADDR=" + api, "KOWAI_METRICS_ADDR=" + metrics,
		"KOWAI_LLM_PROVIDER=openai", "KOWAI_LLM_BASE_URL=" + model.URL, "KOWAI_LLM_MODEL=test-model",
	}, kowaiBinary(t), "serve")
	base := "http://" + api
	waitHTTP(t, node, base+"/health/ready")
	token := signUp(t, base, "metrics@example.com")
	// Two new conversations with the same first message (the second is a
	// cache hit), then a follow-up turn.
	var first turnResult
	for i, conv := range []string{"", "", "first"} {
		var res turnResult
		body := map[string]string{"content": "hello"}
		if conv == "first" {
			body = map[string]string{"content": "and then?", "conversation_id": first.ConversationID}
		}
		if code := call(t, http.MethodPost, base+"/api/v1/chat/message", token, body, &res); code != http.StatusOK {
			t.Fatalf("turn %d: %d", i, code)
		}
		if i == 0 {
			first = res
		}
	}
	// A workflow run to its end, so the workflow series exist: it calls the
	// chat and analysis agents, and every one of its tasks.
	var run struct {
		RunID string `json:"run_id"`
	}
	if code := call(t, http.MethodPost, base+"/api/v1/workflows/trigger", token,
		map[string]any{"name": "intelligent-chat", "parameters": map[string]string{"message": "hello"}}, &run); code != http.StatusAccepted && code != http.StatusOK && code != http.StatusCreated {
		t.Fatalf("trigger a workflow: %d", code)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st struct {
			Status string `json:"status"`
		}
		if code := call(t, http.MethodGet, base+"/api/v1/workflows/"+run.RunID+"/status", token, nil, &st); code != http.StatusOK {
			t.Fatalf("run %s status: %d", run.RunID, code)
		}
		if st.Status == "completed" || st.Status == "failed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s still %s after 30s", run.RunID, st.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	got, url := scrape(t, metrics, api)
	source := registeredInSource(t)

	var missing []string
	for where, names := range named {
		for _, n := range names {
			switch {
			case got[n], n == "up": // up is Prometheus' own, per scrape target
			case slices.Contains(rareMetrics, n) && source[n]:
				t.Logf("%s: %s is registered, and has no series until its first event", where, n)
			default:
				missing = append(missing, where+": "+n)
			}
		}
	}
	slices.Sort(missing)
	for _, m := range missing {
		t.Errorf("%s does not exist on %s", m, url)
	}
}

// The rare metrics exemption holds only names that kowai registers.
func TestRareMetricsAreRegistered(t *testing.T) {
	source := registeredInSource(t)
	if len(source) < 10 {
		t.Fatalf("found %d metric names in the source; the walk is broken", len(source))
	}
	for _, n := range rareMetrics {
		if !source[n] {
			t.Errorf("%s is not registered anywhere in kowai's code", n)
		}
	}
}
