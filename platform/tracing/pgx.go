package tracing

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// PgxTracer makes a client span of every query run inside a trace (a request, a
// delivery's commit, an append). A query whose context carries no span gets none:
// background polling (the outbox subscriptions every 20 ms, readiness pings) would
// otherwise flood the backend with one-span traces.
type PgxTracer struct{}

type pgxSpanKey struct{}

// TraceQueryStart starts the query's span when ctx is inside a trace.
func (PgxTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	if !Enabled() || !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx
	}
	op := operation(data.SQL)
	ctx, span := Tracer().Start(ctx, op+" postgresql", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			semconv.DBSystemNamePostgreSQL,
			semconv.DBOperationName(op),
			// The statement text, never its arguments: those are tenant payloads.
			semconv.DBQueryText(data.SQL),
		))
	return context.WithValue(ctx, pgxSpanKey{}, span)
}

// TraceQueryEnd ends the span TraceQueryStart started, if any.
func (PgxTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	span, ok := ctx.Value(pgxSpanKey{}).(trace.Span)
	if !ok {
		return
	}
	if data.Err != nil {
		span.RecordError(data.Err)
		span.SetStatus(codes.Error, "query failed")
	} else {
		span.SetAttributes(attribute.Int64("db.response.affected_rows", data.CommandTag.RowsAffected()))
	}
	span.End()
}

// operation is the statement's first keyword (SELECT, INSERT, WITH, ...), the
// low-cardinality part of a span name.
func operation(sql string) string {
	sql = strings.TrimSpace(sql)
	if i := strings.IndexAny(sql, " \t\r\n("); i > 0 {
		sql = sql[:i]
	}
	if sql == "" {
		return "QUERY"
	}
	return strings.ToUpper(sql)
}
