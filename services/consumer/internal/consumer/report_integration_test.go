//go:build integration

package consumer

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/amqptest"
	"github.com/multitenant/mtm/platform/rabbit"
)

// tenant_workers reports the consumers that actually run: while the workers cannot
// consume (here the queue name is held by another connection's exclusive queue) the
// report drops to 0, and it comes back once they consume again.
func TestReportCountsConsumingWorkers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startService(1 << 16)
	id := e.createTenant(2)
	e.requireConsumers(id, 2)
	require.Eventually(t, func() bool { return e.workersReported(id) == 2 }, 5*time.Second, 20*time.Millisecond)

	squatter := amqptest.Dial(t)
	ch, err := squatter.Channel()
	require.NoError(t, err)
	_, err = ch.QueueDelete(rabbit.QueueName(id), false, false, false)
	require.NoError(t, err)
	// Exclusive to this connection: the service can neither consume from nor declare it.
	_, err = ch.QueueDeclare(rabbit.QueueName(id), false, true, true, false, nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return e.workersReported(id) == 0 }, 5*time.Second, 20*time.Millisecond,
		"no worker consumes")

	require.NoError(t, squatter.Close()) // the exclusive queue goes with its connection
	e.requireConsumers(id, 2)
	require.Eventually(t, func() bool { return e.workersReported(id) == 2 }, 5*time.Second, 20*time.Millisecond)
}
