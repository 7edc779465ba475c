// Package logging builds kowai's slog loggers and carries the correlation ID
// of a request in its context.
//
// # Correlation IDs
//
// The gateway stores each request's ID with WithCorrelationID; actors copy it
// into the messages they send across nodes and restore it on receipt. Any
// record logged through a logger from New with that context, using slog's
// *Context methods, carries a correlation_id attribute.
//
//	log := logging.New(os.Stderr, slog.LevelInfo, "json")
//	ctx := logging.WithCorrelationID(ctx, "req-1")
//	log.InfoContext(ctx, "turn stored", "conversation_id", id)
//
// # Trace IDs
//
// When the context carries a valid OpenTelemetry span context (tracing on),
// the record also gets trace_id and span_id, so a log line leads to its trace.
// The correlation ID stays: it is the ID clients see (X-Request-ID).
//
// # Lines on every request
//
// A record written on every request (the gateway's access log) is built with
// a Line: on a logger from New it is encoded straight into a pooled buffer, in
// the same form the logger's slog handler writes, correlation and trace IDs
// included, with no allocation.
//
//	ln := logging.Start(ctx, log, slog.LevelInfo, "http request")
//	ln.String("route", route)
//	ln.Int("status", 200)
//	ln.End() // a nil Line (level not logged) does nothing
//
// # Buffer
//
// A Buffer collects whole records and writes them in batches (when full, on a
// timer, on Flush and Close), writing outside the lock that loggers take.
package logging
