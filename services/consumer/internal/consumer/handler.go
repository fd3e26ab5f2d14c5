package consumer

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/multitenant/mtm/platform/eventstore"
	"github.com/multitenant/mtm/platform/msgid"
	"github.com/multitenant/mtm/platform/payload"
	"github.com/multitenant/mtm/platform/rabbit"
	"github.com/multitenant/mtm/platform/tracing"
	"github.com/multitenant/mtm/projections/messages"
	"github.com/multitenant/mtm/services/consumer/internal/amqpsub"
	"github.com/multitenant/mtm/services/consumer/internal/store"
)

// collect returns first and every further message already waiting in msgs (up to max),
// without waiting for more: the batch is whatever arrived while the last one was
// being handed over (natural batching, no timer on the latency path).
func collect(first *message.Message, msgs <-chan *message.Message, max int) []*message.Message {
	batch := []*message.Message{first}
	// The subscription hands deliveries over an unbuffered channel from its own
	// goroutine, so "nothing waiting" is only true once that goroutine had a chance
	// to run: yield once before concluding it.
	yielded := false
	for len(batch) < max {
		select {
		case m, ok := <-msgs:
			if !ok {
				return batch
			}
			batch, yielded = append(batch, m), false
		default:
			if yielded {
				return batch
			}
			runtime.Gosched()
			yielded = true
		}
	}
	return batch
}

// tenantHandler handles one worker's deliveries; its metric children are looked up once.
type tenantHandler struct {
	d        *poolDeps
	tenantID string
	queue    string
	tenant   uuid.UUID
	outcomes map[string]prometheus.Counter
	unacked  prometheus.Gauge
	lag      prometheus.Gauge
	// stats mirrors unacked and lag for the backlog report (shared by the pool's workers).
	stats *backlogStats
}

func newTenantHandler(d *poolDeps, tenantID string, tenant uuid.UUID, stats *backlogStats) *tenantHandler {
	t := &tenantHandler{d: d, tenantID: tenantID, queue: rabbit.QueueName(tenantID), tenant: tenant, outcomes: map[string]prometheus.Counter{},
		unacked: d.m.unacked.WithLabelValues(tenantID), lag: d.m.tenantLag.WithLabelValues(tenantID), stats: stats}
	for _, o := range []string{OutcomeStored, OutcomeDuplicate, OutcomeDeadLettered, OutcomeRequeued, OutcomeAbandoned} {
		t.outcomes[o] = d.m.processed.WithLabelValues(tenantID, o)
	}
	return t
}

// handle stores a batch of deliveries with one StoreBatch and settles each exactly once.
// Messages that cannot be stored (too large, not JSON) are dead-lettered on their own.
// Traced, each delivery gets a span (a child of the producer's traceparent header)
// from its arrival to its settlement; see store.StoreBatchTraced for the commit's.
func (t *tenantHandler) handle(ctx context.Context, batch []*message.Message) {
	t.received(batch)
	traced := tracing.Enabled()
	var spans []trace.Span
	var spanContexts []trace.SpanContext
	rows := make([]messages.Row, 0, len(batch))
	keep := batch[:0]
	for _, msg := range batch {
		span := noSpan
		if traced {
			span = t.startSpan(ctx, msg)
		}
		if reason := t.refuse(msg); reason != "" {
			go t.deadLetter(ctx, msg, reason, span)
			continue
		}
		id, err := msgid.FromMessageID(t.tenant, msg.Metadata.Get(amqpsub.MetaMessageID))
		if err != nil {
			msg.Nack()
			t.settleOne(OutcomeRequeued, receivedAt(msg))
			settled(span, OutcomeRequeued, "nack")
			continue
		}
		at := receivedAt(msg)
		rows = append(rows, messages.Row{TenantID: t.tenant, ID: id, Payload: msg.Payload, CreatedAt: at})
		keep = append(keep, msg)
		if traced {
			spans = append(spans, span)
			spanContexts = append(spanContexts, span.SpanContext())
		}
	}
	if len(rows) == 0 {
		return
	}
	results := t.d.writer.StoreBatchTraced(ctx, rows, spanContexts)
	// Settle newest first: the subscription acks the longest settled prefix with one
	// multiple ack, so the oldest delivery settling last sends the batch as one ack.
	for i := len(keep) - 1; i >= 0; i-- {
		msg, res, at := keep[i], results[i], rows[i].CreatedAt
		span := noSpan
		if traced {
			span = spans[i]
			if res.Commit.IsValid() {
				span.AddLink(trace.Link{SpanContext: res.Commit})
			}
		}
		switch {
		case res.Err == nil && res.Inserted:
			msg.Ack()
			t.settleOne(OutcomeStored, at)
			settled(span, OutcomeStored, "ack")
		case res.Err == nil:
			msg.Ack()
			t.settleOne(OutcomeDuplicate, at)
			settled(span, OutcomeDuplicate, "ack")
		case errors.Is(res.Err, store.ErrInvalidRow):
			go t.deadLetter(ctx, msg, "rejected_by_database: payload cannot be stored as jsonb", span)
		case errors.Is(res.Err, store.ErrNoPartition):
			// The tenant is deleted or not set up: requeue; the quorum queue dead-letters it
			// after x-delivery-limit, so this never loops forever.
			t.d.log.Warn("no partition for message, requeueing", "tenant_id", t.tenantID, "err", res.Err)
			msg.Nack()
			t.settleOne(OutcomeRequeued, at)
			settled(span, OutcomeRequeued, "nack")
		default:
			// Shutdown deadline or a pool forced down: not stored, so not acked. The
			// broker redelivers it (and counts that delivery).
			msg.Nack()
			t.settleOne(OutcomeAbandoned, at)
			settled(span, OutcomeAbandoned, "nack")
		}
	}
}

// noSpan is the span of an untraced delivery: every method is a no-op.
var noSpan = trace.SpanFromContext(context.Background())

// startSpan starts msg's delivery span at its arrival, a child of the trace context
// its producer put in the headers (the command service always does when it traces; an
// AMQP producer may).
func (t *tenantHandler) startSpan(ctx context.Context, msg *message.Message) trace.Span {
	ctx = tracing.ExtractMap(ctx, msg.Metadata)
	_, span := tracing.Tracer().Start(ctx, "process "+t.queue,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithTimestamp(receivedAt(msg)),
		trace.WithAttributes(
			semconv.MessagingSystemRabbitMQ,
			semconv.MessagingOperationTypeProcess,
			semconv.MessagingDestinationName(t.queue),
			semconv.MessagingMessageID(msg.Metadata.Get(amqpsub.MetaMessageID)),
			attribute.String(eventstore.MetaTenantID, t.tenantID),
			attribute.Bool("messaging.rabbitmq.redelivered", msg.Metadata.Get(amqpsub.MetaRedelivered) == "true"),
		))
	return span
}

// settled ends a delivery span with its outcome. The ack itself is an event, not a
// span: the subscription sends it later as one multiple-ack shared by many deliveries
// (CONSUMER_ACK_DELAY), so no span could time it for one message.
func settled(span trace.Span, outcome, settlement string) {
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(attribute.String("mtm.outcome", outcome))
	span.AddEvent(settlement)
	span.End()
}

// received counts the batch in flight (settleOne counts each out) and records the
// delivery lag of every message that carries an AMQP timestamp.
func (t *tenantHandler) received(batch []*message.Message) {
	t.unacked.Add(float64(len(batch)))
	t.stats.unacked.Add(int64(len(batch)))
	for _, msg := range batch {
		ts := msg.Metadata.Get(amqpsub.MetaTimestamp)
		if ts == "" {
			continue
		}
		sent, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			continue
		}
		// A producer's clock ahead of ours is no lag.
		lag := max(receivedAt(msg).Sub(sent).Seconds(), 0)
		t.d.m.deliveryLag.Observe(lag)
		t.lag.Set(lag)
		t.stats.setLag(lag)
	}
}

// settleOne records a settled delivery's outcome and its receive-to-settle time.
func (t *tenantHandler) settleOne(outcome string, received time.Time) {
	t.unacked.Dec()
	t.stats.unacked.Add(-1)
	t.outcomes[outcome].Inc()
	t.d.m.latency.Observe(time.Since(received).Seconds())
}

// deadLetter moves msg to the DLQ (acking it) and records the outcome.
func (t *tenantHandler) deadLetter(ctx context.Context, msg *message.Message, reason string, span trace.Span) {
	outcome := t.moveToDLQ(ctx, msg, reason)
	t.settleOne(outcome, receivedAt(msg))
	if span.IsRecording() {
		span.SetAttributes(attribute.String("mtm.dead_letter_reason", reason))
		settlement := "ack"
		if outcome != OutcomeDeadLettered {
			settlement = "nack"
		}
		settled(span, outcome, settlement)
	}
}

// moveToDLQ publishes msg to the tenant's DLQ (retrying while the broker is away) and
// acks the original once the copy is confirmed. It returns the outcome.
func (t *tenantHandler) moveToDLQ(ctx context.Context, msg *message.Message, reason string) string {
	dl := newDeadLetter(msg, reason)
	backoff := 100 * time.Millisecond
	for {
		err := t.d.dl.publish(ctx, t.tenantID, msg, dl)
		if err == nil {
			msg.Ack()
			t.d.log.Info("message dead-lettered", "tenant_id", t.tenantID, "message_id", msg.Metadata.Get(amqpsub.MetaMessageID), "reason", reason)
			return OutcomeDeadLettered
		}
		if errors.Is(err, errDLQRefused) {
			t.d.m.deadLettersRefused.WithLabelValues(t.tenantID).Inc()
		}
		t.d.log.Warn("dead-lettering failed, retrying", "tenant_id", t.tenantID, "err", err)
		if !sleepCtx(ctx, backoff) {
			msg.Nack()
			return OutcomeAbandoned
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

// refuse returns why msg can never be stored ("" if it can).
func (t *tenantHandler) refuse(msg *message.Message) string {
	if limit := t.d.maxMessageBytes; len(msg.Payload) > limit {
		return "too_large: body of " + strconv.Itoa(len(msg.Payload)) + " bytes exceeds MAX_MESSAGE_BYTES=" + strconv.Itoa(limit)
	}
	if err := payload.Check(msg.Payload); err != nil {
		return "invalid_json: " + err.Error()
	}
	return ""
}

func receivedAt(msg *message.Message) time.Time {
	t, err := time.Parse(time.RFC3339Nano, msg.Metadata.Get(amqpsub.MetaReceivedAt))
	if err != nil {
		return time.Now()
	}
	return t
}
