package cluster

import (
	"context"
	"maps"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/kowai/kowai/cluster/clusterpb"
)

// activations tracks the grains alive on this node, per kind. The library counts
// activations too, but cannot list them, and a graceful leave needs the list to
// passivate them.
type activations struct {
	mu     sync.Mutex
	byKind map[string]map[string]*actor.PID
	onNew  func(kind string)

	// tracer, when not nil, records a server span for each traced request a grain
	// receives; nodeID names the node in it. Both are set before the node starts.
	tracer trace.Tracer
	nodeID func() string
}

func newActivations(onNew func(kind string)) *activations {
	return &activations{byKind: map[string]map[string]*actor.PID{}, onNew: onNew}
}

// instrument returns a copy of k whose grains report their start and stop here.
func (a *activations) instrument(k *cluster.Kind) *cluster.Kind {
	name := k.Kind
	a.mu.Lock()
	a.byKind[name] = map[string]*actor.PID{}
	a.mu.Unlock()
	out := *k
	out.Props = k.Props.Clone(actor.WithReceiverMiddleware(func(next actor.ReceiverFunc) actor.ReceiverFunc {
		return func(c actor.ReceiverContext, env *actor.MessageEnvelope) {
			switch env.Message.(type) {
			case *actor.Started:
				a.add(name, c.Self())
			case *actor.Stopped:
				a.remove(name, c.Self())
			}
			if a.tracer != nil && env.Header != nil && env.Header.Get(clusterpb.HeaderTraceParent) != "" {
				if m, ok := env.Message.(proto.Message); ok {
					a.serve(name, m, c, env, next)
					return
				}
			}
			next(c, env)
		}
	}))
	return &out
}

// serve hands a traced request to the grain inside a server span, child of the
// caller's span. The grain sees a copy of the header whose trace context names the
// server span, so what it starts from the header (clusterpb.ContextFromHeader), even
// after this message, is the server span's child.
func (a *activations) serve(kind string, m proto.Message, c actor.ReceiverContext, env *actor.MessageEnvelope, next actor.ReceiverFunc) {
	method := string(m.ProtoReflect().Descriptor().Name())
	ctx := clusterpb.TraceFromHeader(context.Background(), env.Header)
	ctx, span := a.tracer.Start(ctx, kind+"/"+method, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(rpcAttrs(kind, method, a.nodeID())...))
	defer span.End()
	h := maps.Clone(env.Header)
	clusterpb.InjectTrace(ctx, h)
	next(c, &actor.MessageEnvelope{Header: h, Message: env.Message, Sender: env.Sender})
}

// add records pid; a restart delivers Started again to the same PID and is not counted.
func (a *activations) add(kind string, pid *actor.PID) {
	a.mu.Lock()
	_, seen := a.byKind[kind][pid.Id]
	a.byKind[kind][pid.Id] = pid
	a.mu.Unlock()
	if !seen && a.onNew != nil {
		a.onNew(kind)
	}
}

func (a *activations) remove(kind string, pid *actor.PID) {
	a.mu.Lock()
	delete(a.byKind[kind], pid.Id)
	a.mu.Unlock()
}

// counts returns the number of live activations per kind, every hosted kind included.
func (a *activations) counts() map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]int, len(a.byKind))
	for k, pids := range a.byKind {
		out[k] = len(pids)
	}
	return out
}

func (a *activations) all() []*actor.PID {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []*actor.PID
	for _, pids := range a.byKind {
		for _, pid := range pids {
			out = append(out, pid)
		}
	}
	return out
}

// poisonAll poisons every live activation and waits until they have stopped or ctx
// ends. Poison is queued behind the messages already in a grain's mailbox, so a grain
// finishes what it was given and then stops; it sees *actor.Stopping first, which is
// where it saves its final snapshot. It returns how many grains were still alive.
func (a *activations) poisonAll(ctx context.Context, root *actor.RootContext) int {
	pids := a.all()
	futures := make([]*actor.Future, len(pids))
	for i, pid := range pids {
		futures[i] = root.PoisonFuture(pid)
	}
	done := make(chan struct{})
	go func() {
		for _, f := range futures {
			_ = f.Wait() // a grain that is already gone answers with a dead letter: nothing to wait for
		}
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return len(pids)
}
