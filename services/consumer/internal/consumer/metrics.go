package consumer

import "github.com/prometheus/client_golang/prometheus"

// Outcomes of one delivery (label "outcome" of messages_processed_total).
const (
	OutcomeStored       = "stored"
	OutcomeDuplicate    = "duplicate"
	OutcomeDeadLettered = "dead_lettered"
	OutcomeRequeued     = "requeued"
	OutcomeAbandoned    = "abandoned"
)

type metrics struct {
	workers     *prometheus.GaugeVec
	pending     *prometheus.GaugeVec
	deadLetters *prometheus.GaugeVec
	// deadLettersRefused counts dead letters the broker refused (a full DLQ): those
	// messages wait unacked in the tenant's queue and are retried.
	deadLettersRefused *prometheus.CounterVec
	processed          *prometheus.CounterVec
	latency            prometheus.Histogram
	batchSize          prometheus.Histogram
	storeRetries       prometheus.Counter
	eventsApplied      prometheus.Counter
	eventsSkipped      *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		workers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tenant_workers_current", Help: "Workers (AMQP consumers) running per tenant.",
		}, []string{"tenant_id"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "queue_messages_pending", Help: "Ready messages in the tenant's queue, sampled by passive declare.",
		}, []string{"tenant_id"}),
		deadLetters: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "queue_dead_letters", Help: "Messages in the tenant's DLQ, sampled by passive declare (the DLQ is bounded: watch it fill).",
		}, []string{"tenant_id"}),
		deadLettersRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "consumer_dead_letters_refused_total", Help: "Dead letters the broker refused (DLQ at its bound); the messages stay in the tenant's queue and are retried.",
		}, []string{"tenant_id"}),
		processed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "messages_processed_total", Help: "Deliveries handled, by outcome (stored, duplicate, dead_lettered, requeued, abandoned).",
		}, []string{"tenant_id", "outcome"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "consumer_message_processing_seconds", Help: "Time from receiving a delivery to settling it (ack after commit, or dead-letter).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "consumer_store_batch_rows", Help: "Rows per group-commit transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11),
		}),
		storeRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "consumer_store_retries_total", Help: "Group commits retried after a transient database error.",
		}),
		eventsApplied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "consumer_events_applied_total", Help: "Tenant events that changed desired state.",
		}),
		eventsSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "consumer_events_skipped_total", Help: "Events skipped, by reason (unknown_type, malformed).",
		}, []string{"reason"}),
	}
	reg.MustRegister(m.workers, m.pending, m.deadLetters, m.deadLettersRefused, m.processed, m.latency, m.batchSize, m.storeRetries, m.eventsApplied, m.eventsSkipped)
	return m
}

func (m *metrics) forget(tenantID string) {
	m.workers.DeleteLabelValues(tenantID)
	m.pending.DeleteLabelValues(tenantID)
	m.deadLetters.DeleteLabelValues(tenantID)
	m.deadLettersRefused.DeleteLabelValues(tenantID)
	m.processed.DeletePartialMatch(prometheus.Labels{"tenant_id": tenantID})
}
