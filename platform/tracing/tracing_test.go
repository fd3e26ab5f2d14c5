package tracing

import (
	"context"
	"errors"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func TestFromEnv(t *testing.T) {
	cases := []struct {
		name    string
		env     map[string]string
		enabled bool
		err     bool
	}{
		{"nothing set", nil, false, false},
		{"endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318"}, true, false},
		{"traces endpoint", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://x:4318/v1/traces"}, true, false},
		{"exporter otlp, default endpoint", map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true, false},
		{"exporter none wins over an endpoint", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318"}, false, false},
		{"sdk disabled", map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, false, false},
		{"unknown exporter", map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, false, true},
		{"grpc refused", map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, false, true},
		{"http/protobuf", map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, true, false},
		{"grpc ignored while off", map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := FromEnv("svc", func(k string) string { return c.env[k] })
			if c.err {
				if !errors.Is(err, ErrUnsupported) {
					t.Fatalf("err = %v, want ErrUnsupported", err)
				}
				return
			}
			if err != nil || cfg.Enabled != c.enabled || cfg.ServiceName != "svc" {
				t.Fatalf("FromEnv = %+v, %v; want enabled %v", cfg, err, c.enabled)
			}
		})
	}
}

// Off, nothing is injected: no header is added to a message nobody traces.
func TestInjectOffAddsNothing(t *testing.T) {
	if Enabled() {
		t.Skip("a provider is installed in this process")
	}
	if h := InjectAMQP(context.Background(), nil); h != nil {
		t.Fatalf("headers = %v", h)
	}
}

// A span context survives AMQP headers and event metadata, the two carriers between
// processes besides HTTP.
func TestContextCrossesAMQPHeadersAndMetadata(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	Install(sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp)))
	ctx, span := Tracer().Start(context.Background(), "publish")
	defer span.End()

	headers := InjectAMQP(ctx, nil)
	if _, ok := headers["traceparent"].(string); !ok {
		t.Fatalf("no traceparent string header: %v", headers)
	}
	meta := map[string]string{}
	for k, v := range headers {
		meta[k] = v.(string) // how the consumer's subscription hands headers over
	}
	got := trace.SpanContextFromContext(ExtractMap(context.Background(), meta))
	if got.TraceID() != span.SpanContext().TraceID() || got.SpanID() != span.SpanContext().SpanID() || !got.IsRemote() {
		t.Fatalf("extracted %v, want %v", got, span.SpanContext())
	}

	event := map[string]string{"event_type": "tenant.created.v1"}
	InjectMap(ctx, event)
	if got := trace.SpanContextFromContext(ExtractMap(context.Background(), event)); got.SpanID() != span.SpanContext().SpanID() {
		t.Fatalf("event metadata carried %v", got)
	}
}
