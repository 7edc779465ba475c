package durability

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
)

// How the simulated clients behave.
const (
	conversations = 50
	users         = 5
	// maxTurns bounds every conversation's loop; a scenario normally stops the load
	// long before.
	maxTurns = 200
	// maxAttempts bounds the attempts of one turn, all with the turn's idempotency key.
	maxAttempts = 12
	// attemptTimeout is how long a client waits for one attempt before it retries.
	attemptTimeout = 3 * time.Second
	// thinkTime is a client's pause between two turns of its conversation.
	thinkTime = 100 * time.Millisecond
)

// conversation is one simulated client's conversation: its turns run one after the
// other, as a person in a chat window sends them.
type conversation struct {
	index int
	id    string
	token string
	turns []*turnRecord
}

// turnRecord is one turn as its client saw it.
type turnRecord struct {
	key, content string
	// acked: the client got a 200; messageID and response are what it said.
	acked               bool
	messageID, response string
	// attemptStart is when the acknowledged attempt was sent; ackedAt when its answer came.
	attemptStart, ackedAt time.Time
	// failures are the failed attempts, as node:outcome, and current the attempt under
	// way, for the report of a conversation that does not move on.
	failures []string
	current  string
}

// load drives the conversations through the gateways of a cluster's live nodes.
type load struct {
	c     *kowaiCluster
	tag   string
	convs []*conversation

	stop  atomic.Bool
	acked atomic.Int64
	wg    sync.WaitGroup

	mu      sync.Mutex
	retries int
	errors  map[string]int
	// fatal are answers no retry can fix (4xx other than 409 and 429): each fails the test.
	fatal []string
}

// newLoad registers the users and prepares the conversations; their IDs are chosen by
// the client, so that even a first turn can be retried safely.
func newLoad(c *kowaiCluster, tag string) *load {
	c.t.Helper()
	l := &load{c: c, tag: tag, errors: map[string]int{}}
	tokens := make([]string, users)
	for i := range tokens {
		tokens[i] = c.register(c.live()[i%len(c.live())], fmt.Sprintf("%s-u%d@durability.test", tag, i))
	}
	for i := range conversations {
		l.convs = append(l.convs, &conversation{index: i, id: uuid.Must(uuid.NewV7()).String(), token: tokens[i%users]})
	}
	return l
}

// start runs every conversation's client until stop is set, or maxTurns.
func (l *load) start() {
	for _, conv := range l.convs {
		l.wg.Go(func() {
			for i := 0; i < maxTurns && !l.stop.Load(); i++ {
				l.turn(conv)
				time.Sleep(thinkTime)
			}
		})
	}
}

// halt stops the clients after their current turn and waits for them.
func (l *load) halt() {
	l.stop.Store(true)
	l.wg.Wait()
}

// turn sends the conversation's next turn, retrying with the same idempotency key on
// another live node after a failure or a timeout, up to maxAttempts.
func (l *load) turn(conv *conversation) *turnRecord {
	n := len(conv.turns)
	rec := &turnRecord{key: fmt.Sprintf("%s-c%02d-t%03d", l.tag, conv.index, n)}
	rec.content = "durability turn " + rec.key
	l.mu.Lock()
	conv.turns = append(conv.turns, rec)
	l.mu.Unlock()
	body := map[string]string{"content": rec.content, "conversation_id": conv.id}
	for attempt := range maxAttempts {
		if attempt > 0 {
			l.mu.Lock()
			l.retries++
			l.mu.Unlock()
			time.Sleep(min(time.Duration(attempt)*100*time.Millisecond, time.Second))
		}
		live := l.c.live()
		node := live[(conv.index+n+attempt)%len(live)]
		start := time.Now()
		l.mu.Lock()
		rec.current = fmt.Sprintf("node%d since %s", node.index, start.Format(time.StampMilli))
		l.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
		status, raw, err := l.c.do(ctx, node, http.MethodPost, "/api/v1/chat/message", conv.token, rec.key, body)
		cancel()
		switch {
		case err != nil:
			l.count(rec, node, transportError(err))
			continue
		case status == http.StatusOK:
			var reply struct {
				ConversationID string `json:"conversation_id"`
				MessageID      string `json:"message_id"`
				Response       string `json:"response"`
			}
			if err := json.Unmarshal(raw, &reply); err != nil || reply.MessageID == "" || reply.ConversationID != conv.id {
				l.fail(fmt.Sprintf("turn %s: 200 with body %s (%v)", rec.key, raw, err))
				return rec
			}
			l.mu.Lock()
			rec.acked, rec.messageID, rec.response = true, reply.MessageID, reply.Response
			rec.attemptStart, rec.ackedAt = start, time.Now()
			l.mu.Unlock()
			l.acked.Add(1)
			return rec
		}
		l.count(rec, node, strconv.Itoa(status))
		if status < 500 && status != http.StatusConflict && status != http.StatusTooManyRequests {
			l.fail(fmt.Sprintf("turn %s on node %d: %d %s", rec.key, node.index, status, raw))
			return rec
		}
	}
	return rec
}

// transportError names a failed attempt that got no HTTP answer.
func transportError(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	}
	return "transport"
}

// count records a failed attempt.
func (l *load) count(rec *turnRecord, node *kowaiNode, outcome string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errors[outcome]++
	rec.failures = append(rec.failures, fmt.Sprintf("node%d:%s", node.index, outcome))
}

func (l *load) fail(msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fatal = append(l.fatal, msg)
}

// ackedSince reports whether every conversation has a turn acknowledged from an
// attempt sent after t.
func (l *load) ackedSince(t time.Time) error {
	var missing []string
	for _, conv := range l.convs {
		if l.firstAckAfter(conv, t).IsZero() {
			missing = append(missing, l.describe(conv))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%d of %d conversations have no turn acknowledged since %s: %s",
			len(missing), len(l.convs), t.Format(time.StampMilli), strings.Join(missing, "; "))
	}
	return nil
}

// firstAckAfter is when the first turn sent after t was acknowledged, or zero. It runs
// while the clients write their turns, under the mutex they write under.
func (l *load) firstAckAfter(conv *conversation, t time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range conv.turns {
		if r.acked && r.attemptStart.After(t) {
			return r.ackedAt
		}
	}
	return time.Time{}
}

// describe names a conversation and its last turn's failed attempts.
func (l *load) describe(conv *conversation) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := fmt.Sprintf("conversation %d (%s)", conv.index, conv.id)
	if n := len(conv.turns); n > 0 {
		r := conv.turns[n-1]
		d += fmt.Sprintf(", turn %s failed %v, current %s", r.key, r.failures, r.current)
	}
	return d
}

// answerAgain sends one more turn to every conversation, after the load: each must be
// acknowledged.
func (l *load) answerAgain() {
	l.c.t.Helper()
	var wg sync.WaitGroup
	for _, conv := range l.convs {
		wg.Go(func() {
			if !l.turn(conv).acked {
				l.fail(fmt.Sprintf("conversation %s does not answer again", conv.id))
			}
		})
	}
	wg.Wait()
}

// verify checks every conversation's history against what its client was told: each
// acknowledged turn's user message and reply are in the log exactly once, the reply
// after its message with only recorded failures between them, the turns in the order
// they were sent, and seq runs 1, 2, 3, ... without a gap.
func (l *load) verify() (acked, unacked, messages int) {
	t := l.c.t
	t.Helper()
	for _, msg := range l.fatal {
		t.Error(msg)
	}
	for _, conv := range l.convs {
		hist, err := l.c.history(conv.token, conv.id)
		if err != nil {
			t.Errorf("history of conversation %d: %v", conv.index, err)
			continue
		}
		messages += len(hist)
		for _, p := range checkHistory(conv, hist) {
			t.Errorf("conversation %d (%s): %s", conv.index, conv.id, p)
		}
		for _, r := range conv.turns {
			if r.acked {
				acked++
			} else {
				unacked++
			}
		}
	}
	return acked, unacked, messages
}

// checkHistory returns the problems of one conversation's log.
func checkHistory(conv *conversation, hist []historyMessage) []string {
	var problems []string
	byContent := map[string][]int{}
	byID := map[string][]int{}
	for i, m := range hist {
		if m.Seq != int64(i+1) {
			problems = append(problems, fmt.Sprintf("message %d has seq %d: a gap or disorder", i, m.Seq))
		}
		if m.Role == "user" {
			byContent[m.Content] = append(byContent[m.Content], i)
		}
		byID[m.ID] = append(byID[m.ID], i)
	}
	last := -1
	for _, r := range conv.turns {
		if !r.acked {
			continue
		}
		users, replies := byContent[r.content], byID[r.messageID]
		if len(users) != 1 || len(replies) != 1 {
			problems = append(problems, fmt.Sprintf("acknowledged turn %s: user message %d times, reply %s %d times",
				r.key, len(users), r.messageID, len(replies)))
			continue
		}
		u, a := users[0], replies[0]
		reply := hist[a]
		switch {
		case reply.Role != "assistant" || reply.Content != r.response:
			problems = append(problems, fmt.Sprintf("turn %s: reply is %s %q, client was told %q", r.key, reply.Role, reply.Content, r.response))
		case a <= u:
			problems = append(problems, fmt.Sprintf("turn %s: reply (seq %d) before its message (seq %d)", r.key, reply.Seq, hist[u].Seq))
		case u <= last:
			problems = append(problems, fmt.Sprintf("turn %s: message (seq %d) before the previous turn's reply", r.key, hist[u].Seq))
		}
		for _, m := range hist[u+1 : max(a, u+1)] {
			if m.Role != "system" {
				problems = append(problems, fmt.Sprintf("turn %s: a %s message (seq %d) between its message and reply", r.key, m.Role, m.Seq))
			}
		}
		last = a
	}
	return problems
}

// summary is one scenario's figures.
func (l *load) summary(name string, acked, unacked, messages int, extra string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []string
	for _, k := range slices.Sorted(maps.Keys(l.errors)) {
		errs = append(errs, fmt.Sprintf("%s=%d", k, l.errors[k]))
	}
	if len(errs) == 0 {
		errs = []string{"none"}
	}
	return fmt.Sprintf("durability %s: %d conversations, turns acknowledged=%d unacknowledged=%d, log messages=%d, retries=%d, errors by status: %s; %s",
		name, len(l.convs), acked, unacked, messages, l.retries, strings.Join(errs, " "), extra)
}

// report logs the summary and prints it as one line, for a run that streams the test's
// output (go test -v, or go test in the package's directory).
func report(t *testing.T, line string) {
	t.Helper()
	t.Log(line)
	fmt.Println(line)
}
