// Package tracing sets up OpenTelemetry tracing from the standard OTEL_* variables and
// carries W3C trace context across the places a request leaves a process: HTTP, AMQP
// message headers and event-store metadata.
//
// Tracing is on when OTEL_TRACES_EXPORTER is "otlp", or when it is unset and
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set; it is off
// otherwise and with OTEL_SDK_DISABLED=true. Off, the global tracer provider stays
// OpenTelemetry's no-op one and Enabled reports false, so hot paths (the consumer's
// per-delivery work) skip even building span options.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of every span this project starts.
const ScopeName = "github.com/multitenant/mtm"

// enabled is set by Install: read on hot paths, so an atomic rather than a lookup of
// the global provider's type.
var enabled atomic.Bool

// Enabled reports whether a recording tracer provider is installed.
func Enabled() bool { return enabled.Load() }

// Tracer is the project's tracer from the global provider (the no-op one when off).
func Tracer() trace.Tracer { return otel.Tracer(ScopeName) }

// Propagator is the W3C trace-context propagator (plus baggage) every carrier uses.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// Config is what the OTEL_* variables ask for.
type Config struct {
	// Enabled: an exporter is configured.
	Enabled bool
	// ServiceName is the default service.name; OTEL_SERVICE_NAME and
	// OTEL_RESOURCE_ATTRIBUTES win over it.
	ServiceName string
}

// ErrUnsupported names an OTEL_* value this build cannot honour.
var ErrUnsupported = errors.New("unsupported OpenTelemetry setting")

// FromEnv reads the switches of the OTEL_* variables through getenv (os.Getenv in
// production). The exporter reads its own OTEL_EXPORTER_OTLP_* settings (endpoint,
// headers, timeout, compression, certificates) and the SDK its OTEL_TRACES_SAMPLER*,
// OTEL_BSP_* and OTEL_RESOURCE_ATTRIBUTES; only what decides on/off and the protocol
// is checked here, so a wrong value stops the binary at start instead of silently
// tracing nothing.
func FromEnv(service string, getenv func(string) string) (Config, error) {
	cfg := Config{ServiceName: service}
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return cfg, nil
	}
	switch exp := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); exp {
	case "none":
		return cfg, nil
	case "otlp":
		cfg.Enabled = true
	case "":
		cfg.Enabled = getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
	default:
		return cfg, fmt.Errorf("%w: OTEL_TRACES_EXPORTER=%q (this build exports with otlp, or none)", ErrUnsupported, exp)
	}
	if !cfg.Enabled {
		return cfg, nil
	}
	proto := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		proto = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	if proto != "" && proto != "http/protobuf" {
		return cfg, fmt.Errorf("%w: OTEL_EXPORTER_OTLP_PROTOCOL=%q (this build speaks http/protobuf)", ErrUnsupported, proto)
	}
	return cfg, nil
}

// Setup installs the global tracer provider and propagator cfg asks for and returns
// the function that flushes and stops it (a no-op when tracing is off). The app's
// lifecycle owns it: it is called after every other component stopped, so the spans
// of the last requests and deliveries are exported.
func Setup(ctx context.Context, cfg Config) (func(context.Context) error, error) {
	if !cfg.Enabled {
		return func(context.Context) error { return nil }, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("otlp trace exporter: %w", err)
	}
	res, err := resource.Merge(
		resource.NewSchemaless(semconv.ServiceName(cfg.ServiceName)),
		// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, which win over the default name.
		resource.Environment(),
	)
	if err != nil {
		return nil, fmt.Errorf("tracing resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	Install(tp)
	return func(ctx context.Context) error {
		if err := tp.Shutdown(ctx); err != nil {
			return fmt.Errorf("flush traces: %w", err)
		}
		return nil
	}, nil
}

// Install makes tp the global tracer provider, with the W3C propagator, and turns
// Enabled on. Tests install a provider with an in-memory exporter through it.
func Install(tp trace.TracerProvider) {
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(Propagator())
	enabled.Store(true)
}

// InjectAMQP writes ctx's trace context into AMQP message headers and returns them
// (allocated when nil). Off, it returns headers untouched: nothing is added to a
// message when no one traces.
func InjectAMQP(ctx context.Context, headers amqp.Table) amqp.Table {
	if !Enabled() || !trace.SpanContextFromContext(ctx).IsValid() {
		return headers
	}
	if headers == nil {
		headers = amqp.Table{}
	}
	otel.GetTextMapPropagator().Inject(ctx, amqpCarrier(headers))
	return headers
}

// ExtractMap returns ctx with the remote span context carried in m (watermill metadata,
// where AMQP headers and event-store metadata arrive as strings), if any.
func ExtractMap(ctx context.Context, m map[string]string) context.Context {
	return otel.GetTextMapPropagator().Extract(ctx, propagation.MapCarrier(m))
}

// InjectMap writes ctx's trace context into m (watermill metadata of an event).
func InjectMap(ctx context.Context, m map[string]string) {
	if !Enabled() {
		return
	}
	otel.GetTextMapPropagator().Inject(ctx, propagation.MapCarrier(m))
}

// amqpCarrier carries trace context in AMQP headers as short strings, the type every
// AMQP client reads back as text.
type amqpCarrier amqp.Table

func (c amqpCarrier) Get(key string) string {
	s, _ := c[key].(string)
	return s
}

func (c amqpCarrier) Set(key, value string) { c[key] = value }

func (c amqpCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// End ends span, recording err (if any) as its error status.
func End(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
