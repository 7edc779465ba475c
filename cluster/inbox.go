package cluster

import (
	"fmt"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"
)

// Inbox receives the messages grains push to one caller, such as the token
// deltas of a streamed reply. Its address and ID travel inside a request (as
// a PID the grain sends to), so a grain on any node can reach it.
//
// Messages arrive on C in the order each sender sent them. When the consumer
// falls behind, C's buffer fills and further messages wait in the inbox's
// mailbox; the consumer is expected to drain C promptly into whatever bounded
// queue it enforces. Close stops the inbox; messages sent afterwards are
// dropped by the actor system as dead letters.
type Inbox struct {
	sys  *actor.ActorSystem
	pid  *actor.PID
	ch   chan proto.Message
	done chan struct{}
	once sync.Once
}

// NewInbox spawns an inbox on this node with a channel buffer of buffer
// messages. It fails with ErrUnavailable before the node has started.
func (cl *Client) NewInbox(buffer int) (*Inbox, error) {
	c := cl.node.cluster()
	if c == nil {
		return nil, fmt.Errorf("inbox: %w: node not started", ErrUnavailable)
	}
	in := &Inbox{sys: c.ActorSystem, ch: make(chan proto.Message, buffer), done: make(chan struct{})}
	in.pid = c.ActorSystem.Root.Spawn(actor.PropsFromFunc(in.receive))
	return in, nil
}

// receive forwards protobuf messages to C; everything else (lifecycle
// messages) is ignored.
func (in *Inbox) receive(ctx actor.Context) {
	m, ok := ctx.Message().(proto.Message)
	if !ok {
		return
	}
	select {
	case in.ch <- m:
	case <-in.done:
	}
}

// Address is the inbox's node address, for the request's PID.
func (in *Inbox) Address() string { return in.pid.Address }

// ID is the inbox's process ID on its node, for the request's PID.
func (in *Inbox) ID() string { return in.pid.Id }

// C delivers the messages pushed to the inbox.
func (in *Inbox) C() <-chan proto.Message { return in.ch }

// Close stops the inbox. It is safe to call more than once.
func (in *Inbox) Close() error {
	in.once.Do(func() {
		close(in.done)
		in.sys.Root.Stop(in.pid)
	})
	return nil
}
