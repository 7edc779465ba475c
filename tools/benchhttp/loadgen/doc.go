// Command loadgen is kowai's HTTP load generator, run as a process of its own
// so that the server it measures shares nothing with it but the machine: no
// heap, no garbage collector, no scheduler. make bench-http drives it (see
// tools/benchhttp).
//
// It keeps -c connections busy for -d, each sending one request after the
// other, and prints one JSON line: requests, failures, the elapsed seconds
// and a histogram of latencies (10 µs buckets) that runs can be merged from.
//
// # Chat mode
//
// With -chat new, every request is a POST /api/v1/chat/message that starts a
// new conversation. With -chat continue, each connection starts one
// conversation during a warm-up and then continues it with every request.
//
//	loadgen -url http://127.0.0.1:8080/api/v1/auth/me -H "Authorization: Bearer $TOKEN" -c 64 -d 3s
package main
