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

	// Operator signals per tenant: in-flight deliveries, delivery lag, archive backlog,
	// paused state.
	unacked            *prometheus.GaugeVec
	deliveryLag        prometheus.Histogram
	tenantLag          *prometheus.GaugeVec
	deadLettersPending *prometheus.GaugeVec
	paused             *prometheus.GaugeVec
	archived           *prometheus.CounterVec
	archiveFailures    prometheus.Counter

	// Scale-out: the live consumer replicas this one sees, and the tenants it runs.
	replicasLive prometheus.Gauge
	tenantsOwned prometheus.Gauge
	handOvers    prometheus.Counter
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
		unacked: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "queue_messages_unacked", Help: "Deliveries of the tenant's queue this consumer holds in flight (received, not yet settled).",
		}, []string{"tenant_id"}),
		deliveryLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "consumer_delivery_lag_seconds", Help: "Delivery time minus the message's AMQP timestamp property (messages without one are not observed; the timestamp has whole seconds).",
			Buckets: []float64{0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600},
		}),
		tenantLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "consumer_tenant_delivery_lag_seconds", Help: "Delivery lag of the tenant's latest timestamped delivery; 0 when its queue is empty (sampled).",
		}, []string{"tenant_id"}),
		deadLettersPending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dead_letters_pending", Help: "Archived dead letters in status pending, sampled from Postgres.",
		}, []string{"tenant_id"}),
		paused: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tenant_paused", Help: "1 while the tenant is paused (its workers stopped), else 0; a draining tenant runs, so 0.",
		}, []string{"tenant_id"}),
		archived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "consumer_dead_letters_archived_total", Help: "DLQ deliveries archived into Postgres, by result (inserted, died_again, repeated: the same dead-lettering seen again).",
		}, []string{"result"}),
		archiveFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "consumer_dead_letter_archive_failures_total", Help: "Archive passes that failed (their dead letters stay in the DLQ and are retried).",
		}),
		replicasLive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "consumer_replicas_live", Help: "Consumer replicas this replica sees heartbeating (itself included).",
		}),
		tenantsOwned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "consumer_tenants_owned", Help: "Live tenants this replica owns and runs (rendezvous hashing over the live replicas).",
		}),
		handOvers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "consumer_tenants_handed_over_total", Help: "Tenants this replica stopped running because another live replica owns them now.",
		}),
	}
	reg.MustRegister(m.replicasLive, m.tenantsOwned, m.handOvers, m.workers, m.pending, m.deadLetters, m.deadLettersRefused, m.processed, m.latency, m.batchSize, m.storeRetries, m.eventsApplied, m.eventsSkipped,
		m.unacked, m.deliveryLag, m.tenantLag, m.deadLettersPending, m.paused, m.archived, m.archiveFailures)
	return m
}

func (m *metrics) forget(tenantID string) {
	m.workers.DeleteLabelValues(tenantID)
	m.pending.DeleteLabelValues(tenantID)
	m.deadLetters.DeleteLabelValues(tenantID)
	m.deadLettersRefused.DeleteLabelValues(tenantID)
	m.unacked.DeleteLabelValues(tenantID)
	m.tenantLag.DeleteLabelValues(tenantID)
	m.deadLettersPending.DeleteLabelValues(tenantID)
	m.paused.DeleteLabelValues(tenantID)
	m.processed.DeletePartialMatch(prometheus.Labels{"tenant_id": tenantID})
}
