//go:build integration

package consumer

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/amqptest"
	"github.com/multitenant/mtm/platform/rabbit"
	"github.com/multitenant/mtm/services/consumer/internal/amqpsub"
)

// A pool on its own: Resize sets the broker's consumer count, Pause stops consuming
// but keeps the pool, which consumes again after a later Resize.
func TestPoolPauseAndResume(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := uuid.NewString()
	amqptest.CleanupTenant(t, id)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := rabbit.NewConn(amqptest.URL(t), "pool-test", testLogger())
	connDone := make(chan struct{})
	go func() { defer close(connDone); _ = conn.Run(ctx) }()
	defer func() { cancel(); <-connDone }()
	require.NoError(t, conn.WaitConnected(ctx))
	ch, err := conn.Channel()
	require.NoError(t, err)
	require.NoError(t, rabbit.DefaultTopology.DeclareTenant(ch, id))
	_ = ch.Close()

	sub, err := amqpsub.New(amqpsub.Config{Sources: []amqpsub.ChannelSource{conn}, Prefetch: 8, Log: testLogger()})
	require.NoError(t, err)
	defer sub.Close()
	var pokes atomic.Int32
	m := newMetrics(prometheus.NewRegistry())
	p := newTenantPool(id, uuid.MustParse(id), &poolDeps{
		sub: sub, m: m, log: testLogger(), abort: context.Background(),
		poke: func() { pokes.Add(1) }, maxBatch: 10,
	})

	p.Resize(2)
	e.requireConsumers(id, 2)
	require.Eventually(t, func() bool { return p.Consuming() == 2 }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, 2, p.Size())
	require.Equal(t, 2.0, testutil.ToFloat64(m.workers.WithLabelValues(id)))
	require.GreaterOrEqual(t, pokes.Load(), int32(2), "each consumer that starts wakes the reconciler")

	p.Pause()
	e.requireConsumers(id, 0)
	require.Zero(t, p.Size())
	require.Zero(t, p.Consuming())
	require.NoError(t, p.Wait(ctx), "idle workers finish at once")

	p.Resize(1)
	e.requireConsumers(id, 1)
	require.Eventually(t, func() bool { return p.Consuming() == 1 }, 5*time.Second, 10*time.Millisecond)

	p.Pause()
	require.NoError(t, p.Wait(ctx))
	e.requireConsumers(id, 0)
}
