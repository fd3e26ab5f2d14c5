//go:build integration

package broker_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/amqptest"
	"github.com/multitenant/mtm/platform/rabbit"
	"github.com/multitenant/mtm/services/command/internal/broker"
)

// The bound reaches a tenant DLQ declared before the policy existed, without a redeclare.
func TestDLQBoundAppliesToExistingDLQs(t *testing.T) {
	ctx := context.Background()
	admin := amqptest.Admin(t)
	id := declareTenant(t, amqptest.Dial(t))

	bound := broker.NewDLQBound(admin, "/", 10000)
	require.NoError(t, bound.Ensure(ctx))
	require.NoError(t, bound.Ensure(ctx), "idempotent")
	t.Cleanup(func() { _ = admin.DeletePolicy(context.Background(), "/", rabbit.DLQPolicyName) })
	require.Eventually(t, func() bool {
		q, err := admin.Queue(ctx, "/", rabbit.DLQName(id))
		return err == nil && q.Policy == rabbit.DLQPolicyName
	}, 10*time.Second, 50*time.Millisecond, "the DLQ carries the bound")
	q, err := admin.Queue(ctx, "/", rabbit.QueueName(id))
	require.NoError(t, err)
	require.Empty(t, q.Policy, "work queues are not bounded by it")
}
