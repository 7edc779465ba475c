// Package durability tests kowai's grains hosted by real cluster nodes. It runs without
// the race detector (the cluster library has data races of its own), so it holds only
// tests; everything testable on a plain actor system is tested, raced, in package
// actors.
//
// # Grains on a cluster node
//
// TestGrainsOnClusterNode hosts the session and agent kinds on an in-process node:
// turns through the grain client, streaming to a remote-addressed PID, typed errors,
// idempotent retries and a graceful leave that passivates with a final snapshot.
//
// # Streams across a kill
//
// TestStreamSurvivesKill runs three `kowai serve` processes on MariaDB and Redis (the
// stream store) with an OpenAI-compatible model that holds every reply back. A client
// streams a keyed turn over SSE from the node that also hosts the conversation's session,
// which is killed with SIGKILL while the model call is in flight; the client's retry with
// the same Idempotency-Key on a survivor continues the same stream after a restart event,
// a reader joining on the third node sees the same, and the history holds one reply.
// TestUnkeyedStreamSurvivesKill does the same with a turn sent without a key: the client
// retries with the key the node put in the first response's headers.
//
// # Processes under load
//
// TestProcesses builds `kowai serve` and runs it as separate processes on loopback,
// sharing one fresh MariaDB database (KOWAI_TEST_MYSQL_DSN; with CI=true a missing
// database fails the test, otherwise it is skipped loudly). Fifty conversations of five
// registered users are driven through the gateways as chat clients would: one turn at
// a time per conversation, a unique Idempotency-Key per turn, and a failed or timed-out
// attempt retried with the same key on another live node, a bounded number of times.
// The scenarios, one after the other:
//
//   - automanaged-kill: three nodes; the one hosting the built-in chat agent is
//     killed with SIGKILL mid-load;
//   - automanaged-join: a fourth node joins mid-load and the sessions it now owns
//     move to it, while old activations may still be finishing turns (fencing);
//   - etcd-kill: automanaged-kill with etcd as the membership provider.
//
// Each then checks every conversation's log through GET /api/v1/chat/history: every
// acknowledged turn's message and reply are there exactly once, in the order the
// client sent them, the reply as the client was told it, seq without gaps; and every
// conversation answers one more turn. It logs, and prints as one line, the turns
// acknowledged, retries, failed attempts by status, the time from the kill (or join) to
// the first successful turn on a moved conversation, and the fenced activations:
//
//	KOWAI_TEST_MYSQL_DSN=mysql://root@127.0.0.1:3306/kowai_test go test -v -run TestProcesses ./actors/durability/
//	durability TestProcesses/automanaged-kill: 50 conversations, turns acknowledged=327 ...
//
// # Workflow runs surviving a kill
//
// TestWorkflowRunsSurviveKill runs three nodes whose model is an OpenAI-compatible fake
// (lmtest's, behind a proxy that counts every call by the message it carries and holds
// it back), starts thirty research runs of five agent tasks each, and kills with
// SIGKILL the node the hash gives most runs (among those not hosting the agents) once
// the runs are mid-flight. Every run must complete with no client involved; no task
// may have called the model more often than the attempts its journal records, and a
// task journaled before the kill exactly once. The reply cache is off, so a repeated
// call would reach the fake. It prints the time from the kill to each moved run's first
// event on a survivor:
//
//	durability TestWorkflowRunsSurviveKill: 30 runs x 5 tasks, 6 on the killed node ...
//
// # A schedule surviving a kill
//
// TestScheduleSurvivesKill creates an `@every 2s` intelligent-chat schedule through the
// API on three nodes, lets it fire for about 14 s, then polls the schedule's row until a
// node holds the claim on a tick (claim_owner names the node's cluster address) and
// kills that node with SIGKILL; after about 24 s more it deletes the schedule. From the
// database, every tick from the first to 2 s before the DELETE must have exactly one run
// with ID actors.ScheduleRunID(schedule, tick), and the owner no other run. It prints the
// ticks, the runs and the longest delay from a tick to its run's creation (the claimed
// tick's, about the 5 s claim lease, when the node died before starting its run):
//
//	durability TestScheduleSurvivesKill: @every 2s for 38s ..., node 1 killed -9 holding the claim on tick ...; ticks=19 runs=19 ...; longest tick-to-run-creation gap 5.469s ...
package durability
