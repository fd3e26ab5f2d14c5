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

// TestDeleteDoesNotStallOtherTenants holds a transaction that read messages open (a
// long report, say): DETACH ... CONCURRENTLY cannot finish while it runs. Deleting tenant
// A must not hold up tenant B's set-up; A's partition goes once the transaction ends.
func TestDeleteDoesNotStallOtherTenants(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startService(1 << 16)
	a := e.createTenant(1)
	e.requireConsumers(a, 1)
	require.Eventually(t, func() bool { return e.partitionExists(a) }, 5*time.Second, 20*time.Millisecond)

	ctx := context.Background()
	tx, err := e.db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	var n int
	require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) FROM messages`).Scan(&n))

	e.append(a, 2, events.TenantDeleted{})
	require.Eventually(t, func() bool { return e.consumers(rabbit.QueueName(a)) == -1 }, 5*time.Second, 20*time.Millisecond,
		"A's queue is deleted")
	b := e.createTenant(2)
	e.requireConsumers(b, 2) // within 5 s, while A's detach cannot finish
	require.Eventually(t, func() bool { return e.workersReported(b) == 2 }, 5*time.Second, 20*time.Millisecond)
	require.True(t, e.partitionExists(a), "A's detach waits for the open transaction")

	require.NoError(t, tx.Rollback(ctx))
	require.Eventually(t, func() bool { return !e.partitionExists(a) }, 15*time.Second, 50*time.Millisecond,
		"A's partition is dropped once the transaction ended")
	require.Eventually(t, func() bool { return e.workersReported(a) == -1 }, 5*time.Second, 20*time.Millisecond)
}
