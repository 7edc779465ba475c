// Package clustertest drives the whole kowai stack in one process, the way
// kowai serve assembles it: persistence with its group-commit writer, the
// actor runtime, a one-node cluster hosting the grains, and the gateway with
// the REST and WebSocket API talking to them through the cluster's grain
// client.
//
// The package holds only tests and benchmarks. It starts a protoactor
// cluster, whose library has data races of its own, so the Makefile runs it
// without the race detector (packages named clustertest are excluded from
// the -race run).
//
// # Tests
//
// TestNodeServesATurnAndStops builds a node with package node, as kowai serve
// does, runs it, answers a turn through it and stops it by its context.
//
// TestEndToEnd registers, logs in and chats over REST and over WebSocket
// through the real cluster, then reads the history back.
//
// TestTraceAcrossNodes runs the stack as two nodes (the gateway's hosts no
// grains) with tracing exported over OTLP/HTTP to an in-process receiver, and
// checks that a REST turn, a WebSocket turn and a workflow run are each one
// trace whose spans come from both nodes, each under the right parent.
//
// # Benchmarks
//
// BenchmarkChatTurns measures chat turns per second over HTTP on MariaDB
// with the offline model and 64 concurrent conversations, against the
// group-commit writer's durable rows per second divided by two, both under
// the same 64-way load in the same run:
//
//	KOWAI_TEST_MYSQL_DSN=mysql://root@127.0.0.1:3306/kowai_test \
//		go test -run '^$' -bench ChatTurns ./gateway/clustertest
package clustertest
