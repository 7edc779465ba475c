package cluster

import (
	"context"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
)

// activations tracks the grains alive on this node, per kind. The library counts
// activations too, but cannot list them, and a graceful leave needs the list to
// passivate them.
type activations struct {
	mu     sync.Mutex
	byKind map[string]map[string]*actor.PID
	onNew  func(kind string)
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
			next(c, env)
		}
	}))
	return &out
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
