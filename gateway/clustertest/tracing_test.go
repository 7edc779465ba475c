package clustertest

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/kowai/kowai/gateway"
	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/internal/logging"
	"github.com/kowai/kowai/internal/testenv"
	"github.com/kowai/kowai/internal/tracing"
	"github.com/kowai/kowai/persistence/persisttest"
)

// receivedSpan is one span as an OTLP/HTTP receiver decoded it, with the
// resource attributes of the process (node) that exported it.
type receivedSpan struct {
	traceID, spanID, parentID string
	name                      string
	kind                      tracepb.Span_SpanKind
	service, instance         string
	attrs                     map[string]string
	links                     []string
}

// otlpReceiver is an in-process OTLP/HTTP trace receiver: it decodes the
// protobuf export requests POSTed to /v1/traces, as a collector would.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []receivedSpan
	bad   []string
}

func (r *otlpReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	var export coltracepb.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(body, &export)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" || req.Header.Get("Content-Type") != "application/x-protobuf" || err != nil {
		r.bad = append(r.bad, fmt.Sprintf("%s %s %s: %v", req.Method, req.URL.Path, req.Header.Get("Content-Type"), err))
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	for _, rs := range export.GetResourceSpans() {
		res := map[string]string{}
		for _, kv := range rs.GetResource().GetAttributes() {
			res[kv.GetKey()] = kv.GetValue().GetStringValue()
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				rec := receivedSpan{traceID: hex.EncodeToString(s.GetTraceId()), spanID: hex.EncodeToString(s.GetSpanId()),
					parentID: hex.EncodeToString(s.GetParentSpanId()), name: s.GetName(), kind: s.GetKind(),
					service: res["service.name"], instance: res["service.instance.id"], attrs: map[string]string{}}
				for _, kv := range s.GetAttributes() {
					v := kv.GetValue()
					switch {
					case v.GetStringValue() != "":
						rec.attrs[kv.GetKey()] = v.GetStringValue()
					default:
						rec.attrs[kv.GetKey()] = strings.Trim(fmt.Sprint(v.GetValue()), "&{}")
					}
				}
				for _, l := range s.GetLinks() {
					rec.links = append(rec.links, hex.EncodeToString(l.GetSpanId()))
				}
				r.spans = append(r.spans, rec)
			}
		}
	}
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// trace returns the spans received for traceID, and any malformed exports.
func (r *otlpReceiver) trace(traceID string) ([]receivedSpan, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []receivedSpan
	for _, s := range r.spans {
		if s.traceID == traceID {
			out = append(out, s)
		}
	}
	return out, append([]string(nil), r.bad...)
}

// find returns the spans named name.
func (r *otlpReceiver) find(name string) []receivedSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []receivedSpan
	for _, s := range r.spans {
		if s.name == name {
			out = append(out, s)
		}
	}
	return out
}

// TestTraceAcrossNodes sends one chat turn to a node that hosts no grains,
// so the session and agent grains run on the other node, with tracing set
// up from the standard OTEL_* variables and exporting over OTLP/HTTP to an
// in-process receiver. The turn must arrive as one trace whose spans come
// from both nodes, each with the right parent: the W3C trace context has to
// travel inside the grain message from one node to the other. The same holds
// for a turn sent over WebSocket, whose message span is the root, and for a
// workflow run, down to its tasks.
func TestTraceAcrossNodes(t *testing.T) {
	recv := &otlpReceiver{}
	collector := httptest.NewServer(recv)
	t.Cleanup(collector.Close)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	t.Setenv("OTEL_SERVICE_NAME", "kowai-trace-test")
	providers := make([]*tracing.Provider, 2)
	tps := make([]trace.TracerProvider, 2)
	for i, name := range []string{"node-a", "node-b"} {
		p, err := tracing.New(t.Context(), os.Getenv, tracing.Options{InstanceID: name})
		if err != nil {
			t.Fatal(err)
		}
		if !p.Enabled() {
			t.Fatal("OTEL_EXPORTER_OTLP_ENDPOINT is set but tracing is off")
		}
		t.Cleanup(func() {
			if err := p.Shutdown(context.Background()); err != nil {
				t.Errorf("shutdown: %v", err)
			}
		})
		providers[i], tps[i] = p, p.TracerProvider()
	}
	logs := &testenv.LogBuffer{}
	s := startStack(t, persisttest.SQLite(t), stackOptions{tracing: tps, log: logging.New(logs, slog.LevelInfo, "json")})

	s.call(t, http.MethodPost, "/api/v1/auth/register", "", `{"email":"ada@example.com","password":"correct horse battery"}`).
		decode(t, http.StatusCreated, nil)
	var pair auth.TokenPair
	s.call(t, http.MethodPost, "/api/v1/auth/login", "", `{"email":"ada@example.com","password":"correct horse battery"}`).
		decode(t, http.StatusOK, &pair)
	var reply gateway.ChatReply
	s.call(t, http.MethodPost, "/api/v1/chat/message", pair.AccessToken, `{"content":"Hello across nodes"}`).
		decode(t, http.StatusOK, &reply)

	flush := func() {
		for _, p := range providers {
			if err := p.ForceFlush(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The chain of one REST turn, each span the parent of the next, with the
	// node that must have recorded it.
	restChain := []struct{ name, node string }{
		{"POST /api/v1/chat/message", "node-a"},
		{"session/SendMessage", "node-a"}, // client
		{"session/SendMessage", "node-b"}, // server
		{"chat.turn", "node-b"},
		{"agent/GenerateReply", "node-b"}, // client
		{"agent/GenerateReply", "node-b"}, // server
		{"agent.reply", "node-b"},
		{"chat kowai-offline", "node-b"},
	}
	testenv.Eventually(t, 15*time.Second, func() error {
		flush()
		roots := recv.find("POST /api/v1/chat/message")
		if len(roots) != 1 {
			return fmt.Errorf("%d spans of the chat request, want 1", len(roots))
		}
		return checkChain(recv, roots[0].traceID, restChain)
	})
	root := recv.find("POST /api/v1/chat/message")[0]
	// The request's access-log line names its trace and span next to its
	// correlation ID.
	accessLine := ""
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `"msg":"http request"`) && strings.Contains(line, `"route":"/api/v1/chat/message"`) {
			accessLine = line
		}
	}
	if !strings.Contains(accessLine, `"trace_id":"`+root.traceID+`","span_id":"`+root.spanID+`"`) ||
		!strings.Contains(accessLine, `"correlation_id":"`+root.attrs["kowai.correlation_id"]+`"`) || root.attrs["kowai.correlation_id"] == "" {
		t.Errorf("access log line %q lacks trace %s, span %s or correlation ID %q", accessLine, root.traceID, root.spanID, root.attrs["kowai.correlation_id"])
	}
	spans, _ := recv.trace(root.traceID)
	for _, sp := range spans {
		if sp.service != "kowai-trace-test" {
			t.Errorf("span %s from service %q, want OTEL_SERVICE_NAME's kowai-trace-test", sp.name, sp.service)
		}
	}
	byName := map[string][]receivedSpan{}
	for _, sp := range spans {
		byName[sp.name] = append(byName[sp.name], sp)
	}
	turn := byName["chat.turn"][0]
	if turn.attrs["kowai.conversation.id"] != reply.ConversationID {
		t.Errorf("turn span's conversation %q, want %q", turn.attrs["kowai.conversation.id"], reply.ConversationID)
	}
	model := byName["chat kowai-offline"][0]
	for _, k := range []string{"gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "kowai.llm.cost_usd", "gen_ai.response.model"} {
		if _, ok := model.attrs[k]; !ok {
			t.Errorf("model span lacks %s: %v", k, model.attrs)
		}
	}
	// The writes of the turn are durable in group-commit batches whose spans
	// belong to the turn: a child, or a link when another caller's trace
	// parents the batch. A reply back before the writer took the user's
	// message commits with it, so one batch may hold both.
	commits := 0
	for _, b := range recv.find("group_commit") {
		if b.traceID == turn.traceID && b.parentID == turn.spanID || strings.Contains(strings.Join(b.links, ","), turn.spanID) {
			commits++
		}
	}
	if commits < 1 {
		t.Errorf("%d group-commit spans belong to the turn, want the user message's and the reply's (apart or together)", commits)
	}

	// Over WebSocket, the message frame's span is the root of the turn.
	wsTurn(t, s, pair.AccessToken, reply.ConversationID)
	testenv.Eventually(t, 15*time.Second, func() error {
		flush()
		roots := recv.find("WS message")
		if len(roots) != 1 {
			return fmt.Errorf("%d WebSocket message spans, want 1", len(roots))
		}
		return checkChain(recv, roots[0].traceID, append([]struct{ name, node string }{{"WS message", "node-a"}}, restChain[1:]...))
	})

	// A workflow run joins the trace of the request that triggered it, on
	// the other node, down to its tasks and the agent replies they ask for.
	var run struct {
		RunID string `json:"run_id"`
	}
	s.call(t, http.MethodPost, "/api/v1/workflows/trigger", pair.AccessToken,
		`{"name":"intelligent-chat","parameters":{"message":"hello"}}`).decode(t, http.StatusAccepted, &run)
	testenv.Eventually(t, 30*time.Second, func() error {
		flush()
		roots := recv.find("POST /api/v1/workflows/trigger")
		if len(roots) != 1 {
			return fmt.Errorf("%d spans of the trigger request, want 1", len(roots))
		}
		err := checkChain(recv, roots[0].traceID, []struct{ name, node string }{
			{"POST /api/v1/workflows/trigger", "node-a"},
			{"workflow-run/StartRun", "node-a"},
			{"workflow-run/StartRun", "node-b"},
			{"workflow.run intelligent-chat", "node-b"},
		})
		if err != nil {
			return err
		}
		spans, _ := recv.trace(roots[0].traceID)
		tasks, replies := 0, 0
		for _, sp := range spans {
			switch {
			case strings.HasPrefix(sp.name, "workflow.task ") && sp.attrs["kowai.workflow.run_id"] == run.RunID:
				tasks++
			case sp.name == "agent.reply" && sp.instance == "node-b":
				replies++
			}
		}
		if tasks == 0 || replies == 0 {
			return fmt.Errorf("the run's trace has %d task spans and %d agent replies, want both", tasks, replies)
		}
		return nil
	})
	if _, bad := recv.trace(""); len(bad) > 0 {
		t.Fatalf("malformed exports: %v", bad)
	}
}

// checkChain checks that trace traceID holds the spans of chain, each
// recorded by its node and the child of the one before it.
func checkChain(recv *otlpReceiver, traceID string, chain []struct{ name, node string }) error {
	spans, bad := recv.trace(traceID)
	if len(bad) > 0 {
		return fmt.Errorf("malformed exports: %v", bad)
	}
	parent := ""
	for i, want := range chain {
		var found *receivedSpan
		for j := range spans {
			sp := &spans[j]
			if sp.name == want.name && sp.instance == want.node && (i == 0 && sp.parentID == "" || i > 0 && sp.parentID == parent) {
				found = sp
				break
			}
		}
		if found == nil {
			var have []string
			for _, sp := range spans {
				have = append(have, fmt.Sprintf("%s@%s(%s<-%s)", sp.name, sp.instance, sp.spanID[:4], sp.parentID))
			}
			return fmt.Errorf("no span %q from %s under %q in trace %s; spans: %s", want.name, want.node, parent, traceID,
				strings.Join(have, " "))
		}
		parent = found.spanID
	}
	return nil
}
