//go:build integration

package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/multitenant/mtm/platform/amqptest"
	"github.com/multitenant/mtm/platform/rabbit"
)

// collectedSpan is one span an OTLP export delivered, with the service that sent it.
type collectedSpan struct {
	service string
	*tracepb.Span
}

// otlpReceiver is a minimal OTLP/HTTP trace receiver: the real binaries export to it
// exactly as they would to Jaeger or a collector.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []collectedSpan
	srv   *httptest.Server
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	r := &otlpReceiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/v1/traces" {
			http.NotFound(w, req)
			return
		}
		raw, err := io.ReadAll(req.Body)
		var export coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(raw, &export)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, rs := range export.GetResourceSpans() {
			service := ""
			for _, a := range rs.GetResource().GetAttributes() {
				if a.GetKey() == "service.name" {
					service = a.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					r.spans = append(r.spans, collectedSpan{service: service, Span: s})
				}
			}
		}
		r.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// trace returns the spans of one trace.
func (r *otlpReceiver) trace(traceID []byte) []collectedSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []collectedSpan
	for _, s := range r.spans {
		if string(s.GetTraceId()) == string(traceID) {
			out = append(out, s)
		}
	}
	return out
}

func (r *otlpReceiver) all() []collectedSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]collectedSpan(nil), r.spans...)
}

// find returns the first span of service named name, and whether there is one.
func find(spans []collectedSpan, service, name string) (collectedSpan, bool) {
	for _, s := range spans {
		if s.service == service && s.GetName() == name {
			return s, true
		}
	}
	return collectedSpan{}, false
}

// newTraceparent is a sampled W3C traceparent of a fresh trace, and its ids.
func newTraceparent(t *testing.T) (header string, traceID, spanID []byte) {
	t.Helper()
	traceID, spanID = make([]byte, 16), make([]byte, 8)
	_, err := rand.Read(traceID)
	require.NoError(t, err)
	_, err = rand.Read(spanID)
	require.NoError(t, err)
	return "00-" + hex.EncodeToString(traceID) + "-" + hex.EncodeToString(spanID) + "-01", traceID, spanID
}

// requireChild fails unless child's parent is parent.
func requireChild(t *testing.T, parent, child collectedSpan) {
	t.Helper()
	require.Equal(t, hex.EncodeToString(parent.GetSpanId()), hex.EncodeToString(child.GetParentSpanId()),
		"%s (%s) should be a child of %s (%s)", child.GetName(), child.service, parent.GetName(), parent.service)
}

// One message published over HTTP is one trace from the command's HTTP span through
// its publish, the consumer's delivery and the group commit to the insert; a message an
// AMQP producer sent with a traceparent joins the producer's trace; the tenant's
// creation reaches the consumer's handling of its event through the event store; and a
// query read has its database spans under its HTTP span.
func TestTraceFromHTTPToCommit(t *testing.T) {
	recv := newOTLPReceiver(t)
	env := Env(t)
	env["OTEL_EXPORTER_OTLP_ENDPOINT"] = recv.srv.URL
	env["OTEL_EXPORTER_OTLP_COMPRESSION"] = "none"
	env["OTEL_BSP_SCHEDULE_DELAY"] = "50" // milliseconds: export promptly
	s := startSystemWith(t, env)
	tenant := createTenant(t, s, 1)
	queue := rabbit.QueueName(tenant)

	// HTTP → publish → delivery → commit → INSERT, one trace.
	header, traceID, callerSpan := newTraceparent(t)
	code, _, body := jsonCall(t, "POST", s.command.URL()+"/tenants/"+tenant+"/messages",
		map[string]any{"traced": true}, map[string]string{"traceparent": header, "Idempotency-Key": "trace-1"})
	require.Equal(t, 202, code, "%v", body)

	var spans []collectedSpan
	var httpSpan, publish, process, commit, insert collectedSpan
	require.Eventually(t, func() bool {
		spans = recv.trace(traceID)
		var ok [5]bool
		httpSpan, ok[0] = find(spans, "command", "POST /tenants/:id/messages")
		publish, ok[1] = find(spans, "command", "publish "+queue)
		process, ok[2] = find(spans, "consumer", "process "+queue)
		commit, ok[3] = find(spans, "consumer", "messages group commit")
		insert, ok[4] = find(spans, "consumer", "INSERT postgresql")
		return ok == [5]bool{true, true, true, true, true}
	}, 15*time.Second, 50*time.Millisecond, "the message's trace reaches the commit")
	t.Logf("spans of the message's trace: %v", names(recv.trace(traceID)))
	require.Equal(t, hex.EncodeToString(callerSpan), hex.EncodeToString(httpSpan.GetParentSpanId()), "the caller's traceparent is honoured")
	require.Equal(t, tracepb.Span_SPAN_KIND_SERVER, httpSpan.GetKind())
	requireChild(t, httpSpan, publish)
	require.Equal(t, tracepb.Span_SPAN_KIND_PRODUCER, publish.GetKind())
	requireChild(t, publish, process)
	require.Equal(t, tracepb.Span_SPAN_KIND_CONSUMER, process.GetKind())
	requireChild(t, process, commit)
	requireChild(t, commit, insert)
	require.Equal(t, "stored", stringAttr(process.Span, "mtm.outcome"))
	require.Equal(t, body["id"], stringAttr(process.Span, "messaging.message.id"))
	require.True(t, linksTo(process.Span, commit.Span), "the delivery links to the commit that stored it")
	require.True(t, hasEvent(process.Span, "ack"))
	require.Equal(t, int64(202), intAttr(httpSpan.Span, "http.response.status_code"))

	// An AMQP producer's traceparent is honoured.
	conn := amqptest.Dial(t)
	ch, err := conn.Channel()
	require.NoError(t, err)
	defer ch.Close()
	require.NoError(t, ch.Confirm(false))
	header2, traceID2, producerSpan := newTraceparent(t)
	dc, err := ch.PublishWithDeferredConfirm("", queue, true, false, amqp.Publishing{
		MessageId: uuid.NewString(), DeliveryMode: amqp.Persistent, ContentType: "application/json",
		Timestamp: time.Now(), Headers: amqp.Table{"traceparent": header2}, Body: []byte(`{"over":"amqp"}`),
	})
	require.NoError(t, err)
	acked, err := dc.WaitContext(context.Background())
	require.NoError(t, err)
	require.True(t, acked)
	require.Eventually(t, func() bool {
		p, ok := find(recv.trace(traceID2), "consumer", "process "+queue)
		if !ok {
			return false
		}
		_, committed := find(recv.trace(traceID2), "consumer", "messages group commit")
		return hex.EncodeToString(p.GetParentSpanId()) == hex.EncodeToString(producerSpan) && committed
	}, 15*time.Second, 50*time.Millisecond, "the AMQP producer's trace reaches the commit")

	// The tenant's creation: POST /tenants → append → the consumer applies the event.
	var created collectedSpan
	require.Eventually(t, func() bool {
		for _, sp := range recv.all() {
			if sp.service == "command" && sp.GetName() == "POST /tenants" {
				created = sp
				_, ok := find(recv.trace(sp.GetTraceId()), "consumer", "apply tenant.created.v1")
				if ok {
					return true
				}
			}
		}
		return false
	}, 15*time.Second, 50*time.Millisecond, "the consumer's handling of tenant.created.v1 joins the creation's trace")
	creation := recv.trace(created.GetTraceId())
	appendSpan, ok := find(creation, "command", "eventstore append")
	require.True(t, ok, "%v", names(creation))
	apply, _ := find(creation, "consumer", "apply tenant.created.v1")
	requireChild(t, appendSpan, apply)

	// A query read: its database spans are children of its HTTP span.
	header3, traceID3, _ := newTraceparent(t)
	code, _, body = jsonCall(t, "GET", s.query.URL()+"/tenants/"+tenant+"/messages", nil, map[string]string{"traceparent": header3})
	require.Equal(t, 200, code, "%v", body)
	require.Eventually(t, func() bool {
		read := recv.trace(traceID3)
		get, ok := find(read, "query", "GET /tenants/:id/messages")
		if !ok {
			return false
		}
		for _, sp := range read {
			if sp.service == "query" && sp.GetName() == "SELECT postgresql" && string(sp.GetParentSpanId()) == string(get.GetSpanId()) {
				return true
			}
		}
		return false
	}, 15*time.Second, 50*time.Millisecond, "the query's database spans are children of its HTTP span")
}

func names(spans []collectedSpan) []string {
	out := make([]string, 0, len(spans))
	for _, s := range spans {
		out = append(out, s.service+": "+s.GetName())
	}
	return out
}

func stringAttr(s *tracepb.Span, key string) any {
	for _, a := range s.GetAttributes() {
		if a.GetKey() == key {
			return a.GetValue().GetStringValue()
		}
	}
	return nil
}

func intAttr(s *tracepb.Span, key string) int64 {
	for _, a := range s.GetAttributes() {
		if a.GetKey() == key {
			return a.GetValue().GetIntValue()
		}
	}
	return -1
}

func linksTo(s, target *tracepb.Span) bool {
	for _, l := range s.GetLinks() {
		if string(l.GetSpanId()) == string(target.GetSpanId()) && string(l.GetTraceId()) == string(target.GetTraceId()) {
			return true
		}
	}
	return false
}

func hasEvent(s *tracepb.Span, name string) bool {
	for _, e := range s.GetEvents() {
		if e.GetName() == name {
			return true
		}
	}
	return false
}
