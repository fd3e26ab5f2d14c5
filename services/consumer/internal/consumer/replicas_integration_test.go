//go:build integration

package consumer

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/events"
	"github.com/multitenant/mtm/platform/rabbit"
	"github.com/multitenant/mtm/services/consumer/internal/membership"
)

// TestReplicasShareTenants runs consumer replicas on one database: each learns every
// tenant (every replica follows the whole outbox under its own group; a shared group
// would split the events between them), but each tenant runs on one of them, so every
// queue has exactly the tenant's worker count however many replicas run.
func TestReplicasShareTenants(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// History before either replica starts: the replay covers it.
	early := e.createTenant(1)
	a := e.startService(1 << 16)
	b := e.startService(1 << 16)
	require.Eventually(t, func() bool { return a.eventsLive.Load() && b.eventsLive.Load() }, 5*time.Second, 10*time.Millisecond)
	require.NotEqual(t, a.d.Group, b.d.Group)
	require.NotEqual(t, a.d.ReplicaID, b.d.ReplicaID)

	ids := []string{early}
	for range 29 {
		ids = append(ids, e.createTenant(1))
	}
	for _, id := range ids {
		e.requireConsumers(id, 1)
	}
	for _, svc := range []*Service{a, b} {
		for _, id := range ids {
			require.True(t, svc.state.Live(id), "replica %s knows tenant %s", svc.d.ReplicaID, id)
		}
	}
	owners := e.requireOwnersConverged(ids, 1, a, b)
	require.Len(t, owners, 2, "30 tenants over 2 replicas: both own some")

	// The group starts at the head: a replica started now does not re-read the outbox
	// (its offset is already the last event's) but still knows every tenant, and takes
	// its share of them.
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
	owners = e.requireOwnersConverged(ids, 1, a, b, c)
	require.Len(t, owners, 3, "the new replica takes a share")
	for _, id := range ids {
		e.requireConsumers(id, 1)
	}
	e.append(early, 2, events.TenantConcurrencyChanged{Workers: 3, PreviousWorkers: 1})
	e.requireConsumers(early, 3)
	require.Eventually(t, func() bool { return e.workersReported(early) == 3 }, 5*time.Second, 20*time.Millisecond)

	// A graceful stop deletes the replica's offsets row.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, c.Stop(ctx))
	var n int
	require.NoError(t, e.db.Pool.QueryRow(context.Background(),
		`SELECT count(*) FROM watermill_offsets_tenant_events WHERE consumer_group = $1`, c.d.Group).Scan(&n))
	require.Zero(t, n)
	// ... and hands its tenants over: its membership row and reports go, and the two
	// left own everything again, with exact counts.
	require.NoError(t, e.db.Pool.QueryRow(context.Background(),
		`SELECT count(*) FROM consumer_replicas WHERE replica_id = $1`, c.d.ReplicaID).Scan(&n))
	require.Zero(t, n)
	owners = e.requireOwnersConverged(ids[1:], 1, a, b)
	require.Len(t, owners, 2)
	e.requireConsumers(early, 3)
}

// requireOwnersConverged waits until every tenant in ids is owned by one of svcs, which
// reports exactly workers for it (the sum over replicas too), and returns the owners seen.
func (e *env) requireOwnersConverged(ids []string, workers int, svcs ...*Service) map[string]int {
	e.t.Helper()
	known := map[string]bool{}
	for _, s := range svcs {
		known[s.d.ReplicaID] = true
	}
	var owners map[string]int
	require.Eventually(e.t, func() bool {
		// Every replica sees exactly svcs as live...
		var view membership.View
		for _, s := range svcs {
			v, ok := s.members.View()
			if !ok || len(v.Replicas) != len(svcs) {
				return false
			}
			for _, r := range v.Replicas {
				if !known[r] {
					return false
				}
			}
			view = v
		}
		// ... and every tenant runs on the owner that view gives it.
		owners = map[string]int{}
		for _, id := range ids {
			var owner *string
			var current int
			var replicas []string
			err := e.db.Pool.QueryRow(context.Background(),
				`SELECT owner, current, replicas FROM tenant_workers WHERE tenant_id = $1`, id).Scan(&owner, &current, &replicas)
			if err != nil || owner == nil || *owner != view.Owner(id) || current != workers || len(replicas) != 1 || replicas[0] != *owner {
				return false
			}
			if e.consumers(rabbit.QueueName(id)) != workers {
				return false
			}
			owners[*owner]++
		}
		return true
	}, 15*time.Second, 50*time.Millisecond, "every tenant owned by one live replica with %d workers", workers)
	return owners
}
