package gateway

import (
	"encoding/json"
	"errors"
	"testing"
)

// FuzzRequestBodies feeds arbitrary bytes to the strict decoder and the
// validation of every REST body. Decoding never panics, every refusal is a
// 400 naming a field, and a body that is accepted survives a round trip
// through its own JSON encoding unchanged and still valid.
func FuzzRequestBodies(f *testing.F) {
	for _, seed := range []string{
		`{"email":"a@example.com","password":"long enough pw","name":"A"}`,
		`{"email":"a@example.com","password":"x"}`,
		`{"refresh_token":"abc"}`,
		`{"jwt":"eyJ"}`,
		`{"message_id":"0195f3c4-8d2a-7b6e-9c1d-2f3a4b5c6d7e","rating":-1,"comment":"meh"}`,
		`{"name":"Helper","type":"chat","signature":"message -> response","config":{"temperature":0.2}}`,
		`{"name":"Helper","type":"chat","version":3}`,
		`{"roles":["user","premium"]}`,
		`{"name":"report","parameters":{"days":7}}`,
		`{"email":1}`, `{"rating":1.5}`, `{}{}`, `[]`, `null`, `{"a":` + "\xff" + `}`, `{"config":[1]}`, `{"":0}`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkBody[registerRequest](t, body)
		checkBody[loginRequest](t, body)
		checkBody[refreshRequest](t, body)
		checkBody[appwriteRequest](t, body)
		checkBody[feedbackRequest](t, body)
		checkBody[createAgentRequest](t, body)
		checkBody[updateAgentRequest](t, body)
		checkBody[rolesRequest](t, body)
		checkBody[triggerRequest](t, body)
	})
}

func checkBody[T Validator](t *testing.T, body []byte) {
	t.Helper()
	var v T
	err := decodeJSON(body, &v)
	if err == nil {
		if fields := v.Validate(); len(fields) > 0 {
			err = Validation(fields...)
		}
	}
	if err != nil {
		var e *Error
		if !errors.As(err, &e) || e.Status != 400 || len(e.Fields) == 0 || e.Fields[0].Field == "" {
			t.Fatalf("%T: refusal %v is not a 400 naming a field", v, err)
		}
		return
	}
	again, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("%T: accepted body does not encode: %v", v, err)
	}
	var w T
	if err := decodeJSON(again, &w); err != nil {
		t.Fatalf("%T: re-encoded body %s refused: %v", v, again, err)
	}
	if fields := w.Validate(); len(fields) > 0 {
		t.Fatalf("%T: re-encoded body %s invalid: %v", v, again, fields)
	}
	if third, _ := json.Marshal(w); string(third) != string(again) {
		t.Fatalf("%T: round trip changed the body: %s then %s", v, again, third)
	}
}
