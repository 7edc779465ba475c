package cluster

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/cluster/clusterpb"
)

// GrainCaller is the grain client as its users see it. Package actors declares the
// same method set locally and receives a *Client, so it never imports this package.
type GrainCaller interface {
	// Call sends req to the grain kind/identity and returns its reply. A grain that
	// refuses or fails the request answers with an *actorpb.ErrorReply, which comes
	// back as the reply; actorpb.As turns it into an *actorpb.Error and checks the
	// type of any other reply.
	Call(ctx context.Context, kind, identity string, req proto.Message) (proto.Message, error)
}

var _ GrainCaller = (*Client)(nil)

// Client calls grains anywhere in the cluster. It is safe for concurrent use. Every
// call is sent at most once (the library's retries re-send on timeout, which would run a
// side effect twice), is bounded by the node's RequestTimeout or the caller's earlier
// deadline, and carries the context's correlation ID and idempotency key as message
// headers (see clusterpb.WithCorrelationID). With tracing on (Config.Tracing), every
// call is a client span whose W3C trace context travels in the headers too.
type Client struct {
	node     *Node
	inflight inflight

	mu    sync.Mutex
	calls map[*sender]struct{}
}

// Call implements GrainCaller. A call whose grain's member leaves the cluster (it
// crashed, or was dropped) fails at once with ErrUnavailable: a request that reached a
// dead node is never answered, and waiting out the timeout would hold the caller (a
// session's turn, say) for minutes. Errors: ErrNotProtobuf (rejected before sending),
// ErrUnavailable, ErrTimeout (wrapping context.DeadlineExceeded when the caller's
// deadline ran out) or context.Canceled. A grain's refusal is a reply, not an error:
// an *actorpb.ErrorReply, counted as outcome "refused".
func (cl *Client) Call(ctx context.Context, kind, identity string, req proto.Message) (proto.Message, error) {
	if cl.node.tracer == nil || req == nil {
		return cl.call(ctx, kind, identity, req)
	}
	method := string(req.ProtoReflect().Descriptor().Name())
	ctx, span := cl.node.tracer.Start(ctx, kind+"/"+method, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(rpcAttrs(kind, method, cl.node.ID())...))
	defer span.End()
	span.SetAttributes(attribute.String("kowai.grain.identity", identity))
	reply, err := cl.call(ctx, kind, identity, req)
	switch r := reply.(type) {
	case nil:
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "grain call failed")
		}
	case *actorpb.ErrorReply:
		span.SetAttributes(attribute.String("kowai.grain.error_code", r.GetCode().String()))
		span.SetStatus(codes.Error, r.GetMessage())
	}
	return reply, err
}

// rpcAttrs are the attributes of a grain call's client and server spans, after
// OpenTelemetry's RPC conventions: the kind is the service, the message the method.
func rpcAttrs(kind, method, nodeID string) []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String("rpc.system", "protoactor"),
		attribute.String("rpc.service", kind),
		attribute.String("rpc.method", method),
		attribute.String("kowai.node.id", nodeID),
	}
}

// call is Call without its span.
func (cl *Client) call(ctx context.Context, kind, identity string, req proto.Message) (proto.Message, error) {
	m := cl.node.metrics
	if err := checkProto(req); err != nil {
		m.requests.WithLabelValues(kind, outcomeInvalid).Inc()
		return nil, fmt.Errorf("grain %s/%s: %w", kind, identity, err)
	}
	c := cl.node.cluster()
	if c == nil {
		m.requests.WithLabelValues(kind, outcomeUnavailable).Inc()
		return nil, fmt.Errorf("grain %s/%s: %w: node not started", kind, identity, ErrUnavailable)
	}
	timeout := cl.node.cfg.RequestTimeout
	byDeadline := false
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout, byDeadline = time.Until(dl), true
	}
	if err := ctx.Err(); err != nil || timeout <= 0 {
		m.requests.WithLabelValues(kind, outcomeTimeout).Inc()
		return nil, fmt.Errorf("grain %s/%s: %w: %w", kind, identity, ErrTimeout, context.DeadlineExceeded)
	}

	cl.inflight.add(1)
	defer cl.inflight.add(-1)
	start := time.Now()
	s := newSender(ctx, c.ActorSystem, cl.node.tracer != nil)
	cl.track(s)
	defer cl.untrack(s)
	stop := context.AfterFunc(ctx, s.cancel)
	res, err := c.Request(identity, kind, req,
		cluster.WithTimeout(timeout), cluster.WithRetryCount(1), cluster.WithContext(s))
	stop()
	m.duration.WithLabelValues(kind).Observe(time.Since(start).Seconds())

	reply, outcome, err := classify(ctx, s, res, err)
	if outcome == outcomeTimeout && byDeadline && !errors.Is(err, context.DeadlineExceeded) {
		// The future timed out on the caller's deadline a moment before ctx did.
		err = fmt.Errorf("%w: %w", err, context.DeadlineExceeded)
	}
	m.requests.WithLabelValues(kind, outcome).Inc()
	if err == nil {
		return reply, nil
	}
	if outcome == outcomeTimeout || outcome == outcomeUnavailable {
		cl.node.log.Warn("grain call failed", "kind", kind, "identity", identity,
			"outcome", outcome, "correlation_id", clusterpb.CorrelationID(ctx), "error", err)
	}
	return nil, fmt.Errorf("grain %s/%s: %w", kind, identity, err)
}

// classify turns the library's (reply, error) into kowai's reply, outcome label and error.
// A grain's ErrorReply stays the reply, so that one function, actorpb.As, turns it into
// an error for every caller, but is counted as refused. The library reports every
// failure as "have reached max retries", so what happened is read from the future the
// sender recorded.
func classify(ctx context.Context, s *sender, res any, err error) (proto.Message, string, error) {
	switch r := res.(type) {
	case memberLeft:
		return nil, outcomeUnavailable, fmt.Errorf("%w: member %s left the cluster during the call", ErrUnavailable, r.address)
	case callCanceled:
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, outcomeTimeout, fmt.Errorf("%w: %w", ErrTimeout, ctx.Err())
		}
		return nil, outcomeCanceled, ctx.Err()
	case *actorpb.ErrorReply:
		return r, outcomeRefused, nil
	case proto.Message:
		return r, outcomeOK, nil
	case nil:
	default:
		return nil, outcomeInvalid, fmt.Errorf("%w: the reply is a %T", ErrNotProtobuf, res)
	}
	f := s.sent()
	if f == nil {
		return nil, outcomeUnavailable, fmt.Errorf("%w: no activation: %w", ErrUnavailable, err)
	}
	if _, ferr := f.Result(); errors.Is(ferr, actor.ErrTimeout) {
		return nil, outcomeTimeout, ErrTimeout
	}
	return nil, outcomeUnavailable, fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// checkProto accepts only messages whose Go type is the generated type registered for
// their protobuf name: anything else cannot be decoded into the same type on another node.
func checkProto(m proto.Message) error {
	if m == nil {
		return fmt.Errorf("%w: nil message", ErrNotProtobuf)
	}
	rt := reflect.TypeOf(m)
	if rt.Kind() == reflect.Pointer && reflect.ValueOf(m).IsNil() {
		return fmt.Errorf("%w: nil %s", ErrNotProtobuf, rt)
	}
	if _, ok := generatedTypes.Load(rt); ok {
		return nil
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(m.ProtoReflect().Descriptor().FullName())
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrNotProtobuf, rt, err)
	}
	if want := reflect.TypeOf(mt.Zero().Interface()); want != rt {
		return fmt.Errorf("%w: %s is not the generated type %s", ErrNotProtobuf, rt, want)
	}
	generatedTypes.Store(rt, struct{}{})
	return nil
}

// generatedTypes holds the Go types checkProto found to be the generated type of
// their protobuf name. The global registry never drops a type, so the answer for a
// type never changes; looking it up again cost about 1% of a chat turn's CPU (two
// grain calls per turn, each a registry lookup by name and a reflection of the
// type's zero value).
var generatedTypes sync.Map // reflect.Type -> struct{}

// callCanceled completes a call's future when the caller's context ends first. It never
// leaves the node: it is sent to the local future only.
type callCanceled struct{}

// memberLeft completes a call's future when the member it was sent to leaves the
// cluster. Like callCanceled, it never leaves the node.
type memberLeft struct{ address string }

func (cl *Client) track(s *sender) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.calls == nil {
		cl.calls = map[*sender]struct{}{}
	}
	cl.calls[s] = struct{}{}
}

func (cl *Client) untrack(s *sender) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	delete(cl.calls, s)
}

// memberLeft fails the calls in flight to the member at address. It runs on the
// library's topology publisher, so it only sends to local futures and never blocks.
func (cl *Client) memberLeft(address string) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	for s := range cl.calls {
		s.memberLeft(address)
	}
}

// sender is the library's sending context for one call. It adds the call's headers,
// remembers the future it created (so the outcome can be classified), and completes that
// future early when the caller's context ends.
type sender struct {
	*actor.RootContext
	sys    *actor.ActorSystem
	header map[string]string

	mu       sync.Mutex
	future   *actor.Future
	target   string // the address future's request was sent to
	canceled bool
}

func newSender(ctx context.Context, sys *actor.ActorSystem, traced bool) *sender {
	s := &sender{RootContext: sys.Root, sys: sys}
	if id := clusterpb.CorrelationID(ctx); id != "" {
		s.header = map[string]string{clusterpb.HeaderCorrelationID: id}
	}
	if key := clusterpb.IdempotencyKey(ctx); key != "" {
		if s.header == nil {
			s.header = map[string]string{}
		}
		s.header[clusterpb.HeaderIdempotencyKey] = key
	}
	// With tracing off the context is not searched for a span: there is none.
	if traced && trace.SpanContextFromContext(ctx).IsValid() {
		if s.header == nil {
			s.header = map[string]string{}
		}
		clusterpb.InjectTrace(ctx, s.header)
	}
	return s
}

// RequestFuture overrides the root context's, which drops headers.
func (s *sender) RequestFuture(pid *actor.PID, message any, timeout time.Duration) *actor.Future {
	f := actor.NewFuture(s.sys, timeout)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.future, s.target = f, pid.GetAddress()
	if s.canceled {
		s.sys.Root.Send(f.PID(), callCanceled{})
		return f
	}
	s.sys.Root.Send(pid, &actor.MessageEnvelope{Header: s.header, Message: message, Sender: f.PID()})
	return f
}

func (s *sender) cancel() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.canceled = true
	if s.future != nil {
		s.sys.Root.Send(s.future.PID(), callCanceled{})
	}
}

func (s *sender) memberLeft(address string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.future != nil && s.target == address {
		s.sys.Root.Send(s.future.PID(), memberLeft{address: address})
	}
}

func (s *sender) sent() *actor.Future {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.future
}

// inflight counts calls in progress so that a graceful leave can wait for them.
type inflight struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed while n == 0; nil means "closed" before first use
}

func (f *inflight) add(d int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == 0 && d > 0 {
		f.idle = make(chan struct{})
	}
	f.n += d
	if f.n == 0 && f.idle != nil {
		close(f.idle)
	}
}

func (f *inflight) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

// wait returns nil once no call is in progress, or ctx's error with calls still running.
func (f *inflight) wait(ctx context.Context) error {
	f.mu.Lock()
	idle := f.idle
	n := f.n
	f.mu.Unlock()
	if n == 0 {
		return nil
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%d grain calls still in flight: %w", f.count(), ctx.Err())
	}
}
