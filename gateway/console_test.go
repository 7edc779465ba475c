package gateway

import (
	"io/fs"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/kowai/kowai/console"
)

// TestConsolePage fetches /console and every file it loads, directly or
// through ES module imports: each is served from the binary under the
// console's Content-Security-Policy, the page has no inline script, style or
// event handler and names no other origin, and no script turns strings into
// markup (innerHTML and friends) or code (eval). Every embedded file is
// reachable from the page, and names outside it are 404.
func TestConsolePage(t *testing.T) {
	ts := start(t, Options{}, nil)
	res, page := get(t, ts.url+"/console", nil)
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /console: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	checkCSP := func(name, csp string) {
		t.Helper()
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", name, csp, want)
			}
		}
		for _, banned := range []string{"unsafe-inline", "unsafe-eval", "sha256-", "nonce-", "http:", "https:", "*", "data:"} {
			if strings.Contains(csp, banned) {
				t.Errorf("%s: CSP %q admits %q", name, csp, banned)
			}
		}
	}
	checkCSP("/console", res.Header.Get("Content-Security-Policy"))
	html := string(page)
	inline := regexp.MustCompile(`(?is)<script\b[^>]*>\s*[^<\s]|<style\b|\sstyle=|\son[a-z]+=|javascript:`)
	if m := inline.FindString(html); m != "" {
		t.Errorf("/console has inline code or style: %q", m)
	}
	if regexp.MustCompile(`(?:src|href)="(?:https?:)?//`).MatchString(html) {
		t.Error("/console loads something from another origin")
	}
	for _, name := range []string{">Chat<", ">Agents<", ">Workflows<", ">Cluster<", `role="alert"`, `aria-live="assertive"`} {
		if !strings.Contains(html, name) {
			t.Errorf("/console lacks %s", name)
		}
	}

	// Walk the page's files and the modules they import.
	seen := map[string]bool{}
	queue := []string{}
	for _, m := range regexp.MustCompile(`(?:src|href)="/console/([^"]+)"`).FindAllStringSubmatch(html, -1) {
		queue = append(queue, m[1])
	}
	imports := regexp.MustCompile(`(?m)^\s*(?:import|export)\b[^"';]*?from\s+"\./([^"]+)"|^\s*import\s+"\./([^"]+)"`)
	unsafe := regexp.MustCompile(`\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function\(|createContextualFragment|https?://`)
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		if seen[name] {
			continue
		}
		seen[name] = true
		res, body := get(t, ts.url+"/console/"+name, nil)
		if res.StatusCode != http.StatusOK || len(body) == 0 || res.Header.Get("Content-Type") != console.ContentType(name) {
			t.Errorf("GET /console/%s: %d %q (%d bytes)", name, res.StatusCode, res.Header.Get("Content-Type"), len(body))
			continue
		}
		checkCSP("/console/"+name, res.Header.Get("Content-Security-Policy"))
		if !strings.HasSuffix(name, ".js") {
			continue
		}
		if m := unsafe.FindString(string(body)); m != "" {
			t.Errorf("/console/%s uses %q: the console builds DOM nodes and never loads from another origin", name, m)
		}
		for _, m := range imports.FindAllStringSubmatch(string(body), -1) {
			queue = append(queue, m[1]+m[2])
		}
	}
	files, err := console.Assets()
	if err != nil {
		t.Fatal(err)
	}
	entries, err := fs.ReadDir(files, ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "index.html" && !seen[e.Name()] {
			t.Errorf("the embedded file %s is not loaded by the console", e.Name())
		}
	}
	if len(seen) < 5 {
		t.Fatalf("the console loads only %v", seen)
	}
	// A revalidation with the file's ETag is an empty 304; a stale one gets the file.
	res, body := get(t, ts.url+"/console/app.js", nil)
	etag := res.Header.Get("ETag")
	if etag == "" || res.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("GET /console/app.js: ETag %q, Cache-Control %q", etag, res.Header.Get("Cache-Control"))
	}
	if res, again := get(t, ts.url+"/console/app.js", map[string]string{"If-None-Match": etag}); res.StatusCode != http.StatusNotModified || len(again) != 0 {
		t.Errorf("revalidation with the ETag: %d, %d bytes; want 304, empty", res.StatusCode, len(again))
	}
	if res, again := get(t, ts.url+"/console/app.js", map[string]string{"If-None-Match": `"stale"`}); res.StatusCode != http.StatusOK || string(again) != string(body) {
		t.Errorf("revalidation with a stale ETag: %d, %d bytes; want 200 and the file", res.StatusCode, len(again))
	}
	for _, path := range []string{"/console/index.html", "/console/missing.js", "/console/..%2fgo.mod"} {
		if res, _ := get(t, ts.url+path, nil); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, res.StatusCode)
		}
	}
}
