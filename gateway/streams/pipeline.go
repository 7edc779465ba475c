package streams

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// pipelineFlushers bounds the round trips a Redis store has in flight for
// Begin and Append; calls made while they are all busy wait and go
// together in the next pipeline.
const pipelineFlushers = 4

// pipelineMax bounds the calls sent in one pipeline.
const pipelineMax = 256

// pipelineTimeout bounds one pipeline's round trip.
const pipelineTimeout = 5 * time.Second

// scriptCall is one script run queued for a pipeline.
type scriptCall struct {
	ctx    context.Context
	script *redis.Script
	keys   []string
	args   []any
	cmd    *redis.Cmd
	done   chan struct{}
}

// pipeliner sends the script runs of many streams in shared round trips
// (group commit): a call made while pipelineFlushers round trips are in
// flight waits in a queue, and the next flusher sends everything queued in
// one pipeline. Under light load every call goes out at once, alone; under
// load Redis reads and answers many calls per system call. Flushers are
// goroutines that end when the queue is empty.
type pipeliner struct {
	rdb redis.UniversalClient

	mu       sync.Mutex
	queue    []*scriptCall
	flushers int
}

// run sends script with keys and args in the next pipeline and returns its
// answer, or ctx's error when ctx ends first.
func (p *pipeliner) run(ctx context.Context, script *redis.Script, keys []string, args ...any) *redis.Cmd {
	c := &scriptCall{ctx: ctx, script: script, keys: keys, args: args, done: make(chan struct{})}
	p.mu.Lock()
	p.queue = append(p.queue, c)
	if p.flushers < pipelineFlushers {
		p.flushers++
		go p.flush()
	}
	p.mu.Unlock()
	select {
	case <-c.done:
		return c.cmd
	case <-ctx.Done():
		cmd := redis.NewCmd(ctx)
		cmd.SetErr(ctx.Err())
		return cmd
	}
}

// flush sends the queued calls, a pipeline at a time, until none is left.
func (p *pipeliner) flush() {
	for {
		p.mu.Lock()
		n := min(len(p.queue), pipelineMax)
		if n == 0 {
			p.flushers--
			p.mu.Unlock()
			return
		}
		batch := p.queue[:n:n]
		p.queue = p.queue[n:]
		if len(p.queue) == 0 {
			p.queue = nil
		}
		p.mu.Unlock()
		p.send(batch)
	}
}

// send runs batch in one pipeline; a script Redis does not hold yet
// (NOSCRIPT) is loaded and run again on its own.
func (p *pipeliner) send(batch []*scriptCall) {
	ctx, cancel := context.WithTimeout(context.Background(), pipelineTimeout)
	defer cancel()
	pipe := p.rdb.Pipeline()
	live := batch[:0:0]
	for _, c := range batch {
		if err := c.ctx.Err(); err != nil {
			// Its caller is gone: do not write what it gave up on.
			c.cmd = redis.NewCmd(c.ctx)
			c.cmd.SetErr(err)
			close(c.done)
			continue
		}
		c.cmd = c.script.EvalSha(ctx, pipe, c.keys, c.args...)
		live = append(live, c)
	}
	if len(live) > 0 {
		// Each command carries its own error; Exec's is the first of them.
		_, _ = pipe.Exec(ctx)
	}
	for _, c := range live {
		if redis.HasErrorPrefix(c.cmd.Err(), "NOSCRIPT") {
			c.cmd = c.script.Run(ctx, p.rdb, c.keys, c.args...)
		}
		close(c.done)
	}
}
