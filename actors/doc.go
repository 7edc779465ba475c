// Package actors holds kowai's grains: the session grain, which owns one conversation,
// and the agent grain, which owns one agent's compiled program and its model-call
// workers. They speak the protobuf protocol of package actorpb, so they work the same
// whether the caller is on this node or another. The cluster package hosts them as
// kinds; this package never imports it and reaches other grains through GrainCaller.
//
// # A chat turn
//
// A SendMessage reaches the session grain (identity = conversation ID). The session
// checks that the caller owns the conversation (only its owner writes to it; reads are
// the gateway's, from the stores), and runs the turn in a goroutine so its own mailbox stays free: the turn creates
// the conversation on its first message, appends the user's message through the
// group-commit writer while it asks the agent grain for a reply, and commits the
// reply, together with the session's snapshot when it is due (a version
// compare-and-swap) and the conversation's updated_at when it is due, in one
// persistence.Ops; only then does the session answer with a TurnResult. The user's
// message reaches the writer after Deps.UserMessageGrace: a reply back by then (a fast
// model) commits with it in one write, otherwise the message commits first and the
// reply waits for it. A failed model call is recorded as a system message after
// the user's, answered with a typed error (actorpb.ErrModelFailure, ErrTimeout, ...),
// and the session goes on with the next turn.
//
// An idempotency key is stored with the user's message (and, suffixed, with the
// reply): a repeated key returns the stored result without a model call, from memory or
// from the log; a key whose message is stored without a reply gets that reply now.
//
// Messages that arrive while a reply runs follow the agent's busy_policy: enqueue (the
// default), reject (actorpb.ErrBusy) or interrupt (the running reply is cancelled and
// recorded; the new message runs next). CancelTurn cancels a running reply.
//
// # Agents and workers
//
// The agent grain (identity = agent ID) compiles its definition with the agents
// registry and hands each GenerateReply to a worker child, at most max_concurrency (or
// Deps.AgentWorkers) at once; the rest wait in the grain's queue. A worker streams
// TokenDelta messages and a StreamEnd to the request's StreamTarget, a PID that may live
// on another node, and replies straight to the requester. A model error makes the worker
// fail: the agent answers the requester with the classified error and the supervisors
// strategy restarts the worker with backoff, or stops it (spent budget).
//
// The agent grain is the only owner of its definition: PutAgent and DeleteAgent (sent by
// the gateway's ClusterAgents) write the agents row (version compare-and-swap) and
// switch the grain to the new definition before they answer, so the next reply on any
// node uses it. A session asks the agent grain for its settings (DescribeAgent: busy
// policy and history window, and whether the user may use it) when it creates its
// conversation, and GenerateReply carries the version the session knows: the reply
// brings the settings only when they changed. The session's tail keeps at least the
// agent's history_window messages, and the worker cuts the history to that window, the
// one place it is cut.
//
// # Variants, canaries and compiled programs
//
// A conversation runs the agent's canary (agents.AssignCanary) or one of its weighted
// variants (agents.AssignVariant), each compiled when the grain loads the agent, with
// its model, instructions and compiled program state (signatures.State JSON loaded
// onto the type's module). DeployProgram attaches state as a canary; the grain counts
// every finished reply (a failed or timed-out one as an error) against the canary or
// the current version, re-reads the ratings on ProgramFeedback, and promotes the canary
// or rolls it back by its rule (decideCanary), or on DecideProgram. Each change is
// written with persistence.AgentPrograms.UpdateAudited: a version compare-and-swap and
// its audit entry in one transaction, so of two activations only one applies it.
// A turn whose model is premium-priced is refused when GenerateReply.no_premium says
// the caller lacks models:premium (a chat turn's token; for a workflow's agent task,
// the run owner's current roles through WorkflowDeps.Premium); each model call reserves its estimate
// against the user's budget (BudgetGuard.Reserve) and settles it afterwards.
//
// # State, passivation and fencing
//
// The log (messages) is the truth. A session's snapshot (an actorpb.SessionSnapshot)
// holds its owner, agent, title, the agent's settings, running summary, counters and the log's
// recent tail. It is versioned by the seq of the last message it covers and may lag the
// log by up to Deps.SnapshotLag messages: a turn saves it only when the lag would reach
// that. Activation loads it with persistence's LoadSession, which in the same read
// tells whether the log goes on past it; only then is the log's tail read to catch up.
// A session idle for Deps.IdleTimeout passivates, saving a final snapshot when the log
// is ahead of the saved one; Runtime.OnLeave does the same for every local session
// during a graceful leave. The conversation's updated_at trails the last turn by at
// most a second (touchInterval) and is brought up to date at passivation.
//
// Two activations of one conversation may overlap while the cluster moves grains. The
// loser's write fails, on the log's unique (conversation, seq) or on the snapshot's
// version, and its turn panics with a conflict: the session answers its callers with
// actorpb.ErrUnavailable (retry with the same idempotency key), drops its state and
// stops. Nothing acknowledged is overwritten.
//
// # Wiring
//
//	rt, err := actors.New(actors.Deps{
//		Writer: writer, Conversations: convs, Messages: msgs, Agents: agents, Snapshots: snaps,
//		LM: model, Logger: logger, Metrics: registry, SupervisorMetrics: supMetrics,
//	})
//	node, err := cluster.New(cluster.Config{Kinds: rt.Kinds(), OnLeave: rt.OnLeave, ...})
//	rt.SetCaller(node.Client())
//	err = rt.EnsureBuiltins(ctx) // after migrations
//
// Callers use actorpb.As to turn a grain's answer into its reply type or a typed error.
package actors
