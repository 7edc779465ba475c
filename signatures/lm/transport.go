package lm

import (
	"context"
	"net/http"
	"sync"
)

// langchaingo's clients turn an HTTP failure into a string and drop the
// response headers, so the status and Retry-After of a failed call are lost.
// A recordingTransport, installed as the client's HTTP transport, writes them
// into a recorder that the adapter puts in the request context; the adapter
// reads it back after GenerateContent returns. One recorder per call keeps
// concurrent calls apart.
type recordingTransport struct {
	base http.RoundTripper
}

type recorderKey struct{}

// httpRecord is what the transport saw of the last response of one call.
type httpRecord struct {
	mu         sync.Mutex
	status     int
	retryAfter string
}

func withRecorder(ctx context.Context) (context.Context, *httpRecord) {
	rec := &httpRecord{}
	return context.WithValue(ctx, recorderKey{}, rec), rec
}

func (r *httpRecord) get() (int, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status, r.retryAfter
}

func (t recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if rec, ok := req.Context().Value(recorderKey{}).(*httpRecord); ok && resp != nil {
		rec.mu.Lock()
		rec.status = resp.StatusCode
		rec.retryAfter = resp.Header.Get("Retry-After")
		rec.mu.Unlock()
	}
	return resp, err
}

// recordingClient returns a copy of base (http.DefaultClient when nil) whose
// transport records statuses and Retry-After headers.
func recordingClient(base *http.Client) *http.Client {
	if base == nil {
		base = http.DefaultClient
	}
	c := *base
	rt := c.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	c.Transport = recordingTransport{base: rt}
	return &c
}
