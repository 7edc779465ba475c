// Command benchhttp is make bench-http: kowai's HTTP benchmark measured from
// outside. It starts kowai serve (offline model, its log, with the access
// log, written to a real file) and a bare Fiber hello world of the same Fiber
// version (tools/benchhttp/hello) as processes of their own, and loads both
// with the load generator (tools/benchhttp/loadgen), a third process,
// alternating the runs so that background load weighs on both alike.
//
// For each database (SQLite, MariaDB) it reports req/s and the p50 and p99
// latencies of GET /health/live, GET /api/v1/auth/me, GET
// /api/v1/chat/conversations, a POST /api/v1/chat/message that starts a new
// conversation and one that continues a conversation, each against the bare
// Fiber hello world; and the chat turns against two more baselines: a first
// turn against a continuing one, and continuing turns against the durable
// rows per second ÷ 2 of the group-commit writer on the same database (64
// writers, in this process, alternated with the turns), with the CPU time of
// a continuing turn and of a writer row: kowai's or the writer's, and the
// database server's when it is MariaDB on this machine (a loopback address,
// its pid file readable).
//
//	benchhttp -kowai bin/kowai -loadgen bin/loadgen -hello bin/hello -db sqlite,mysql
//
// MariaDB is the server of KOWAI_TEST_MYSQL_DSN; each run creates a database
// of its own there and drops it afterwards.
package main
