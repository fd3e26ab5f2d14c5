package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/multitenant/mtm/platform/msgid"
	"github.com/multitenant/mtm/platform/rabbit"
	"github.com/multitenant/mtm/projections/deadletters"
)

// Headers the consumer's own dead letters carry besides rabbit.HeaderDeadLetterReason.
const (
	// headerDeadLetterID is unique per dead-lettering: the archive's death key, so the
	// same DLQ delivery archived twice (crash before its ack) is counted once.
	headerDeadLetterID = "x-dead-letter-id"
	// headerDeadLetteredAt is when the consumer dead-lettered it, RFC 3339 with nanoseconds.
	headerDeadLetteredAt = "x-dead-lettered-at"
)

// Archive pass bounds: a pass reads a tenant's DLQ with basic.get in batches of at
// most archiveBatchRows messages or archiveBatchBytes of bodies (a bigger body is a
// batch of its own, so memory is bounded by one batch plus one message), commits each
// batch in one transaction, then acks it. After archivePassBatches batches the tenant
// goes to the back of the line, so one tenant's backlog never starves the others.
const (
	archiveBatchRows   = 256
	archiveBatchBytes  = 4 << 20
	archivePassBatches = 8
	// archiveWorkers is how many tenants are archived at once (each on its own channel
	// and database connection).
	archiveWorkers = 2
	// archiveCommitTimeout bounds one batch's transaction (a locked table or a stuck
	// database must not hold a worker forever; the batch goes back to the DLQ).
	archiveCommitTimeout = 30 * time.Second
)

// archiver moves dead letters from tenants' DLQs into the dead_letters table. It keeps
// no consumer on any DLQ (a dense deployment has thousands): a tenant is archived when
// asked to (request) by the reconciler's sampler, which sees the DLQ's depth every
// ReconcileInterval, or by the dead-letterer right after it dead-lettered something.
// Each request becomes one bounded pass; a tenant has at most one pass at a time, and
// requests during a pass make it run again after.
//
// A DLQ message is acked only after its row committed; a crash in between redelivers
// it and the archive counts the death once (death key). A batch the database refuses
// is returned to the DLQ (the channel is closed) and retried on the next request; it
// blocks only that tenant.
type archiver struct {
	conn *rabbit.Conn
	pool *pgxpool.Pool
	log  *slog.Logger
	m    *metrics
	// live reports whether a tenant may be archived (not deleted).
	live func(tenantID string) bool
	// pendingEvery is how often dead_letters_pending is sampled from Postgres.
	pendingEvery time.Duration
	// liveTenants lists the tenants whose pending gauge is set.
	liveTenants func() []string

	mu      sync.Mutex
	queue   []string                 // requested and not running, in request order
	queued  map[string]bool          // in queue
	running map[string]chan struct{} // closed when the tenant's pass ends
	again   map[string]bool          // requested while running
	wake    chan struct{}
}

func newArchiver(conn *rabbit.Conn, pool *pgxpool.Pool, log *slog.Logger, m *metrics, live func(string) bool, liveTenants func() []string, pendingEvery time.Duration) *archiver {
	return &archiver{
		conn: conn, pool: pool, log: log, m: m, live: live, liveTenants: liveTenants, pendingEvery: pendingEvery,
		queued: map[string]bool{}, running: map[string]chan struct{}{}, again: map[string]bool{},
		wake: make(chan struct{}, 1),
	}
}

// request asks for an archive pass of the tenant's DLQ. Cheap and non-blocking.
func (a *archiver) request(tenantID string) {
	a.mu.Lock()
	switch {
	case a.running[tenantID] != nil:
		a.again[tenantID] = true
	case !a.queued[tenantID]:
		a.queued[tenantID] = true
		a.queue = append(a.queue, tenantID)
	}
	a.mu.Unlock()
	a.signal()
}

func (a *archiver) signal() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// take pops the next tenant and marks it running.
func (a *archiver) take() (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.queue) == 0 {
		return "", false
	}
	id := a.queue[0]
	a.queue = a.queue[1:]
	delete(a.queued, id)
	a.running[id] = make(chan struct{})
	if len(a.queue) > 0 {
		a.signal() // another worker may take the next one
	}
	return id, true
}

// finish ends a tenant's pass; more (the pass stopped at its bound) or a request
// during the pass queues it again. A failed pass is not retried at once: the sampler
// asks again within ReconcileInterval while the DLQ holds messages, which paces the
// retries while the database or broker is away.
func (a *archiver) finish(id string, more, failed bool) {
	a.mu.Lock()
	close(a.running[id])
	delete(a.running, id)
	requeue := !failed && (more || a.again[id])
	delete(a.again, id)
	a.mu.Unlock()
	if requeue {
		a.request(id)
	}
}

// wait blocks until the tenant has no pass running (a removed tenant's pass finishes
// before its archive rows are deleted; no new pass starts for a tenant that is not live).
func (a *archiver) wait(ctx context.Context, id string) error {
	a.mu.Lock()
	done := a.running[id]
	a.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run runs the archive workers and the pending sampler until ctx ends.
func (a *archiver) run(ctx context.Context) {
	var wg sync.WaitGroup
	for range archiveWorkers {
		wg.Add(1)
		go func() { defer wg.Done(); a.work(ctx) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); a.samplePending(ctx) }()
	wg.Wait()
}

func (a *archiver) work(ctx context.Context) {
	var ch *amqp.Channel
	defer func() {
		if ch != nil {
			_ = ch.Close()
		}
	}()
	for ctx.Err() == nil {
		id, ok := a.take()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-a.wake:
			}
			continue
		}
		more, failed := false, false
		if a.live(id) {
			var err error
			more, err = a.pass(ctx, &ch, id)
			if failed = err != nil; failed && ctx.Err() == nil {
				a.m.archiveFailures.Inc()
				a.log.Warn("archiving dead letters failed, will retry", "tenant_id", id, "err", err)
			}
		}
		a.finish(id, more, failed)
	}
}

// pass archives up to archivePassBatches batches of the tenant's DLQ; more is true
// when it stopped at that bound with messages left. On any error the channel is closed,
// which returns its unacked deliveries to the DLQ.
func (a *archiver) pass(ctx context.Context, chp **amqp.Channel, tenantID string) (more bool, err error) {
	tenant, err := uuid.Parse(tenantID)
	if err != nil {
		return false, fmt.Errorf("tenant id is not a UUID: %w", err)
	}
	if *chp == nil || (*chp).IsClosed() {
		ch, err := a.conn.Channel()
		if err != nil {
			return false, err
		}
		*chp = ch
	}
	ch := *chp
	fail := func(err error) (bool, error) {
		_ = ch.Close()
		return false, err
	}
	queue := rabbit.DLQName(tenantID)
	for range archivePassBatches {
		batch, last, left, err := fetchBatch(ch, queue)
		if err != nil {
			return fail(err)
		}
		if len(batch) == 0 {
			return false, nil
		}
		rows := make([]deadletters.Row, len(batch))
		for i, d := range batch {
			rows[i] = archiveRow(tenant, d)
		}
		res, err := a.archive(ctx, tenant, rows)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "22") {
			// A data exception (headers or text the sanitizing missed): keep every
			// message and body, drop the headers rather than wedge the tenant's archive.
			a.log.Warn("dead letter headers refused by the database, archiving without them", "tenant_id", tenantID, "err", err)
			for i := range rows {
				rows[i].Headers = []byte(`{"` + headersTruncatedKey + `":true}`)
			}
			res, err = a.archive(ctx, tenant, rows)
		}
		if err != nil {
			return fail(err)
		}
		// Committed: now the DLQ may forget them (one multiple ack for the batch).
		if err := ch.Ack(last, true); err != nil {
			// The rows are stored; the deliveries come back and are archived once more
			// with the same death keys, which counts nothing twice.
			return fail(fmt.Errorf("ack archived dead letters: %w", err))
		}
		a.m.archived.WithLabelValues("inserted").Add(float64(res.Inserted))
		a.m.archived.WithLabelValues("died_again").Add(float64(res.Died))
		a.m.archived.WithLabelValues("repeated").Add(float64(res.Repeated))
		if !left {
			return false, nil
		}
	}
	return true, nil
}

func (a *archiver) archive(ctx context.Context, tenant uuid.UUID, rows []deadletters.Row) (deadletters.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, archiveCommitTimeout)
	defer cancel()
	return deadletters.Archive(ctx, a.pool, tenant, rows)
}

// fetchBatch basic.gets up to archiveBatchRows deliveries or archiveBatchBytes of
// bodies. last is the highest delivery tag; left reports messages still ready.
func fetchBatch(ch *amqp.Channel, queue string) (batch []amqp.Delivery, last uint64, left bool, err error) {
	size := 0
	for len(batch) < archiveBatchRows && size < archiveBatchBytes {
		d, ok, err := ch.Get(queue, false)
		if err != nil {
			return nil, 0, false, fmt.Errorf("get from %s: %w", queue, err)
		}
		if !ok {
			return batch, last, false, nil
		}
		batch = append(batch, d)
		last, size = d.DeliveryTag, size+len(d.Body)
		if d.MessageCount == 0 {
			return batch, last, false, nil
		}
	}
	return batch, last, true, nil
}

// archiveRow turns one DLQ delivery into its archive row. tenant comes from the queue
// the delivery was read from; nothing in the message can change it.
//
// Who dead-lettered it decides reason and death key:
//   - the broker (delivery_limit, expired, maxlen, rejected) adds x-death, newest
//     death first: reason is its reason, the death key a hash of the whole x-death
//     (every death raises a count and a time in it). A tenant cannot publish into its
//     DLQ directly, and an x-death the producer made up is rewritten by the broker, so
//     x-death wins over a producer's own x-dead-letter-reason.
//   - the consumer's dead-letterer sets x-dead-letter-reason "code: detail" and a
//     fresh x-dead-letter-id per dead-lettering (the death key).
//   - anything else (published into the DLQ by hand) is reason "unknown", keyed by
//     a hash of its content.
//
// Row id: msgid.FromMessageID for a non-empty message_id (the id the message is stored
// under once redriven). Without one (the dead-letterer always sets one; a broker dead
// letter keeps the producer's none) it is UUIDv5(tenant, death key and body hash): the
// same DLQ delivery gives the same id on every archive attempt. Byte-identical messages
// without message_id dead-lettered in the same second with identical x-death are one row.
func archiveRow(tenant uuid.UUID, d amqp.Delivery) deadletters.Row {
	row := deadletters.Row{
		MessageID:      cleanText(d.MessageId),
		Body:           d.Body,
		Headers:        headersJSON(d.Headers),
		DeadLetteredAt: time.Now().UTC(),
	}
	if deaths, ok := d.Headers["x-death"].([]any); ok && len(deaths) > 0 {
		row.Reason = "rejected"
		if newest, ok := deaths[0].(amqp.Table); ok {
			if r, ok := newest["reason"].(string); ok && r != "" {
				row.Reason = cleanText(r)
			}
			if q, ok := newest["queue"].(string); ok {
				row.ReasonDetail = "from " + cleanText(q)
			}
			if at, ok := newest["time"].(time.Time); ok && !at.IsZero() {
				row.DeadLetteredAt = at.UTC()
			}
		}
		canonical, _ := json.Marshal(jsonValue(deaths, 0))
		row.DeathKey = "x-death:" + fingerprint(canonical)
	} else if reason, ok := d.Headers[rabbit.HeaderDeadLetterReason].(string); ok {
		code, detail, _ := strings.Cut(reason, ": ")
		row.Reason, row.ReasonDetail = cleanText(code), cleanText(detail)
		if id, ok := d.Headers[headerDeadLetterID].(string); ok && id != "" {
			row.DeathKey = "id:" + cleanText(id)
		}
		if s, ok := d.Headers[headerDeadLetteredAt].(string); ok {
			if at, err := time.Parse(time.RFC3339Nano, s); err == nil {
				row.DeadLetteredAt = at.UTC()
			}
		}
	} else {
		row.Reason = "unknown"
	}
	if row.DeathKey == "" {
		row.DeathKey = "content:" + fingerprint([]byte(d.MessageId), row.Headers, d.Body)
	}
	if d.MessageId != "" {
		// Cannot fail for a non-empty id.
		row.ID, _ = msgid.FromMessageID(tenant, d.MessageId)
	} else {
		row.ID = uuid.NewSHA1(tenant, []byte("dead-letter:"+fingerprint([]byte(row.DeathKey), d.Body)))
	}
	return row
}

// samplePending sets dead_letters_pending for every live tenant from one grouped
// query every pendingEvery.
func (a *archiver) samplePending(ctx context.Context) {
	t := time.NewTicker(a.pendingEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		counts, err := deadletters.PendingByTenant(qctx, a.pool)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				a.log.Warn("sampling pending dead letters failed", "err", err)
			}
			continue
		}
		for _, id := range a.liveTenants() {
			tenant, err := uuid.Parse(id)
			if err != nil || !a.live(id) {
				continue
			}
			a.m.deadLettersPending.WithLabelValues(id).Set(float64(counts[tenant]))
		}
	}
}
