package streams

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// pipelineFlushers bounds the round trips a Redis store has in flight for
// Begin and Append; calls made while they are all busy wait and go
// together in the next pipeline. One: under load, Redis's CPU per reply
// is mostly per round trip (its event loop, system calls and script
// call), so the fewer and fuller the pipelines, the less it spends; a
// call made while none is in flight goes out at once.
const pipelineFlushers = 1

// pipelineMax bounds the calls sent in one pipeline.
const pipelineMax = 256

// pipelineTimeout bounds one pipeline's round trip.
const pipelineTimeout = 5 * time.Second

// scriptCall is one script run queued for a pipeline (Begin's).
type scriptCall struct {
	ctx    context.Context
	script *redis.Script
	keys   []string
	args   []any
	cmd    *redis.Cmd
	done   chan struct{}
}

// appendCall is one stream's batch queued for a pipeline: the arguments of
// one call of appendScript.
type appendCall struct {
	ctx         context.Context
	streamKey   string
	metaKey     string
	awaitKey    string
	first, last int64
	batch       []byte
	owner       string
	// final is set when batch ends with the stream's final entry.
	final bool
	// res is appendScript's answer for this call: int64(1), or a string
	// naming the refusal.
	res  any
	err  error
	done chan struct{}
}

// pipeliner sends the script runs of many streams in shared round trips
// (group commit): a call made while pipelineFlushers round trips are in
// flight waits in a queue, and the next flusher sends everything queued in
// one pipeline. The appends of one pipeline go as one run of appendScript
// when the client is a single Redis server (a script's keys need not share
// a hash slot there), so Redis pays its per-script cost once per round
// trip instead of once per stream. Under light load every call goes out at
// once, alone; under load Redis reads and answers many calls per system
// call. Flushers are goroutines that end when the queue is empty.
type pipeliner struct {
	rdb redis.UniversalClient
	// together is set when one script run may touch every stream's keys.
	together bool
	maxLen   int
	ttl      int64 // milliseconds

	mu       sync.Mutex
	scripts  []*scriptCall
	appends  []*appendCall
	flushers int
}

// newPipeliner returns a pipeliner over rdb for streams trimmed to maxLen
// entries and expiring ttl after their last append.
func newPipeliner(rdb redis.UniversalClient, maxLen int, ttl time.Duration) *pipeliner {
	_, single := rdb.(*redis.Client)
	return &pipeliner{rdb: rdb, together: single, maxLen: maxLen, ttl: ttl.Milliseconds()}
}

// wake starts a flusher when fewer than pipelineFlushers run; the caller
// holds mu.
func (p *pipeliner) wake() {
	if p.flushers < pipelineFlushers {
		p.flushers++
		go p.flush()
	}
}

// run sends script with keys and args in the next pipeline and returns its
// answer, or ctx's error when ctx ends first.
func (p *pipeliner) run(ctx context.Context, script *redis.Script, keys []string, args ...any) *redis.Cmd {
	c := &scriptCall{ctx: ctx, script: script, keys: keys, args: args, done: make(chan struct{})}
	p.mu.Lock()
	p.scripts = append(p.scripts, c)
	p.wake()
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

// append runs appendScript for c's stream in the next pipeline and returns
// its answer (see appendCall.res), or ctx's error when ctx ends first.
func (p *pipeliner) append(ctx context.Context, c *appendCall) (any, error) {
	c.done = make(chan struct{})
	p.mu.Lock()
	p.appends = append(p.appends, c)
	p.wake()
	p.mu.Unlock()
	select {
	case <-c.done:
		return c.res, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// flush sends the queued calls, a pipeline at a time, until none is left.
func (p *pipeliner) flush() {
	for {
		p.mu.Lock()
		ns := min(len(p.scripts), pipelineMax)
		na := min(len(p.appends), pipelineMax-ns)
		if ns+na == 0 {
			p.flushers--
			p.mu.Unlock()
			return
		}
		scripts, appends := p.scripts[:ns:ns], p.appends[:na:na]
		p.scripts, p.appends = p.scripts[ns:], p.appends[na:]
		if len(p.scripts) == 0 {
			p.scripts = nil
		}
		if len(p.appends) == 0 {
			p.appends = nil
		}
		p.mu.Unlock()
		p.send(scripts, appends)
	}
}

// appendRun is one run of appendScript in a pipeline and the calls it
// answers, in order.
type appendRun struct {
	calls []*appendCall
	keys  []string
	args  []any
	cmd   *redis.Cmd
}

// send runs the calls in one pipeline; a script Redis does not hold yet
// (NOSCRIPT) is loaded and run again on its own.
func (p *pipeliner) send(scripts []*scriptCall, appends []*appendCall) {
	ctx, cancel := context.WithTimeout(context.Background(), pipelineTimeout)
	defer cancel()
	pipe := p.rdb.Pipeline()
	liveScripts := scripts[:0:0]
	for _, c := range scripts {
		if err := c.ctx.Err(); err != nil {
			// Its caller is gone: do not write what it gave up on.
			c.cmd = redis.NewCmd(c.ctx)
			c.cmd.SetErr(err)
			close(c.done)
			continue
		}
		c.cmd = c.script.EvalSha(ctx, pipe, c.keys, c.args...)
		liveScripts = append(liveScripts, c)
	}
	var runs []*appendRun
	for _, c := range appends {
		if err := c.ctx.Err(); err != nil {
			c.err = err
			close(c.done)
			continue
		}
		if len(runs) == 0 || !p.together {
			runs = append(runs, &appendRun{args: []any{p.maxLen, p.ttl}})
		}
		r := runs[len(runs)-1]
		r.calls = append(r.calls, c)
		final := ""
		if c.final {
			final = "1"
		}
		r.keys = append(r.keys, c.streamKey, c.metaKey, c.awaitKey)
		r.args = append(r.args, c.first, c.last, c.batch, c.owner, final)
	}
	for _, r := range runs {
		r.cmd = appendScript.EvalSha(ctx, pipe, r.keys, r.args...)
	}
	if len(liveScripts)+len(runs) > 0 {
		// Each command carries its own error; Exec's is the first of them.
		_, _ = pipe.Exec(ctx)
	}
	for _, c := range liveScripts {
		if redis.HasErrorPrefix(c.cmd.Err(), "NOSCRIPT") {
			c.cmd = c.script.Run(ctx, p.rdb, c.keys, c.args...)
		}
		close(c.done)
	}
	for _, r := range runs {
		if redis.HasErrorPrefix(r.cmd.Err(), "NOSCRIPT") {
			r.cmd = appendScript.Run(ctx, p.rdb, r.keys, r.args...)
		}
		res, err := r.cmd.Slice()
		if err == nil && len(res) != len(r.calls) {
			err = fmt.Errorf("append script answered %d results for %d streams", len(res), len(r.calls))
		}
		for i, c := range r.calls {
			if err != nil {
				c.err = err
			} else {
				c.res = res[i]
			}
			close(c.done)
		}
	}
}

// errAppendAnswer reports an answer of appendScript that is none of those
// it gives.
var errAppendAnswer = errors.New("unexpected answer of the append script")
