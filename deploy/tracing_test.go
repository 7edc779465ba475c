package deploy

import (
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// spanSink is an OTLP/HTTP receiver that keeps, per span name, the trace IDs
// (hex) and service.name of the exported spans.
type spanSink struct {
	mu    sync.Mutex
	spans map[string][]sunkSpan
}

type sunkSpan struct{ traceID, service string }

// in reports whether a span named name was exported by service in traceID.
func (s *spanSink) in(name, service, traceID string) bool {
	return slices.Contains(s.spans[name], sunkSpan{traceID, service})
}

func (s *spanSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	var req coltracepb.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(body, &req)
	}
	if err != nil || r.URL.Path != "/v1/traces" {
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				s.spans[sp.GetName()] = append(s.spans[sp.GetName()], sunkSpan{hex.EncodeToString(sp.GetTraceId()), service})
			}
		}
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	_, _ = w.Write(out)
}

// A kowai serve process with OTEL_EXPORTER_OTLP_ENDPOINT set exports the
// spans of a chat turn over OTLP/HTTP under OTEL_SERVICE_NAME, every hop of
// it in one trace, and its access-log line names that trace; a protocol it
// does not speak makes it refuse to start.
func TestServeExportsTraces(t *testing.T) {
	sink := &spanSink{spans: map[string][]sunkSpan{}}
	collector := httptest.NewServer(sink)
	t.Cleanup(collector.Close)
	dir := t.TempDir()
	api := freePort(t)
	node := start(t, dir, []string{
		"KOWAI_DATA_DIR=" + filepath.Join(dir, "data"), "KOWAI_HTTP_ADDR=" + api, "KOWAI_METRICS_ADDR=off",
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + collector.URL, "OTEL_SERVICE_NAME=kowai-serve-test", "OTEL_BSP_SCHEDULE_DELAY=100",
	}, kowaiBinary(t), "serve")
	base := "http://" + api
	waitHTTP(t, node, base+"/health/ready")
	token := signUp(t, base, "traces@example.com")
	var res turnResult
	if code := call(t, http.MethodPost, base+"/api/v1/chat/message", token, map[string]string{"content": "hello"}, &res); code != http.StatusOK {
		t.Fatalf("turn: %d", code)
	}
	want := []string{"POST /api/v1/chat/message", "session/SendMessage", "chat.turn", "agent/GenerateReply", "agent.reply", "group_commit"}
	var traceID string
	eventually(t, 20*time.Second, func() error {
		if err := node.exited(); err != nil {
			return err
		}
		sink.mu.Lock()
		defer sink.mu.Unlock()
		roots := sink.spans[want[0]]
		if len(roots) != 1 {
			return fmt.Errorf("%d spans of the chat request", len(roots))
		}
		traceID = roots[0].traceID
		for _, name := range want {
			if !sink.in(name, "kowai-serve-test", traceID) {
				return fmt.Errorf("no span %s from kowai-serve-test in trace %s (have %v)", name, traceID, sink.spans)
			}
		}
		for name := range sink.spans {
			if strings.HasPrefix(name, "chat ") && sink.in(name, "kowai-serve-test", traceID) {
				return nil
			}
		}
		return fmt.Errorf("no model call span in trace %s", traceID)
	})
	// serve's log goes through a buffer flushed every 100 ms.
	eventually(t, 5*time.Second, func() error {
		if !strings.Contains(node.log(), `"trace_id":"`+traceID+`"`) {
			return fmt.Errorf("no log line names trace %s:\n%s", traceID, tail(node.log(), 20))
		}
		return nil
	})

	cmd := exec.Command(kowaiBinary(t), "serve")
	cmd.Dir = dir
	cmd.Env = []string{"HOME=" + dir, "KOWAI_DATA_DIR=" + filepath.Join(dir, "other"), "KOWAI_HTTP_ADDR=" + freePort(t),
		"KOWAI_METRICS_ADDR=off", "OTEL_EXPORTER_OTLP_ENDPOINT=" + collector.URL, "OTEL_EXPORTER_OTLP_PROTOCOL=grpc"}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "OTEL_EXPORTER_OTLP_PROTOCOL") {
		t.Fatalf("kowai serve with OTLP over gRPC: %v\n%s", err, out)
	}
}
