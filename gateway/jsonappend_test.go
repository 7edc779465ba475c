package gateway

import (
	"encoding/json"
	"testing"

	"github.com/kowai/kowai/gateway/auth"
)

// TestAppendPublicUserMatchesJSON: /auth/me's hand-written encoding writes
// what encoding/json writes, for every kind of character a name or an email
// may hold.
func TestAppendPublicUserMatchesJSON(t *testing.T) {
	strs := []string{"", "plain", `quote " backslash \`, "ctl \x00\x01\b\f\n\r\t\x1f\x7f", "<script>&amp;</script>",
		"héllo 日本語 🙂", "bad \xff\xfe utf8", "truncated \xe2\x82", "sep \u2028 \u2029", "nbsp\u00a0zw\u200b"}
	for i, s := range strs {
		for _, roles := range [][]auth.Role{nil, {}, {auth.Role(s)}, {"user", auth.Role(strs[(i+1)%len(strs)])}} {
			u := auth.PublicUser{ID: s, Email: strs[(i+2)%len(strs)], Name: strs[(i+3)%len(strs)], Roles: roles}
			want, err := json.Marshal(&u)
			if err != nil {
				t.Fatal(err)
			}
			if got := appendPublicUser(nil, &u); string(got) != string(want) {
				t.Errorf("appendPublicUser(%+v)\n got %s\nwant %s", u, got, want)
			}
		}
	}
}

// TestLiveBody: /health/live's fixed answer is the encoding of its report.
func TestLiveBody(t *testing.T) {
	want, err := json.Marshal(healthReport{Status: "ok"})
	if err != nil {
		t.Fatal(err)
	}
	if string(liveBody) != string(want) {
		t.Fatalf("liveBody %s, want %s", liveBody, want)
	}
}
