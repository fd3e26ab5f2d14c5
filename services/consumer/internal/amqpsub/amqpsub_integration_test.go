//go:build integration

package amqpsub

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/amqptest"
	"github.com/multitenant/mtm/platform/rabbit"
)

// subEnv is a fresh quorum queue holding n messages "m0".."m{n-1}", a subscriber on it
// and the test's own connection for inspecting the queue.
type subEnv struct {
	t     *testing.T
	conn  *amqp.Connection
	queue string
	sub   *Subscriber
}

func newSubEnv(t *testing.T, n int) *subEnv {
	t.Helper()
	conn := amqptest.Dial(t)
	tenant := uuid.NewString()
	amqptest.CleanupTenant(t, tenant)
	ch, err := conn.Channel()
	require.NoError(t, err)
	defer ch.Close()
	require.NoError(t, rabbit.DefaultTopology.DeclareTenant(ch, tenant))
	require.NoError(t, ch.Confirm(false))
	queue := rabbit.QueueName(tenant)
	for i := range n {
		dc, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), "", queue, false, false,
			amqp.Publishing{MessageId: fmt.Sprintf("m%d", i), DeliveryMode: amqp.Persistent, Body: []byte(`{}`)})
		require.NoError(t, err)
		ok, err := dc.WaitContext(context.Background())
		require.NoError(t, err)
		require.True(t, ok)
	}
	sub, err := New(Config{Sources: []ChannelSource{conn}, Prefetch: 2 * n, TagPrefix: "test",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Close() })
	return &subEnv{t: t, conn: conn, queue: queue, sub: sub}
}

func (e *subEnv) receive(out <-chan *message.Message, n int) []*message.Message {
	e.t.Helper()
	msgs := make([]*message.Message, n)
	for i := range msgs {
		select {
		case msgs[i] = <-out:
		case <-time.After(10 * time.Second):
			e.t.Fatalf("received %d of %d messages", i, n)
		}
		require.Equal(e.t, fmt.Sprintf("m%d", i), msgs[i].UUID, "deliveries arrive in order")
	}
	return msgs
}

// left waits until the queue holds want ready messages and returns their ids (sorted)
// with their x-delivery-count.
func (e *subEnv) left(want int) map[string]string {
	e.t.Helper()
	require.Eventually(e.t, func() bool {
		q, err := amqptest.Inspect(e.t, e.conn, e.queue)
		return err == nil && q.Messages == want && q.Consumers == 0
	}, 10*time.Second, 5*time.Millisecond)
	ch, err := e.conn.Channel()
	require.NoError(e.t, err)
	defer ch.Close()
	got := map[string]string{}
	for {
		d, ok, err := ch.Get(e.queue, true)
		require.NoError(e.t, err)
		if !ok {
			return got
		}
		got[d.MessageId] = fmt.Sprint(d.Headers["x-delivery-count"])
	}
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Acks are coalesced into multiple acks, but one never covers a delivery that is not
// settled yet: with the oldest delivery still in process, later acks and nacks are
// held back, so abandoning the subscription returns every message.
func TestMultiAckNeverCoversUnsettled(t *testing.T) {
	t.Parallel()
	e := newSubEnv(t, 6)
	out, err := e.sub.Subscribe(context.Background(), e.queue)
	require.NoError(t, err)
	msgs := e.receive(out, 6)
	for _, i := range []int{5, 3, 4, 1} {
		msgs[i].Ack()
	}
	msgs[2].Nack()
	// m0 stays unsettled. Give the settler time to (wrongly) act on the others; the
	// assertion below must hold however long this is.
	time.Sleep(50 * time.Millisecond)
	require.NoError(t, e.sub.Close())
	require.Equal(t, []string{"m0", "m1", "m2", "m3", "m4", "m5"}, keys(e.left(6)))
}

// Stopping a subscription gracefully settles everything: acked messages leave the
// queue (one multiple ack may carry several), a nacked one in the middle goes back on
// its own, and the output closes only after the last settlement.
func TestGracefulStopSettlesAckAndNackInOrder(t *testing.T) {
	t.Parallel()
	e := newSubEnv(t, 6)
	ctx, cancel := context.WithCancel(context.Background())
	out, err := e.sub.Subscribe(ctx, e.queue)
	require.NoError(t, err)
	msgs := e.receive(out, 6)
	cancel()
	for _, i := range []int{4, 5, 1, 3, 0} {
		msgs[i].Ack()
	}
	msgs[2].Nack()
	// Until the broker has processed the cancel, the requeued message may come back to
	// this consumer: nack it again; nothing else may arrive.
	timeout := time.After(10 * time.Second)
	for done := false; !done; {
		select {
		case m, ok := <-out:
			if !ok {
				done = true
				break
			}
			require.Equal(t, "m2", m.UUID)
			m.Nack()
		case <-timeout:
			t.Fatal("output did not close after every message was settled")
		}
	}
	left := e.left(1)
	require.Equal(t, []string{"m2"}, keys(left))
	require.NotEqual(t, "<nil>", left["m2"], "the nack returned it (counted by the quorum queue)")
}
