//go:build integration

package consumer

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/events"
	"github.com/multitenant/mtm/platform/rabbit"
)

// TestEveryReplicaSeesEveryEvent runs two consumers on one database (a rolling update):
// each must learn every tenant, so every queue gets both replicas' workers. A shared
// outbox consumer group would split the events between them.
func TestEveryReplicaSeesEveryEvent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// History before either replica starts: the replay covers it.
	early := e.createTenant(1)
	a := e.startService(1 << 16)
	b := e.startService(1 << 16)
	require.Eventually(t, func() bool { return a.eventsLive.Load() && b.eventsLive.Load() }, 5*time.Second, 10*time.Millisecond)
	require.NotEqual(t, a.d.Group, b.d.Group)

	ids := []string{early}
	for range 10 {
		ids = append(ids, e.createTenant(1))
	}
	for _, id := range ids {
		e.requireConsumers(id, 2)
	}
	for _, svc := range []*Service{a, b} {
		for _, id := range ids {
			require.True(t, svc.state.Live(id), "replica %s knows tenant %s", svc.d.Group, id)
		}
	}

	// The group starts at the head: a replica started now does not re-read the outbox
	// (its offset is already the last event's) but still knows every tenant.
	var head, acked int64
	require.NoError(t, e.db.Pool.QueryRow(context.Background(), `SELECT max("offset") FROM watermill_tenant_events`).Scan(&head))
	c := e.startService(1 << 16)
	require.Eventually(t, func() bool { return c.eventsLive.Load() }, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, e.db.Pool.QueryRow(context.Background(),
		`SELECT offset_acked FROM watermill_offsets_tenant_events WHERE consumer_group = $1`, c.d.Group).Scan(&acked))
	require.Equal(t, head, acked)
	for _, id := range ids {
		require.True(t, c.state.Live(id))
	}
	e.append(early, 2, events.TenantConcurrencyChanged{Workers: 2, PreviousWorkers: 1})
	require.Eventually(t, func() bool { return e.consumers(rabbit.QueueName(early)) == 6 }, 5*time.Second, 20*time.Millisecond)

	// A graceful stop deletes the replica's offsets row.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, c.Stop(ctx))
	var n int
	require.NoError(t, e.db.Pool.QueryRow(context.Background(),
		`SELECT count(*) FROM watermill_offsets_tenant_events WHERE consumer_group = $1`, c.d.Group).Scan(&n))
	require.Zero(t, n)
}
