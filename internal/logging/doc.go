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
package logging
