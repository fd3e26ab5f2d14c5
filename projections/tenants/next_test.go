package tenants_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/events"
	"github.com/multitenant/mtm/projections/tenants"
)

func rec(id string, version int, at time.Time, e events.Event) events.Recorded {
	typ := "tenant.renamed.v9"
	if e != nil {
		typ = e.EventType()
	}
	return events.Recorded{Envelope: events.Envelope{Type: typ, TenantID: id, Version: version,
		Metadata: events.Metadata{OccurredAt: at}}, Event: e}
}

// Next is the whole decision table of the projection; the live Apply and the replay's
// Rebuild both delegate to it.
func TestNextTransitions(t *testing.T) {
	t.Parallel()
	id := uuid.New()
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 6000, time.FixedZone("x", 3600))
	active := tenants.Row{ID: id, Name: "acme", Status: tenants.StatusActive, WorkersDesired: 3, Version: 2,
		CreatedAt: t0.UTC(), UpdatedAt: t0.UTC()}
	later := t0.Add(time.Hour)
	limited := active
	limited.RateLimit, limited.Version = &tenants.RateLimit{PerSecond: 50, Burst: 100}, 3
	deadline := t0.Add(2 * time.Hour).UTC()
	paused := withStatus(active, tenants.StatusPaused, 3, t0)
	draining := withDrain(withStatus(active, tenants.StatusDraining, 3, t0), t0.UTC(), deadline)
	deleted := withStatus(active, tenants.StatusDeleted, 3, t0)
	cases := []struct {
		name    string
		cur     *tenants.Row
		ev      events.Recorded
		want    tenants.Row
		changed bool
	}{
		{"create", nil, rec(id.String(), 1, t0, events.TenantCreated{Name: "acme", Workers: 3}),
			tenants.Row{ID: id, Name: "acme", Status: tenants.StatusActive, WorkersDesired: 3, Version: 1, CreatedAt: t0.UTC(), UpdatedAt: t0.UTC()}, true},
		{"create over an existing row", &active, rec(id.String(), 5, later, events.TenantCreated{Name: "other", Workers: 9}), active, false},
		{"resize without a row", nil, rec(id.String(), 2, later, events.TenantConcurrencyChanged{Workers: 5}), tenants.Row{}, false},
		{"resize at the same version", &active, rec(id.String(), 2, later, events.TenantConcurrencyChanged{Workers: 5}), active, false},
		{"resize at an older version", &active, rec(id.String(), 1, later, events.TenantConcurrencyChanged{Workers: 5}), active, false},
		{"resize", &active, rec(id.String(), 3, later, events.TenantConcurrencyChanged{Workers: 5}),
			tenants.Row{ID: id, Name: "acme", Status: tenants.StatusActive, WorkersDesired: 5, Version: 3, CreatedAt: t0.UTC(), UpdatedAt: later.UTC()}, true},
		{"delete", &active, rec(id.String(), 3, later, events.TenantDeleted{Name: "acme"}),
			tenants.Row{ID: id, Name: "acme", Status: tenants.StatusDeleted, WorkersDesired: 3, Version: 3, CreatedAt: t0.UTC(), UpdatedAt: later.UTC()}, true},
		{"delete at the same version", &active, rec(id.String(), 2, later, events.TenantDeleted{Name: "acme"}), active, false},
		{"delete without a row", nil, rec(id.String(), 3, later, events.TenantDeleted{Name: "acme"}), tenants.Row{}, false},
		{"rate limit", &active, rec(id.String(), 3, later, events.TenantRateLimitChanged{PerSecond: 50, Burst: 100}),
			tenants.Row{ID: id, Name: "acme", Status: tenants.StatusActive, WorkersDesired: 3, RateLimit: &tenants.RateLimit{PerSecond: 50, Burst: 100},
				Version: 3, CreatedAt: t0.UTC(), UpdatedAt: later.UTC()}, true},
		{"unlimited", &limited, rec(id.String(), 4, later, events.TenantRateLimitChanged{}),
			tenants.Row{ID: id, Name: "acme", Status: tenants.StatusActive, WorkersDesired: 3, RateLimit: &tenants.RateLimit{},
				Version: 4, CreatedAt: t0.UTC(), UpdatedAt: later.UTC()}, true},
		{"rate limit at the same version", &limited, rec(id.String(), 3, later, events.TenantRateLimitChanged{PerSecond: 1, Burst: 1}), limited, false},
		{"rate limit without a row", nil, rec(id.String(), 3, later, events.TenantRateLimitChanged{PerSecond: 1, Burst: 1}), tenants.Row{}, false},
		{"pause", &active, rec(id.String(), 3, later, events.TenantPaused{}),
			withStatus(active, tenants.StatusPaused, 3, later), true},
		{"pause at the same version", &active, rec(id.String(), 2, later, events.TenantPaused{}), active, false},
		{"pause without a row", nil, rec(id.String(), 3, later, events.TenantPaused{}), tenants.Row{}, false},
		{"pause a paused tenant", &paused, rec(id.String(), 4, later, events.TenantPaused{}),
			withStatus(paused, tenants.StatusPaused, 4, later), true},
		{"pause never undoes a drain", &draining, rec(id.String(), 4, later, events.TenantPaused{}),
			withStatus(draining, tenants.StatusDraining, 4, later), true},
		{"resume", &paused, rec(id.String(), 4, later, events.TenantResumed{}),
			withStatus(paused, tenants.StatusActive, 4, later), true},
		{"resume at an older version", &paused, rec(id.String(), 2, later, events.TenantResumed{}), paused, false},
		{"resume never undoes a drain", &draining, rec(id.String(), 4, later, events.TenantResumed{}),
			withStatus(draining, tenants.StatusDraining, 4, later), true},
		{"resume a deleted tenant", &deleted, rec(id.String(), 4, later, events.TenantResumed{}),
			withStatus(deleted, tenants.StatusDeleted, 4, later), true},
		{"drain", &active, rec(id.String(), 3, later, events.TenantDeletionRequested{DrainTimeoutSeconds: 300, Deadline: deadline}),
			withDrain(withStatus(active, tenants.StatusDraining, 3, later), later, deadline), true},
		{"drain a paused tenant", &paused, rec(id.String(), 4, later, events.TenantDeletionRequested{DrainTimeoutSeconds: 300, Deadline: deadline}),
			withDrain(withStatus(paused, tenants.StatusDraining, 4, later), later, deadline), true},
		{"drain again re-arms", &draining, rec(id.String(), 4, later.Add(time.Hour), events.TenantDeletionRequested{DrainTimeoutSeconds: 60, Deadline: deadline.Add(time.Hour)}),
			withDrain(withStatus(draining, tenants.StatusDraining, 4, later.Add(time.Hour)), later.Add(time.Hour), deadline.Add(time.Hour)), true},
		{"drain at the same version", &draining, rec(id.String(), 3, later.Add(time.Hour), events.TenantDeletionRequested{Deadline: deadline.Add(time.Hour)}), draining, false},
		{"drain without a row", nil, rec(id.String(), 3, later, events.TenantDeletionRequested{Deadline: deadline}), tenants.Row{}, false},
		{"drain a deleted tenant", &deleted, rec(id.String(), 4, later, events.TenantDeletionRequested{Deadline: deadline}),
			withStatus(deleted, tenants.StatusDeleted, 4, later), true},
		{"delete a draining tenant", &draining, rec(id.String(), 4, later, events.TenantDeleted{Name: "acme"}),
			withStatus(draining, tenants.StatusDeleted, 4, later), true},
		{"redrive moves only the version", &paused, rec(id.String(), 4, later, events.DeadLettersRedriven{Count: 2}),
			withStatus(paused, tenants.StatusPaused, 4, later), true},
		{"purge moves only the version", &draining, rec(id.String(), 4, later, events.DeadLettersPurged{Count: 2}),
			withStatus(draining, tenants.StatusDraining, 4, later), true},
		{"redrive at the same version", &paused, rec(id.String(), 3, later, events.DeadLettersRedriven{Count: 2}), paused, false},
		{"purge without a row", nil, rec(id.String(), 1, later, events.DeadLettersPurged{Count: 2}), tenants.Row{}, false},
		{"resize keeps the rate limit", &limited, rec(id.String(), 4, later, events.TenantConcurrencyChanged{Workers: 5}),
			tenants.Row{ID: id, Name: "acme", Status: tenants.StatusActive, WorkersDesired: 5, RateLimit: &tenants.RateLimit{PerSecond: 50, Burst: 100},
				Version: 4, CreatedAt: t0.UTC(), UpdatedAt: later.UTC()}, true},
	}
	for _, c := range cases {
		var before tenants.Row
		if c.cur != nil {
			before = *c.cur
		}
		got, changed, err := tenants.Next(c.cur, id, c.ev)
		require.NoError(t, err, c.name)
		require.Equal(t, c.want, got, c.name)
		require.Equal(t, c.changed, changed, c.name)
		if c.cur != nil {
			require.Equal(t, before, *c.cur, "%s: Next does not modify its input", c.name)
		}
	}
}

func withStatus(r tenants.Row, status string, version int, at time.Time) tenants.Row {
	r.Status, r.Version, r.UpdatedAt = status, version, at.UTC()
	return r
}

func withDrain(r tenants.Row, requestedAt, deadline time.Time) tenants.Row {
	r.Drain = &tenants.Drain{RequestedAt: requestedAt.UTC(), Deadline: deadline.UTC()}
	return r
}

func TestTarget(t *testing.T) {
	t.Parallel()
	id := uuid.New()
	got, ok, err := tenants.Target(1, rec(id.String(), 1, time.Now(), events.TenantDeleted{}))
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, id, got)
	_, ok, err = tenants.Target(2, rec("not-a-uuid", 1, time.Now(), nil))
	require.NoError(t, err, "an unknown type is not invalid, whatever its tenant id")
	require.False(t, ok)
	_, ok, err = tenants.Target(3, rec("not-a-uuid", 1, time.Now(), events.TenantDeleted{}))
	require.ErrorIs(t, err, tenants.ErrInvalidEvent)
	require.False(t, ok)
}

func TestRebuildFoldsAndCounts(t *testing.T) {
	t.Parallel()
	a, b := uuid.New(), uuid.New()
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	rb := tenants.NewRebuild(2)
	for i, ev := range []events.Recorded{
		rec(a.String(), 1, t0, events.TenantCreated{Name: "a", Workers: 1}),
		rec(b.String(), 2, t0, events.TenantConcurrencyChanged{Workers: 4}), // before its creation: no row
		rec("bad", 1, t0, events.TenantCreated{Name: "bad", Workers: 1}),    // skipped
		rec(b.String(), 1, t0, events.TenantCreated{Name: "b", Workers: 2}),
		rec(a.String(), 3, t0, events.TenantDeleted{Name: "a"}),
		rec(a.String(), 2, t0, events.TenantConcurrencyChanged{Workers: 7}), // older than the deletion
		rec(b.String(), 1, t0, nil),                                         // unknown type
		rec(b.String(), 2, t0, events.TenantRateLimitChanged{PerSecond: 5, Burst: 5}),
	} {
		require.NoError(t, rb.Add(int64(10+i), ev))
	}
	require.Equal(t, 8, rb.Events)
	require.Equal(t, 1, rb.Skipped)
	require.Equal(t, int64(17), rb.Position)
	require.Equal(t, 2, rb.Len())
}
