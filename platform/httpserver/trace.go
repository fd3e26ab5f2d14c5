package httpserver

import (
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v2"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/multitenant/mtm/platform/tracing"
)

// traceRequests makes a server span of every request, a child of the caller's
// traceparent when it sent one, and puts it in the request's user context so the
// handler's database reads, appends and publishes join it. Off, it costs one atomic load.
func traceRequests(c *fiber.Ctx) error {
	if !tracing.Enabled() {
		return c.Next()
	}
	ctx := otel.GetTextMapPropagator().Extract(c.UserContext(), headerCarrier{c})
	// Fiber's strings alias pooled buffers; spans outlive the request in the exporter.
	method := strings.Clone(c.Method())
	ctx, span := tracing.Tracer().Start(ctx, method, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(
			semconv.HTTPRequestMethodKey.String(method),
			semconv.URLPath(strings.Clone(c.Path())),
			attribute.String("http.request.id", RequestID(c)),
		))
	defer span.End()
	c.SetUserContext(ctx)
	err := c.Next()
	status := c.Response().StatusCode()
	if err != nil {
		// The error handler runs after this middleware; derive the status it will write.
		status = statusOf(err)
	}
	route := routeOf(c)
	span.SetName(method + " " + route)
	span.SetAttributes(semconv.HTTPRoute(route), semconv.HTTPResponseStatusCode(status))
	if status >= http.StatusInternalServerError {
		// Server spans mark only 5xx as errors: a 4xx is the caller's mistake.
		span.SetStatus(codes.Error, http.StatusText(status))
	}
	return err
}

// routeOf is the matched route's pattern ("unmatched" for none): low cardinality, fit
// for a metric label and a span name.
func routeOf(c *fiber.Ctx) string {
	if r := c.Route(); r != nil && r.Path != "/" {
		return r.Path
	}
	return "unmatched"
}

// headerCarrier reads trace context from the request headers. Values are copied: the
// propagator keeps substrings (trace state), and Fiber reuses the header buffers.
type headerCarrier struct{ c *fiber.Ctx }

func (h headerCarrier) Get(key string) string { return strings.Clone(h.c.Get(key)) }

// Set is never used: the server does not propagate context into its answers.
func (h headerCarrier) Set(string, string) {}

func (h headerCarrier) Keys() []string {
	var keys []string
	h.c.Request().Header.VisitAll(func(k, _ []byte) { keys = append(keys, string(k)) })
	return keys
}
