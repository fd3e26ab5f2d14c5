//go:build integration

package tenants_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/events"
	"github.com/multitenant/mtm/platform/pgtest"
	"github.com/multitenant/mtm/projections/cursor"
	"github.com/multitenant/mtm/projections/tenants"
)

func record(t *testing.T, id uuid.UUID, version int, at time.Time, e events.Event) events.Recorded {
	t.Helper()
	env, err := events.NewEnvelope(id.String(), version, events.Metadata{EventID: uuid.NewString(), OccurredAt: at}, e)
	require.NoError(t, err)
	return events.Recorded{Envelope: env, Event: e}
}

func apply(t *testing.T, pool *pgxpool.Pool, pos int64, rec events.Recorded) bool {
	t.Helper()
	var changed bool
	err := pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
		var err error
		changed, err = tenants.Apply(context.Background(), tx, pos, rec)
		return err
	})
	require.NoError(t, err)
	return changed
}

func TestApplyIdempotentByVersion(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	id := uuid.New()
	t0 := time.Date(2025, 2, 3, 4, 5, 6, 789000, time.UTC)

	created := record(t, id, 1, t0, events.TenantCreated{Name: "acme", Workers: 3})
	require.True(t, apply(t, db.Pool, 1, created))
	require.False(t, apply(t, db.Pool, 1, created), "same event twice changes nothing")

	resized := record(t, id, 2, t0.Add(time.Minute), events.TenantConcurrencyChanged{Workers: 7, PreviousWorkers: 3})
	require.True(t, apply(t, db.Pool, 2, resized))
	require.False(t, apply(t, db.Pool, 2, resized))
	// An older event arriving late changes nothing either.
	stale := record(t, id, 2, t0.Add(time.Hour), events.TenantConcurrencyChanged{Workers: 1})
	require.False(t, apply(t, db.Pool, 3, stale))

	got, err := tenants.Get(ctx, db.Pool, id)
	require.NoError(t, err)
	require.Equal(t, tenants.Tenant{
		ID: id, Name: "acme", Status: tenants.StatusActive, WorkersDesired: 7, WorkersCurrent: 0,
		Version: 2, CreatedAt: t0, UpdatedAt: t0.Add(time.Minute),
	}, got)

	cp, err := tenants.Checkpoint(ctx, db.Pool)
	require.NoError(t, err)
	require.Equal(t, int64(3), cp)
	// The checkpoint never moves back (positions commit out of order).
	require.False(t, apply(t, db.Pool, 2, resized))
	cp, err = tenants.Checkpoint(ctx, db.Pool)
	require.NoError(t, err)
	require.Equal(t, int64(3), cp)

	// A rate limit of its own shows on the tenant; redelivery changes nothing.
	limited := record(t, id, 3, t0.Add(90*time.Second), events.TenantRateLimitChanged{PerSecond: 20, Burst: 40})
	require.True(t, apply(t, db.Pool, 4, limited))
	require.False(t, apply(t, db.Pool, 4, limited))
	got, err = tenants.Get(ctx, db.Pool, id)
	require.NoError(t, err)
	require.Equal(t, &tenants.RateLimit{PerSecond: 20, Burst: 40}, got.RateLimit)
	require.Equal(t, 3, got.Version)
	require.Equal(t, 7, got.WorkersDesired)

	deleted := record(t, id, 4, t0.Add(2*time.Minute), events.TenantDeleted{Name: "acme"})
	require.True(t, apply(t, db.Pool, 5, deleted))
	require.False(t, apply(t, db.Pool, 5, deleted))
	_, err = tenants.Get(ctx, db.Pool, id)
	require.ErrorIs(t, err, tenants.ErrNotFound, "deleted tenants are hidden")
	ok, err := tenants.Exists(ctx, db.Pool, id)
	require.NoError(t, err)
	require.False(t, ok)
	var status string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT status FROM tenants WHERE id = $1`, id).Scan(&status))
	require.Equal(t, tenants.StatusDeleted, status, "kept for replay equality")

	// Unknown event types advance the checkpoint only.
	unknown := events.Recorded{Envelope: events.Envelope{Type: "tenant.renamed.v9", TenantID: id.String(), Version: 5}}
	require.False(t, apply(t, db.Pool, 9, unknown))
	cp, err = tenants.Checkpoint(ctx, db.Pool)
	require.NoError(t, err)
	require.Equal(t, int64(9), cp)

	_, err = tenants.Get(ctx, db.Pool, uuid.New())
	require.ErrorIs(t, err, tenants.ErrNotFound)

	// A known event whose tenant id is not a UUID can never apply: a distinct error.
	bad := record(t, id, 6, t0, events.TenantConcurrencyChanged{Workers: 1})
	bad.TenantID = "nope"
	err = pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		_, err := tenants.Apply(ctx, tx, 10, bad)
		return err
	})
	require.ErrorIs(t, err, tenants.ErrInvalidEvent)
}

// Pause, resume, drain (and its re-arm) and the dead-letter events go through Apply to
// the row and back through Get; each is idempotent by version like the older events.
func TestApplyControlPlaneEvents(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	id := uuid.New()
	t0 := time.Date(2025, 2, 3, 4, 5, 6, 789000, time.UTC)
	get := func() tenants.Tenant {
		t.Helper()
		got, err := tenants.Get(ctx, db.Pool, id)
		require.NoError(t, err)
		return got
	}
	require.True(t, apply(t, db.Pool, 1, record(t, id, 1, t0, events.TenantCreated{Name: "acme", Workers: 3})))

	paused := record(t, id, 2, t0.Add(time.Minute), events.TenantPaused{})
	require.True(t, apply(t, db.Pool, 2, paused))
	require.False(t, apply(t, db.Pool, 2, paused), "redelivery changes nothing")
	got := get()
	require.Equal(t, tenants.StatusPaused, got.Status)
	require.Equal(t, 3, got.WorkersDesired, "the desired count is kept for the resume")
	require.Nil(t, got.Drain)

	require.True(t, apply(t, db.Pool, 3, record(t, id, 3, t0.Add(2*time.Minute), events.TenantResumed{})))
	require.Equal(t, tenants.StatusActive, get().Status)

	require.True(t, apply(t, db.Pool, 4, record(t, id, 4, t0.Add(3*time.Minute), events.DeadLettersRedriven{Count: 5})))
	got = get()
	require.Equal(t, tenants.StatusActive, got.Status)
	require.Equal(t, 4, got.Version)
	require.Equal(t, t0.Add(3*time.Minute), got.UpdatedAt)

	deadline := t0.Add(8 * time.Minute)
	drain := record(t, id, 5, t0.Add(4*time.Minute), events.TenantDeletionRequested{DrainTimeoutSeconds: 240, Deadline: deadline})
	require.True(t, apply(t, db.Pool, 5, drain))
	require.False(t, apply(t, db.Pool, 5, drain))
	got = get()
	require.Equal(t, tenants.StatusDraining, got.Status)
	require.Equal(t, &tenants.Drain{RequestedAt: t0.Add(4 * time.Minute), Deadline: deadline}, got.Drain)

	// A pause never undoes a drain; a second request re-arms it.
	require.True(t, apply(t, db.Pool, 6, record(t, id, 6, t0.Add(5*time.Minute), events.TenantPaused{})))
	require.Equal(t, tenants.StatusDraining, get().Status)
	rearm := record(t, id, 7, t0.Add(6*time.Minute), events.TenantDeletionRequested{DrainTimeoutSeconds: 60, Deadline: t0.Add(7 * time.Minute)})
	require.True(t, apply(t, db.Pool, 7, rearm))
	got = get()
	require.Equal(t, &tenants.Drain{RequestedAt: t0.Add(6 * time.Minute), Deadline: t0.Add(7 * time.Minute)}, got.Drain)
	require.Equal(t, 7, got.Version)
	list, _, err := tenants.List(ctx, db.Pool, nil, 10, tenants.AllTenants())
	require.NoError(t, err)
	require.Equal(t, []tenants.Tenant{got}, list, "the list shows what Get shows")

	require.True(t, apply(t, db.Pool, 8, record(t, id, 8, t0.Add(9*time.Minute), events.TenantDeleted{Name: "acme"})))
	_, err = tenants.Get(ctx, db.Pool, id)
	require.ErrorIs(t, err, tenants.ErrNotFound)
}

func TestWorkersCurrentAndList(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

	// 7 tenants; three share one created_at so the keyset tie-break on id matters.
	var ids []uuid.UUID
	for i := range 7 {
		id := uuid.New()
		ids = append(ids, id)
		at := t0.Add(time.Duration(min(i, 3)) * time.Second)
		apply(t, db.Pool, int64(i+1), record(t, id, 1, at, events.TenantCreated{Name: "t" + id.String(), Workers: i + 1}))
	}
	apply(t, db.Pool, 100, record(t, ids[1], 2, t0.Add(time.Hour), events.TenantDeleted{}))

	_, err := db.Pool.Exec(ctx, `INSERT INTO tenant_workers (tenant_id, current) VALUES ($1, 5)`, ids[0])
	require.NoError(t, err)
	got, err := tenants.Get(ctx, db.Pool, ids[0])
	require.NoError(t, err)
	require.Equal(t, 1, got.WorkersDesired)
	require.Equal(t, 5, got.WorkersCurrent)
	_, err = db.Pool.Exec(ctx, `UPDATE tenant_workers SET current = 2 WHERE tenant_id = $1`, ids[0])
	require.NoError(t, err)
	got, err = tenants.Get(ctx, db.Pool, ids[0])
	require.NoError(t, err)
	require.Equal(t, 2, got.WorkersCurrent, "current follows the consumer's report")

	var walked []uuid.UUID
	var after *cursor.Position
	for {
		page, more, err := tenants.List(ctx, db.Pool, after, 2, tenants.AllTenants())
		require.NoError(t, err)
		for _, tn := range page {
			walked = append(walked, tn.ID)
			require.NotEqual(t, tenants.StatusDeleted, tn.Status)
		}
		if !more {
			break
		}
		p := page[len(page)-1].Position()
		after = &p
	}
	require.Len(t, walked, 6, "all live tenants, the deleted one hidden")
	require.NotContains(t, walked, ids[1])
	require.ElementsMatch(t, append([]uuid.UUID{ids[0]}, ids[2:]...), walked)
	for i := 1; i < len(walked); i++ {
		require.NotEqual(t, walked[i-1], walked[i])
	}

	only, more, err := tenants.List(ctx, db.Pool, nil, 10, tenants.OnlyTenant(ids[3]))
	require.NoError(t, err)
	require.False(t, more)
	require.Len(t, only, 1)
	require.Equal(t, ids[3], only[0].ID)
	p := only[0].Position()
	only, _, err = tenants.List(ctx, db.Pool, &p, 10, tenants.OnlyTenant(ids[3]))
	require.NoError(t, err)
	require.Empty(t, only)
	only, _, err = tenants.List(ctx, db.Pool, nil, 10, tenants.OnlyTenant(ids[1]))
	require.NoError(t, err)
	require.Empty(t, only, "a deleted tenant sees an empty list")
	// The nil UUID is no wildcard: only AllTenants lists everyone.
	for _, scope := range []tenants.Scope{{}, tenants.OnlyTenant(uuid.Nil)} {
		none, more, err := tenants.List(ctx, db.Pool, nil, 10, scope)
		require.NoError(t, err)
		require.False(t, more)
		require.Empty(t, none)
	}

	_, _, err = tenants.List(ctx, db.Pool, nil, 0, tenants.AllTenants())
	require.Error(t, err)
}

func TestReset(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	id := uuid.New()
	apply(t, db.Pool, 1, record(t, id, 1, time.Now(), events.TenantCreated{Name: "a", Workers: 1}))
	_, err := db.Pool.Exec(ctx, `INSERT INTO tenant_workers (tenant_id, current) VALUES ($1, 1)`, id)
	require.NoError(t, err)

	require.NoError(t, pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error { return tenants.Reset(ctx, tx) }))
	var n int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM tenants`).Scan(&n))
	require.Zero(t, n)
	cp, err := tenants.Checkpoint(ctx, db.Pool)
	require.NoError(t, err)
	require.Zero(t, cp)
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM tenant_workers`).Scan(&n))
	require.Equal(t, 1, n, "tenant_workers belongs to the consumer and survives a reset")
}
