package httpserver

import (
	"net/http/httptest"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/multitenant/mtm/platform/tracing"
)

// Every request is a server span named by its route, a child of the caller's
// traceparent, in the handler's context; a panic's 500 marks it failed.
func TestRequestSpans(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tracing.Install(sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp)))
	s := newTestServer(t, nil)
	var inHandler trace.SpanContext
	s.App.Get("/things/:id", func(c *fiber.Ctx) error {
		inHandler = trace.SpanContextFromContext(c.UserContext())
		return c.SendStatus(204)
	})

	req := httptest.NewRequest("GET", "/things/42", nil)
	req.Header.Set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	resp, err := s.App.Test(req, -1)
	require.NoError(t, err)
	require.Equal(t, 204, resp.StatusCode)
	_, _ = do(t, s, "GET", "/panic", "")

	spans := exp.GetSpans()
	require.Len(t, spans, 2)
	get, panicked := spans[0], spans[1]
	require.Equal(t, "GET /things/:id", get.Name)
	require.Equal(t, trace.SpanKindServer, get.SpanKind)
	require.Equal(t, "0af7651916cd43dd8448eb211c80319c", get.SpanContext.TraceID().String())
	require.Equal(t, "b7ad6b7169203331", get.Parent.SpanID().String())
	require.Equal(t, get.SpanContext.SpanID(), inHandler.SpanID(), "the handler runs in the request's span")
	require.Contains(t, get.Attributes, attribute.Int("http.response.status_code", 204))
	require.Contains(t, get.Attributes, attribute.String("http.route", "/things/:id"))
	require.Equal(t, codes.Unset, get.Status.Code)

	require.Equal(t, "GET /panic", panicked.Name)
	require.Contains(t, panicked.Attributes, attribute.Int("http.response.status_code", 500))
	require.Equal(t, codes.Error, panicked.Status.Code)
	require.False(t, panicked.Parent.IsValid(), "no traceparent: a root span")
}
