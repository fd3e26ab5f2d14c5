//go:build integration

package projector_test

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v3/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/events"
	"github.com/multitenant/mtm/platform/eventstore"
	"github.com/multitenant/mtm/platform/pgtest"
	"github.com/multitenant/mtm/platform/postgres"
	"github.com/multitenant/mtm/projections/tenants"
	"github.com/multitenant/mtm/services/query/internal/projector"
)

type bundle struct {
	pool  *pgxpool.Pool
	db    *sql.DB
	store *eventstore.Store
	log   *slog.Logger
}

func setup(t *testing.T) bundle {
	t.Helper()
	db := pgtest.New(t)
	sqlDB := postgres.OpenDB(db.Pool)
	t.Cleanup(func() { _ = sqlDB.Close() })
	return bundle{pool: db.Pool, db: sqlDB, store: eventstore.New(sqlDB, watermill.NopLogger{}), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func (b bundle) append(t *testing.T, id uuid.UUID, version int, at time.Time, e events.Event) {
	t.Helper()
	env, err := events.NewEnvelope(id.String(), version, events.Metadata{EventID: uuid.NewString(), OccurredAt: at}, e)
	require.NoError(t, err)
	_, err = b.store.Append(context.Background(), []events.Envelope{env}, nil)
	require.NoError(t, err)
}

// startProjector runs a projector on its own subscriber until the test ends.
func (b bundle) startProjector(t *testing.T) (*projector.Projector, *prometheus.Registry) {
	t.Helper()
	sub, err := eventstore.NewSubscriber(b.db, projector.ConsumerGroup, watermill.NopLogger{})
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	p := projector.New(projector.Options{
		Pool: b.pool, Store: b.store, Subscriber: sub, Log: b.log,
		Metrics: projector.NewMetrics(reg), LagInterval: 50 * time.Millisecond,
	})
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, p.Stop(ctx))
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-ctx.Done():
			t.Fatal("projector did not stop")
		}
	})
	return p, reg
}

// snapshot is the whole query-side state that replay must reproduce.
type snapshot struct {
	Tenants    []tenants.Tenant
	Checkpoint int64
}

func take(t *testing.T, pool *pgxpool.Pool) snapshot {
	t.Helper()
	ctx := context.Background()
	rows, err := pool.Query(ctx, `SELECT id, name, status, workers_desired, 0, rate_per_second, rate_burst,
		drain_requested_at, drain_deadline, version, created_at, updated_at FROM tenants ORDER BY id`)
	require.NoError(t, err)
	defer rows.Close()
	var s snapshot
	for rows.Next() {
		var tn tenants.Tenant
		var perSecond, burst *int
		var drainAt, drainDeadline *time.Time
		require.NoError(t, rows.Scan(&tn.ID, &tn.Name, &tn.Status, &tn.WorkersDesired, &tn.WorkersCurrent, &perSecond, &burst,
			&drainAt, &drainDeadline, &tn.Version, &tn.CreatedAt, &tn.UpdatedAt))
		if perSecond != nil && burst != nil {
			tn.RateLimit = &tenants.RateLimit{PerSecond: *perSecond, Burst: *burst}
		}
		// Whatever the status: a replay must rebuild the columns exactly.
		if drainAt != nil || drainDeadline != nil {
			require.NotNil(t, drainAt)
			require.NotNil(t, drainDeadline)
			tn.Drain = &tenants.Drain{RequestedAt: drainAt.UTC(), Deadline: drainDeadline.UTC()}
		}
		tn.CreatedAt, tn.UpdatedAt = tn.CreatedAt.UTC(), tn.UpdatedAt.UTC()
		s.Tenants = append(s.Tenants, tn)
	}
	require.NoError(t, rows.Err())
	s.Checkpoint, err = tenants.Checkpoint(ctx, pool)
	require.NoError(t, err)
	return s
}

// seed appends a history: ten tenants, resizes, rate limits, two deletions. It returns the ids.
func (b bundle) seed(t *testing.T) []uuid.UUID {
	t.Helper()
	t0 := time.Date(2025, 4, 1, 10, 0, 0, 123456789, time.UTC)
	var ids []uuid.UUID
	for i := range 10 {
		id := uuid.New()
		ids = append(ids, id)
		b.append(t, id, 1, t0.Add(time.Duration(i)*time.Second), events.TenantCreated{Name: "tenant-" + id.String()[:8], Workers: 3})
	}
	for i, id := range ids[:6] {
		b.append(t, id, 2, t0.Add(time.Minute+time.Duration(i)*time.Second), events.TenantConcurrencyChanged{Workers: 4 + i, PreviousWorkers: 3})
	}
	b.append(t, ids[0], 3, t0.Add(2*time.Minute), events.TenantConcurrencyChanged{Workers: 9, PreviousWorkers: 4})
	b.append(t, ids[1], 3, t0.Add(3*time.Minute), events.TenantDeleted{Name: "tenant-" + ids[1].String()[:8]})
	b.append(t, ids[9], 2, t0.Add(3*time.Minute), events.TenantDeleted{Name: "tenant-" + ids[9].String()[:8]})
	b.append(t, ids[2], 3, t0.Add(4*time.Minute), events.TenantRateLimitChanged{PerSecond: 10, Burst: 30})
	b.append(t, ids[7], 2, t0.Add(4*time.Minute), events.TenantRateLimitChanged{PerSecond: 0, Burst: 0})
	return ids
}

func TestLiveProjectionAndLag(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	ids := b.seed(t)
	p, reg := b.startProjector(t)
	require.Eventually(t, func() bool { return p.Ready(ctx) == nil }, 5*time.Second, 10*time.Millisecond, "ready once subscribed")
	head, err := b.store.Head(ctx)
	require.NoError(t, err)

	require.Eventually(t, func() bool {
		cp, err := tenants.Checkpoint(ctx, b.pool)
		return err == nil && cp == head
	}, 10*time.Second, 20*time.Millisecond, "projection catches up to the store head")

	got, err := tenants.Get(ctx, b.pool, ids[0])
	require.NoError(t, err)
	require.Equal(t, 9, got.WorkersDesired)
	require.Equal(t, 3, got.Version)
	_, err = tenants.Get(ctx, b.pool, ids[1])
	require.ErrorIs(t, err, tenants.ErrNotFound)
	got, err = tenants.Get(ctx, b.pool, ids[7])
	require.NoError(t, err)
	require.Equal(t, 3, got.WorkersDesired)
	require.Equal(t, 2, got.Version)
	require.Equal(t, &tenants.RateLimit{}, got.RateLimit, "unlimited is a limit of its own")
	got, err = tenants.Get(ctx, b.pool, ids[2])
	require.NoError(t, err)
	require.Equal(t, &tenants.RateLimit{PerSecond: 10, Burst: 30}, got.RateLimit)
	got, err = tenants.Get(ctx, b.pool, ids[8])
	require.NoError(t, err)
	require.Nil(t, got.RateLimit, "no limit of its own")
	require.Equal(t, 0.0, counterValue(t, reg, "unknown_type"))
	require.Equal(t, 0.0, counterValue(t, reg, "invalid"))

	require.Eventually(t, func() bool {
		v, ok := gaugeValue(t, reg, projector.LagMetric)
		return ok && v == 0
	}, 5*time.Second, 20*time.Millisecond, "lag gauge drops to 0")

	// A new event flows through: a resize appears without a restart.
	b.append(t, ids[7], 3, time.Now(), events.TenantConcurrencyChanged{Workers: 11, PreviousWorkers: 3})
	require.Eventually(t, func() bool {
		tn, err := tenants.Get(ctx, b.pool, ids[7])
		return err == nil && tn.WorkersDesired == 11 && tn.Version == 3
	}, 5*time.Second, 20*time.Millisecond)
	b.append(t, ids[7], 4, time.Now(), events.TenantRateLimitChanged{PerSecond: 7, Burst: 9})
	require.Eventually(t, func() bool {
		tn, err := tenants.Get(ctx, b.pool, ids[7])
		return err == nil && tn.Version == 4 && tn.RateLimit != nil && *tn.RateLimit == tenants.RateLimit{PerSecond: 7, Burst: 9}
	}, 5*time.Second, 20*time.Millisecond)
	require.Equal(t, 0.0, counterValue(t, reg, "unknown_type"), "the rate limit event is known")
}

// An event that can never be decoded is counted and skipped: it does not block the
// events behind it. An unknown type is skipped too but still advances the checkpoint.
func TestUndecodableEventDoesNotBlock(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	pub, err := wsql.NewPublisher(b.db, wsql.PublisherConfig{SchemaAdapter: wsql.DefaultPostgreSQLSchema{}}, watermill.NopLogger{})
	require.NoError(t, err)
	require.NoError(t, pub.Publish(events.Topic, message.NewMessage(uuid.NewString(), []byte(`{"type":"tenant.created.v1","data":"not an object"}`))))
	badID := message.NewMessage(uuid.NewString(), []byte(`{"type":"tenant.deleted.v1","tenant_id":"not-a-uuid","version":2,"data":{}}`))
	badID.Metadata.Set(eventstore.MetaPosition, "2000")
	require.NoError(t, pub.Publish(events.Topic, badID))
	unknown := message.NewMessage(uuid.NewString(), []byte(`{"type":"tenant.renamed.v9","tenant_id":"`+uuid.NewString()+`","version":2,"data":{}}`))
	unknown.Metadata.Set(eventstore.MetaPosition, "1000")
	require.NoError(t, pub.Publish(events.Topic, unknown))
	id := uuid.New()
	b.append(t, id, 1, time.Now(), events.TenantCreated{Name: "after-poison", Workers: 2})

	_, reg := b.startProjector(t)
	require.Eventually(t, func() bool {
		_, err := tenants.Get(ctx, b.pool, id)
		return err == nil
	}, 10*time.Second, 20*time.Millisecond, "the event behind the poison one is applied")
	require.Equal(t, 2.0, counterValue(t, reg, "invalid"))
	require.Equal(t, 1.0, counterValue(t, reg, "unknown_type"))
	require.Equal(t, 1.0, counterValue(t, reg, "applied"))
	cp, err := tenants.Checkpoint(ctx, b.pool)
	require.NoError(t, err)
	require.Equal(t, int64(2000), cp, "skipped and unknown events advance the checkpoint")
}

func counterValue(t *testing.T, reg *prometheus.Registry, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "query_projection_events_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestNotReadyBeforeSubscribed(t *testing.T) {
	p := projector.New(projector.Options{})
	require.Error(t, p.Ready(context.Background()))
}

func TestLagCountsUnappliedEvents(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.seed(t) // 21 events, none applied: no projector runs
	lag, err := projector.Lag(ctx, b.pool, b.store)
	require.NoError(t, err)
	require.Equal(t, int64(21), lag)
}

// Replay equality: the state built live from the subscription equals the state a
// replay rebuilds from the event store, also after the read model was damaged.
func TestReplayEqualsLiveState(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	ids := b.seed(t)
	// The control plane's events: a paused tenant, a draining one (re-armed), one
	// resumed after a redrive and a purge, one drained and then deleted.
	t1 := time.Date(2025, 4, 1, 11, 0, 0, 987654321, time.UTC)
	b.append(t, ids[3], 3, t1, events.TenantPaused{})
	b.append(t, ids[4], 3, t1, events.TenantDeletionRequested{DrainTimeoutSeconds: 300, Deadline: t1.Add(5 * time.Minute)})
	b.append(t, ids[4], 4, t1.Add(time.Minute), events.TenantDeletionRequested{DrainTimeoutSeconds: 60, Deadline: t1.Add(2 * time.Minute)})
	b.append(t, ids[5], 3, t1, events.TenantPaused{})
	b.append(t, ids[5], 4, t1.Add(time.Second), events.DeadLettersRedriven{Selector: events.DeadLetterSelector{Reason: "expired", Max: 10}, Count: 3})
	b.append(t, ids[5], 5, t1.Add(2*time.Second), events.DeadLettersPurged{Selector: events.DeadLetterSelector{IDs: []string{uuid.NewString()}}, Count: 1})
	b.append(t, ids[5], 6, t1.Add(3*time.Second), events.TenantResumed{})
	b.append(t, ids[6], 2, t1, events.TenantDeletionRequested{DrainTimeoutSeconds: 1, Deadline: t1.Add(time.Second)})
	b.append(t, ids[6], 3, t1.Add(time.Second), events.TenantDeleted{Name: "tenant-" + ids[6].String()[:8]})
	p, _ := b.startProjector(t)
	head, err := b.store.Head(ctx)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		cp, err := tenants.Checkpoint(ctx, b.pool)
		return err == nil && cp == head
	}, 10*time.Second, 20*time.Millisecond)
	ctxStop, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	require.NoError(t, p.Stop(ctxStop))

	before := take(t, b.pool)
	require.Len(t, before.Tenants, 10)
	require.Equal(t, head, before.Checkpoint)
	statuses := map[uuid.UUID]string{}
	for _, tn := range before.Tenants {
		statuses[tn.ID] = tn.Status
	}
	require.Equal(t, tenants.StatusPaused, statuses[ids[3]])
	require.Equal(t, tenants.StatusDraining, statuses[ids[4]])
	require.Equal(t, tenants.StatusActive, statuses[ids[5]])
	require.Equal(t, tenants.StatusDeleted, statuses[ids[6]])
	require.NoError(t, tenants.ReportWorkers(ctx, b.pool, tenants.WorkerReport{Tenant: ids[2], Replica: "replica-a", Current: 2, Owner: true}))

	// Damage the read model: a lost row, a wrong value, a stray tenant, a stale checkpoint.
	_, err = b.pool.Exec(ctx, `DELETE FROM tenants WHERE id = $1`, ids[3])
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `UPDATE tenants SET workers_desired = 99 WHERE id = $1`, ids[4])
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `UPDATE tenants SET rate_per_second = NULL, rate_burst = NULL WHERE id = $1`, ids[2])
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `INSERT INTO tenants (id, name, status, workers_desired, version, created_at, updated_at) VALUES ($1, 'ghost', 'active', 1, 1, now(), now())`, uuid.New())
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `UPDATE tenants SET drain_requested_at = NULL, drain_deadline = NULL, status = 'active' WHERE id = $1`, ids[4])
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `UPDATE projection_checkpoints SET position = 1 WHERE name = 'tenants'`)
	require.NoError(t, err)
	require.NotEqual(t, before, take(t, b.pool))

	// Small batches, so the batching loop runs several times.
	res, err := projector.Replay(ctx, b.pool, 4)
	require.NoError(t, err)
	require.Equal(t, 30, res.Events)
	require.Equal(t, head, res.Position)
	require.Equal(t, before, take(t, b.pool), "replayed state equals the live state")

	// Replay again: still equal (idempotent), and the consumer's report survives.
	_, err = projector.Replay(ctx, b.pool, 500)
	require.NoError(t, err)
	require.Equal(t, before, take(t, b.pool))
	tn, err := tenants.Get(ctx, b.pool, ids[2])
	require.NoError(t, err)
	require.Equal(t, 2, tn.WorkersCurrent, "tenant_workers is not the query side's to reset")
}

func TestReplayEmptyStore(t *testing.T) {
	t.Parallel()
	b := setup(t)
	res, err := projector.Replay(context.Background(), b.pool, 10)
	require.NoError(t, err)
	require.Zero(t, res.Events)
	require.Equal(t, snapshot{}, take(t, b.pool))
	_, err = projector.Replay(context.Background(), b.pool, 0)
	require.Error(t, err)
}

func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// rawEvent stores an event row as is, bypassing the store's version checks, so the
// history can hold what Append would refuse (gaps, stale versions, a tenant id that is
// not a UUID, a type this build does not know).
func (b bundle) rawEvent(t *testing.T, stream uuid.UUID, version int, env events.Envelope) {
	t.Helper()
	payload, err := env.Marshal()
	require.NoError(t, err)
	_, err = b.pool.Exec(context.Background(), `
		INSERT INTO event_store (stream_id, version, event_id, event_type, payload, occurred_at)
		VALUES ($1, $2, $3, $4, $5, $6)`,
		stream, version, uuid.New(), env.Type, payload, env.Metadata.OccurredAt)
	require.NoError(t, err)
}

// referenceReplay rebuilds the read model the way replay used to, and the way the live
// projection does: one tenants.Apply per event, in position order, in one transaction.
func (b bundle) referenceReplay(t *testing.T) (skipped int) {
	t.Helper()
	ctx := context.Background()
	evs, err := b.store.ReadAll(ctx, 0, 1_000_000)
	require.NoError(t, err)
	require.NoError(t, pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		if err := tenants.Reset(ctx, tx); err != nil {
			return err
		}
		for _, ev := range evs {
			_, err := tenants.Apply(ctx, tx, ev.Position, ev.Recorded)
			if errors.Is(err, tenants.ErrInvalidEvent) {
				skipped++
				err = tenants.SaveCheckpoint(ctx, tx, ev.Position)
			}
			if err != nil {
				return err
			}
		}
		return nil
	}))
	return skipped
}

// The in-memory replay equals event-by-event application on an awkward history, at
// every batch size (page boundaries inside a tenant's stream included).
func TestReplayEqualsPerEventApply(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 987654321, time.FixedZone("cest", 2*3600))
	env := func(id string, version int, at time.Time, e events.Event) events.Envelope {
		t.Helper()
		en, err := events.NewEnvelope(id, version, events.Metadata{EventID: uuid.NewString(), OccurredAt: at}, e)
		require.NoError(t, err)
		return en
	}
	var ids []uuid.UUID
	for i := range 40 {
		id := uuid.New()
		ids = append(ids, id)
		at := t0.Add(time.Duration(i) * time.Millisecond)
		switch i % 5 {
		case 0: // plain life: created, two resizes, deleted, resized after deletion
			b.rawEvent(t, id, 1, env(id.String(), 1, at, events.TenantCreated{Name: "t" + id.String()[:8], Workers: 1}))
			b.rawEvent(t, id, 2, env(id.String(), 2, at.Add(time.Second), events.TenantConcurrencyChanged{Workers: 2}))
			b.rawEvent(t, id, 3, env(id.String(), 3, at.Add(2*time.Second), events.TenantConcurrencyChanged{Workers: 3}))
			b.rawEvent(t, id, 4, env(id.String(), 4, at.Add(3*time.Second), events.TenantDeleted{Name: "x"}))
			b.rawEvent(t, id, 5, env(id.String(), 5, at.Add(4*time.Second), events.TenantConcurrencyChanged{Workers: 9}))
		case 1: // versions out of order: the resizes older than the rate limit arrive last and change nothing
			b.rawEvent(t, id, 1, env(id.String(), 1, at, events.TenantCreated{Name: "t" + id.String()[:8], Workers: 1}))
			b.rawEvent(t, id, 4, env(id.String(), 4, at.Add(time.Second), events.TenantRateLimitChanged{PerSecond: 3, Burst: 6}))
			b.rawEvent(t, id, 3, env(id.String(), 3, at.Add(2*time.Second), events.TenantConcurrencyChanged{Workers: 6}))
			b.rawEvent(t, id, 2, env(id.String(), 2, at.Add(3*time.Second), events.TenantConcurrencyChanged{Workers: 5}))
		case 2: // resize before creation, then a second creation
			b.rawEvent(t, id, 2, env(id.String(), 2, at, events.TenantConcurrencyChanged{Workers: 7}))
			b.rawEvent(t, id, 1, env(id.String(), 1, at.Add(time.Second), events.TenantCreated{Name: "t" + id.String()[:8], Workers: 2}))
			b.rawEvent(t, id, 3, env(id.String(), 3, at.Add(2*time.Second), events.TenantCreated{Name: "again", Workers: 8}))
		case 3: // an unknown type and a tenant id that is not a UUID
			b.rawEvent(t, id, 1, env(id.String(), 1, at, events.TenantCreated{Name: "t" + id.String()[:8], Workers: 4}))
			unknown := env(id.String(), 2, at, events.TenantDeleted{})
			unknown.Type = "tenant.renamed.v9"
			b.rawEvent(t, id, 2, unknown)
			b.rawEvent(t, id, 3, env("not-a-uuid", 3, at, events.TenantDeleted{Name: "x"}))
		case 4: // only a deletion and a rate limit: no row at all
			b.rawEvent(t, id, 1, env(id.String(), 1, at, events.TenantDeleted{Name: "x"}))
			b.rawEvent(t, id, 2, env(id.String(), 2, at, events.TenantRateLimitChanged{PerSecond: 1, Burst: 1}))
		}
	}
	// Control-plane lives: paused, resumed, redriven, paused again, drained, a pause
	// that cannot undo the drain, a re-armed drain, a purge; every other one deleted.
	for i := range 8 {
		id := uuid.New()
		at := t0.Add(time.Duration(100+i) * time.Millisecond)
		life := []events.Event{
			events.TenantCreated{Name: "c" + id.String()[:8], Workers: 2},
			events.TenantPaused{},
			events.TenantResumed{},
			events.DeadLettersRedriven{Selector: events.DeadLetterSelector{Reason: "expired", Max: 5}, Count: 2},
			events.TenantPaused{},
			events.TenantDeletionRequested{DrainTimeoutSeconds: 300, Deadline: at.Add(5 * time.Minute)},
			events.TenantPaused{},
			events.TenantDeletionRequested{DrainTimeoutSeconds: 60, Deadline: at.Add(time.Hour)},
			events.DeadLettersPurged{Selector: events.DeadLetterSelector{Max: 5}, Count: 1},
		}
		if i%2 == 0 {
			life = append(life, events.TenantDeleted{Name: "x"})
		}
		for v, e := range life {
			b.rawEvent(t, id, v+1, env(id.String(), v+1, at.Add(time.Duration(v)*time.Second), e))
		}
	}
	head, err := b.store.Head(ctx)
	require.NoError(t, err)

	wantSkipped := b.referenceReplay(t)
	require.Equal(t, 8, wantSkipped, "the 8 events with a non-UUID tenant id")
	want := take(t, b.pool)
	require.Equal(t, head, want.Checkpoint)
	require.Len(t, want.Tenants, 40, "every tenant but the deletion-only ones")
	drained := 0
	for _, tn := range want.Tenants {
		if tn.Status == tenants.StatusDraining {
			drained++
			require.Equal(t, tn.UpdatedAt.Add(time.Hour-8*time.Second), tn.Drain.Deadline, "the re-armed deadline")
		}
	}
	require.Equal(t, 4, drained)

	for _, batch := range []int{1, 3, 7, 10_000} {
		_, err := b.pool.Exec(ctx, `UPDATE tenants SET workers_desired = 99 WHERE id = $1`, ids[0])
		require.NoError(t, err)
		res, err := projector.Replay(ctx, b.pool, batch)
		require.NoError(t, err)
		require.Equal(t, projector.ReplayResult{Events: 212, Skipped: wantSkipped, Position: head, Tenants: 40}, res, "batch %d", batch)
		require.Equal(t, want, take(t, b.pool), "batch %d", batch)
	}
}

// An undecodable payload in the store stops the replay (as it always has) and the
// transaction rolls back: the read model keeps its previous state.
func TestReplayUndecodableEventFailsAndChangesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.seed(t)
	_, err := projector.Replay(ctx, b.pool, 500)
	require.NoError(t, err)
	before := take(t, b.pool)
	_, err = b.pool.Exec(ctx, `
		INSERT INTO event_store (stream_id, version, event_id, event_type, payload, occurred_at)
		VALUES ($1, 1, $2, 'tenant.created.v1', '{"type":"tenant.created.v1","data":"not an object"}', now())`,
		uuid.New(), uuid.New())
	require.NoError(t, err)
	id := uuid.New()
	b.append(t, id, 1, time.Now(), events.TenantCreated{Name: "behind-the-bad-one", Workers: 1})

	// Batch 1: pages behind the bad one are in flight when the fold fails.
	for _, batch := range []int{1, 500} {
		_, err = projector.Replay(ctx, b.pool, batch)
		require.ErrorContains(t, err, "event at position 22", "batch %d", batch)
		require.Equal(t, before, take(t, b.pool), "batch %d", batch)
	}
}
