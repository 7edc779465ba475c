package gateway

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	fws "github.com/fasthttp/websocket"
)

// compress applies codings to body in order, as a client would before
// sending it with Content-Encoding listing them.
func compress(t *testing.T, body []byte, codings ...string) []byte {
	t.Helper()
	for _, coding := range codings {
		var buf bytes.Buffer
		var w io.WriteCloser
		switch coding {
		case "gzip":
			w = gzip.NewWriter(&buf)
		case "deflate":
			w = zlib.NewWriter(&buf)
		default:
			t.Fatalf("no coder for %q", coding)
		}
		if _, err := w.Write(body); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		body = buf.Bytes()
	}
	return body
}

// postEncoded posts body as JSON with Content-Encoding encoding; a "|" in
// encoding splits it into several header lines.
func postEncoded(t *testing.T, url, encoding string, body []byte) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for _, line := range strings.Split(encoding, "|") {
		req.Header.Add("Content-Encoding", line)
	}
	return do(t, req)
}

// bomb is 256 MiB of zeros gzipped twice.
func bomb(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/bomb-256MiB-zeros.gz.gz")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDecompressionBomb replays the audit's attack: an unauthenticated login
// whose body is 256 MiB of zeros gzipped twice (1191 bytes here) made the node
// allocate about a gigabyte before answering 400. The decoded body must stop
// at the body limit: the answer is a 413, and the request allocates a few
// megabytes, not hundreds.
func TestDecompressionBomb(t *testing.T) {
	env := startREST(t, restConfig{})
	postEncoded(t, env.url+"/api/v1/auth/login", "gzip", compress(t, []byte(`{}`), "gzip")) // warm up
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r := postEncoded(t, env.url+"/api/v1/auth/login", "gzip, gzip", bomb(t))
	runtime.ReadMemStats(&after)
	if allocated := after.TotalAlloc - before.TotalAlloc; allocated > 32<<20 {
		t.Errorf("the request allocated %d MiB; decompression is not bounded", allocated>>20)
	}
	p := r.problem(t, http.StatusRequestEntityTooLarge)
	if !strings.Contains(p.Detail, "decompressed body exceeds 1048576 bytes") {
		t.Fatalf("detail %q", p.Detail)
	}
	if r.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("413 without security headers: %v", r.header)
	}
}

func TestCompressedBodies(t *testing.T) {
	env := startREST(t, restConfig{})
	register := env.url + "/api/v1/auth/register"
	account := func(n int) []byte {
		return []byte(fmt.Sprintf(`{"email":"zip%d@example.com","password":"a long password","name":"Zip"}`, n))
	}
	overLimit := []byte(`{"email":"` + strings.Repeat("a", 1<<20) + `","password":"p"}`)
	for i, tc := range []struct {
		name, encoding string
		body           []byte
		status         int
		acceptEncoding string
	}{
		{"gzip", "gzip", compress(t, account(1), "gzip"), http.StatusCreated, ""},
		{"x-gzip", "x-gzip", compress(t, account(2), "gzip"), http.StatusCreated, ""},
		{"deflate", "deflate", compress(t, account(3), "deflate"), http.StatusCreated, ""},
		{"deflate then gzip", "deflate, GZIP", compress(t, account(4), "deflate", "gzip"), http.StatusCreated, ""},
		{"identity", "identity", account(5), http.StatusCreated, ""},
		{"two header lines", "gzip|gzip", compress(t, account(10), "gzip", "gzip"), http.StatusCreated, ""},
		{"bomb over two header lines", "gzip|gzip", bomb(t), http.StatusRequestEntityTooLarge, ""},
		{"just over the limit once decoded", "gzip", compress(t, overLimit, "gzip"), http.StatusRequestEntityTooLarge, ""},
		{"corrupt gzip", "gzip", []byte("this is not gzip"), http.StatusBadRequest, ""},
		{"no body at all", "gzip", nil, http.StatusBadRequest, ""},
		{"truncated gzip", "gzip", compress(t, account(6), "gzip")[:20], http.StatusBadRequest, ""},
		{"brotli", "br", account(7), http.StatusUnsupportedMediaType, "gzip, deflate"},
		{"unknown coding", "compress", account(8), http.StatusUnsupportedMediaType, "gzip, deflate"},
		{"three codings", "gzip, gzip, gzip", compress(t, account(9), "gzip", "gzip", "gzip"), http.StatusUnsupportedMediaType, "gzip, deflate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := postEncoded(t, register, tc.encoding, tc.body)
			if tc.status == http.StatusCreated {
				if r.status != tc.status {
					t.Fatalf("case %d: %d %s", i, r.status, r.body)
				}
				return
			}
			r.problem(t, tc.status)
			if got := r.header.Get("Accept-Encoding"); got != tc.acceptEncoding {
				t.Fatalf("Accept-Encoding %q, want %q", got, tc.acceptEncoding)
			}
		})
	}
}

// rawExchange writes request (headers and the whole body) on a fresh TCP
// connection, as Python's urllib or Node's fetch do, and reads the answer.
// The client's send buffer is small, as the path to a real client is: on
// loopback, megabytes would otherwise fit in kernel buffers and the client
// would never notice a server that stopped reading.
func rawExchange(t *testing.T, baseURL string, request []byte) (*http.Response, []byte) {
	t.Helper()
	u, err := url.Parse(baseURL)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	conn := c.(*net.TCPConn)
	defer conn.Close()
	if err := conn.SetWriteBuffer(32 << 10); err != nil {
		t.Fatal(err)
	}
	if err := conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(request); err != nil {
		t.Fatalf("writing the request: %v", err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("reading the answer's body: %v", err)
	}
	return res, body
}

// TestRefusalsReachTheClient: a 3 MB body sent in one go, or headers over the
// server's buffer, are refused before any handler runs. The client, which
// writes everything before reading, must still read a problem+json with the
// security headers instead of a connection reset.
func TestRefusalsReachTheClient(t *testing.T) {
	env := startREST(t, restConfig{})
	host := strings.TrimPrefix(env.url, "http://")
	body := `{"email":"` + strings.Repeat("a", 3<<20) + `","password":"p"}`
	for _, tc := range []struct {
		name    string
		request string
		status  int
	}{
		{"3 MB body", "POST /api/v1/auth/login HTTP/1.1\r\nHost: " + host + "\r\nContent-Type: application/json\r\n" +
			fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body)) + body, http.StatusRequestEntityTooLarge},
		{"3 MB chunked body", "POST /api/v1/auth/login HTTP/1.1\r\nHost: " + host + "\r\nContent-Type: application/json\r\n" +
			"Transfer-Encoding: chunked\r\n\r\n" + fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(body), body), http.StatusRequestEntityTooLarge},
		{"16 KB of headers", "GET /health/live HTTP/1.1\r\nHost: " + host + "\r\nCookie: " + strings.Repeat("c", 16<<10) + "\r\n\r\n",
			http.StatusRequestHeaderFieldsTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, raw := rawExchange(t, env.url, []byte(tc.request))
			r := reply{status: res.StatusCode, header: res.Header, body: raw}
			p := r.problem(t, tc.status)
			if p.CorrelationID != res.Header.Get("X-Request-ID") {
				t.Fatalf("correlation_id %q, X-Request-ID %q", p.CorrelationID, res.Header.Get("X-Request-ID"))
			}
			for h, want := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
				"Referrer-Policy": "no-referrer", "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
				"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'"} {
				if got := res.Header.Get(h); got != want {
					t.Errorf("%s: %q, want %q", h, got, want)
				}
			}
		})
	}
	// The refusals are logged like every other answer (before they are
	// written, so the lines are there by now).
	logs := env.logs.String()
	if !strings.Contains(logs, `"route":"unmatched","status":413`) || !strings.Contains(logs, `"route":"unmatched","status":431`) {
		t.Fatalf("refusals missing from the access log: %s", logs)
	}
}

// TestWebSocketRefusesCompression: frames are limited by their size on the
// wire, so a compressed frame could inflate far past the limit; the server
// must never agree to permessage-deflate.
func TestWebSocketRefusesCompression(t *testing.T) {
	ts := startAPI(t, &fakeChat{})
	d := fws.Dialer{EnableCompression: true, HandshakeTimeout: 5 * time.Second}
	h := http.Header{"Authorization": {"Bearer good-u1"}}
	c, res, err := d.Dial("ws"+strings.TrimPrefix(ts.url, "http")+"/api/v1/chat/ws", h)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ext := res.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
		t.Fatalf("the server negotiated %q", ext)
	}
}
