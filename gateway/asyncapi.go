package gateway

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/kowai/kowai/internal/jsonschema"
)

// wsChatPath is the chat WebSocket's route.
const wsChatPath = "/api/v1/chat/ws"

// errFrameTags reports frame structs whose frame tags do not describe them.
var errFrameTags = errors.New("gateway: WebSocket frame tags")

// wsFrame is one WebSocket frame type, read from a frame struct's tags.
type wsFrame struct {
	// name is the value of the frame's "type" field.
	name string
	// fromClient is true for frames the client sends.
	fromClient bool
	// schema is the frame's JSON schema.
	schema map[string]any
}

// frames reads the frame tags of a frame struct (wsClientFrame or
// wsServerFrame): the "type" field lists the frame types; every other field
// lists the frame types it belongs to, "!" marking it required there. The
// frames come back in the order the type field lists them.
func (sb *schemaBuilder) frames(t reflect.Type, fromClient bool) ([]wsFrame, error) {
	typeField, ok := t.FieldByName("Type")
	if !ok || jsonName(typeField) != "type" {
		return nil, fmt.Errorf("%w: %s has no Type field named \"type\"", errFrameTags, t.Name())
	}
	var names []string
	for _, n := range strings.Split(typeField.Tag.Get("frame"), ",") {
		if n = strings.TrimSuffix(strings.TrimSpace(n), "!"); n != "" {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%w: %s.Type lists no frame types", errFrameTags, t.Name())
	}
	props := make(map[string]map[string]any, len(names))
	required := make(map[string][]string, len(names))
	for _, n := range names {
		props[n] = map[string]any{"type": map[string]any{"type": "string", "const": n, "description": "the frame type"}}
		required[n] = []string{"type"}
	}
	for i := range t.NumField() {
		f := t.Field(i)
		name := jsonName(f)
		if !f.IsExported() || name == "-" || f.Name == "Type" {
			continue
		}
		tag := f.Tag.Get("frame")
		if tag == "" {
			return nil, fmt.Errorf("%w: %s.%s has no frame tag naming the frame types it belongs to", errFrameTags, t.Name(), f.Name)
		}
		s := sb.Schema(f.Type)
		if d := f.Tag.Get("doc"); d != "" {
			s = jsonschema.WithDescription(s, d)
		}
		for _, n := range strings.Split(tag, ",") {
			n = strings.TrimSpace(n)
			frame, req := strings.CutSuffix(n, "!")
			if props[frame] == nil {
				return nil, fmt.Errorf("%w: %s.%s names frame type %q, which %s.Type does not list", errFrameTags, t.Name(), f.Name, frame, t.Name())
			}
			props[frame][name] = s
			if req {
				required[frame] = append(required[frame], name)
			}
		}
	}
	out := make([]wsFrame, 0, len(names))
	for _, n := range names {
		sort.Strings(required[n])
		out = append(out, wsFrame{name: n, fromClient: fromClient, schema: map[string]any{
			"type": "object", "properties": props[n], "required": required[n], "additionalProperties": false,
			"description": frameSummary(n),
		}})
	}
	return out, nil
}

// jsonName is the field's JSON member name.
func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "" {
		return f.Name
	}
	return name
}

// frameTitle is a frame type's name in schema and operation names:
// run_event is RunEvent.
func frameTitle(name string) string {
	parts := strings.Split(name, "_")
	for i, p := range parts {
		if p != "" {
			parts[i] = strings.ToUpper(p[:1]) + p[1:]
		}
	}
	return strings.Join(parts, "")
}

// frameSummary says what a frame type is for; a frame type without an entry
// here gets a placeholder, which TestAsyncAPIFrames refuses.
func frameSummary(name string) string {
	switch name {
	case "auth":
		return "Authenticates the connection: the first frame when the upgrade request carried no token, or later a newer token of the same user before the current one expires."
	case "message":
		return "Runs a chat turn: its reply streams back as token frames, then one done frame, or an error frame."
	case "token":
		return "The next piece of a reply being streamed."
	case "done":
		return "The end of a turn: the stored reply and its usage."
	case "error":
		return "A refused frame or a failed turn, with the status the same failure gets over REST."
	case "resume":
		return "Continues a reply's stream after the entry the client holds, on any node: the missing entries, then the live ones, as token and restart frames, then done or error. Only the stream's owner may; anyone else gets 404."
	case "restart":
		return "The turn is produced again from the start (its node was lost): drop the reply's text received so far; the new attempt's tokens follow."
	case "subscribe":
		return "Follows a workflow run on this connection: subscribed, then its events as run_event frames until the result. The run is checked as GET /workflows/{run_id}/events checks it."
	case "unsubscribe":
		return "Stops following a workflow run; no event of it arrives after the unsubscribed frame."
	case "subscribed":
		return "The connection now follows the run; its run_event frames follow."
	case "unsubscribed":
		return "The connection no longer follows the run."
	case "run_event":
		return "An event of a followed workflow run, numbered as on the REST events stream; the last one, of event_type result, carries the run's final status and result and ends the subscription."
	}
	return "The " + name + " frame."
}

// AsyncAPI builds the AsyncAPI 3.0 document of the chat WebSocket from the
// frame types in ws.go. host and protocol ("ws" or "wss") name the server
// the document lists: the node the client reached.
func (s *Server) AsyncAPI(host, protocol string) (map[string]any, error) {
	sb := newSchemaBuilder()
	client, err := sb.frames(reflect.TypeOf(wsClientFrame{}), true)
	if err != nil {
		return nil, err
	}
	server, err := sb.frames(reflect.TypeOf(wsServerFrame{}), false)
	if err != nil {
		return nil, err
	}
	runEvents, err := sb.frames(reflect.TypeOf(wsRunEventFrame{}), false)
	if err != nil {
		return nil, err
	}
	server = append(server, runEvents...)
	channelMessages := map[string]any{}
	messages := map[string]any{}
	operations := map[string]any{}
	for _, f := range slices.Concat(client, server) {
		if _, dup := messages[f.name]; dup {
			return nil, fmt.Errorf("%w: frame type %q is declared by both the client and the server frames", errFrameTags, f.name)
		}
		schemaName := frameTitle(f.name) + "Frame"
		if _, clash := sb.Components[schemaName]; clash {
			return nil, fmt.Errorf("%w: frame schema %s clashes with a type of the same name", errFrameTags, schemaName)
		}
		sb.Components[schemaName] = f.schema
		messages[f.name] = map[string]any{
			"name":        f.name,
			"title":       schemaName,
			"summary":     frameSummary(f.name),
			"contentType": "application/json",
			"payload":     map[string]any{"$ref": "#/components/schemas/" + schemaName},
		}
		channelMessages[f.name] = map[string]any{"$ref": "#/components/messages/" + f.name}
		action, verb := "send", "The server sends"
		if f.fromClient {
			action, verb = "receive", "The client sends"
		}
		operations[action+frameTitle(f.name)] = map[string]any{
			"action":   action,
			"channel":  map[string]any{"$ref": "#/channels/chat"},
			"summary":  verb + " a " + f.name + " frame.",
			"messages": []any{map[string]any{"$ref": "#/channels/chat/messages/" + f.name}},
		}
	}
	return map[string]any{
		"asyncapi": "3.0.0",
		"info": map[string]any{
			"title":       "kowai chat WebSocket",
			"version":     "1",
			"description": wsDescription(),
			"contact":     apiContact(),
		},
		"defaultContentType": "application/json",
		"servers": map[string]any{
			"node": map[string]any{
				"host":        host,
				"protocol":    protocol,
				"description": "The kowai node that served this document.",
				"security":    []any{map[string]any{"$ref": "#/components/securitySchemes/bearer"}},
			},
		},
		"channels": map[string]any{
			"chat": map[string]any{
				"address":     wsChatPath,
				"title":       "Chat",
				"description": "One connection runs many chat turns, up to " + fmt.Sprint(wsMaxTurns) + " at once; every frame is a JSON text message.",
				"servers":     []any{map[string]any{"$ref": "#/servers/node"}},
				"messages":    channelMessages,
				"bindings": map[string]any{"ws": map[string]any{
					"method": "GET",
					"headers": map[string]any{"type": "object", "properties": map[string]any{
						"Authorization": map[string]any{"type": "string", "description": "Bearer TOKEN; without it, the first frame must be an auth frame"},
					}},
					"bindingVersion": "0.1.0",
				}},
			},
		},
		"operations": operations,
		"components": map[string]any{
			"schemas":  sb.Components,
			"messages": messages,
			"securitySchemes": map[string]any{
				"bearer": map[string]any{"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
					"description": "An access token or API key, on the upgrade request's Authorization header or in the first (auth) frame."},
			},
		},
	}, nil
}

// wsDescription is the protocol in prose; its limits and close codes come
// from ws.go.
func wsDescription() string {
	return fmt.Sprintf("The frames of kowai's chat WebSocket, `%s`. Authenticate with `Authorization: Bearer TOKEN` on the "+
		"upgrade request, or send an `auth` frame first, within %s; a later `auth` frame with a newer token of the same user "+
		"keeps the connection going past the first token's expiry. Then send `message` frames: each turn streams `token` "+
		"frames and ends with one `done` or `error` frame, all carrying the message frame's `id`. A `subscribe` frame "+
		"follows a workflow run (at most %d at once): `run_event` frames until its result, or an `unsubscribe`. Frames are JSON text "+
		"messages of at most %d KiB. Up to %d turns run at once on one connection. The server pings every %s and closes a "+
		"connection silent for %s. Close codes: 1000 on a normal end; 1008 (policy violation) when authentication fails "+
		"or times out, or when the client stops reading and %d frames wait for it; %d when the access token expired; %d "+
		"when the session was revoked, the account disabled, or an auth frame carried another user's token; 1011 when a "+
		"write fails; 1001 when a ping cannot be sent.",
		wsChatPath, wsAuthTimeout, wsMaxSubscriptions, wsMaxFrameBytes>>10, wsMaxTurns, wsPingInterval, wsPongWait, wsSendQueue,
		WSCloseTokenExpired, WSCloseRevoked)
}
