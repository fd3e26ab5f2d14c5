//go:build integration

package broker_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/amqptest"
	"github.com/multitenant/mtm/platform/rabbit"
	"github.com/multitenant/mtm/services/command/internal/broker"
	"github.com/multitenant/mtm/services/command/internal/commandtest"
)

// publishConfirmed publishes on a fresh confirm-mode channel and waits for the confirm
// or the channel's closing: the broker refuses a publish by closing the channel, which
// amqp091 reports only asynchronously.
func publishConfirmed(t *testing.T, conn *amqp.Connection, exchange, key string) error {
	t.Helper()
	ch, err := conn.Channel()
	require.NoError(t, err)
	defer ch.Close()
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	require.NoError(t, ch.Confirm(false))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, false, false,
		amqp.Publishing{ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: uuid.NewString(), Body: []byte(`{"n":1}`)})
	if err != nil {
		return err
	}
	select {
	case e := <-closed:
		if e == nil {
			return errors.New("channel closed")
		}
		return e
	case <-dc.Done():
		if !dc.Acked() {
			return errors.New("nacked")
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// requireRefused checks that err is the broker's 403 ACCESS_REFUSED.
func requireRefused(t *testing.T, err error, what string) {
	t.Helper()
	var amqpErr *amqp.Error
	require.ErrorAs(t, err, &amqpErr, what)
	require.Equal(t, amqp.AccessRefused, amqpErr.Code, "%s: %v", what, amqpErr)
}

func messages(t *testing.T, admin *amqp.Connection, queue string) int {
	t.Helper()
	q, err := amqptest.Inspect(t, admin, queue)
	require.NoError(t, err)
	return q.Messages
}

// A tenant's account may publish to its own exchange (so its own queue) and nothing
// else: not through the default exchange, not to another tenant, not dead letters; it
// may read, declare, bind, purge or delete nothing, its own DLQ included.
func TestTenantAccountWritesOnlyItsOwnQueue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	admin := amqptest.Dial(t)
	own, other := declareTenant(t, admin), declareTenant(t, admin)
	accounts := commandtest.Accounts(t)
	creds, err := accounts.Grant(ctx, own)
	require.NoError(t, err)
	assert.Equal(t, rabbit.UserName(own), creds.Username)
	assert.Equal(t, "/", creds.VHost)
	assert.GreaterOrEqual(t, len(creds.Password), 43, "256 random bits")
	conn, err := commandtest.DialTenant(t, creds)
	require.NoError(t, err)

	require.NoError(t, publishConfirmed(t, conn, rabbit.ExchangeName(own), ""))
	// The exchange is a fanout bound to the tenant's queue alone: the routing key
	// cannot steer a message elsewhere.
	require.NoError(t, publishConfirmed(t, conn, rabbit.ExchangeName(own), rabbit.QueueName(other)))
	require.NoError(t, publishConfirmed(t, conn, rabbit.ExchangeName(own), rabbit.DLQName(own)))

	refusedPublishes := []struct{ what, exchange, key string }{
		{"default exchange to its own queue", "", rabbit.QueueName(own)},
		{"default exchange to another tenant's queue", "", rabbit.QueueName(other)},
		{"another tenant's exchange", rabbit.ExchangeName(other), ""},
		{"dead letters into its own DLQ", rabbit.DeadLetterExchange, rabbit.DLQName(own)},
		{"dead letters into another tenant's DLQ", rabbit.DeadLetterExchange, rabbit.DLQName(other)},
		{"amq.direct", "amq.direct", rabbit.QueueName(other)},
		{"amq.fanout", "amq.fanout", ""},
	}
	for _, p := range refusedPublishes {
		requireRefused(t, publishConfirmed(t, conn, p.exchange, p.key), p.what)
	}

	refused := []struct {
		what string
		op   func(ch *amqp.Channel) error
	}{
		{"get from its own queue", func(ch *amqp.Channel) error { _, _, err := ch.Get(rabbit.QueueName(own), false); return err }},
		{"get from its own DLQ", func(ch *amqp.Channel) error { _, _, err := ch.Get(rabbit.DLQName(own), false); return err }},
		{"get from another tenant's queue", func(ch *amqp.Channel) error { _, _, err := ch.Get(rabbit.QueueName(other), false); return err }},
		{"consume its own queue", func(ch *amqp.Channel) error {
			_, err := ch.Consume(rabbit.QueueName(own), "", false, false, false, false, nil)
			return err
		}},
		{"consume its own DLQ", func(ch *amqp.Channel) error {
			_, err := ch.Consume(rabbit.DLQName(own), "", false, false, false, false, nil)
			return err
		}},
		{"consume another tenant's queue", func(ch *amqp.Channel) error {
			_, err := ch.Consume(rabbit.QueueName(other), "", false, false, false, false, nil)
			return err
		}},
		{"purge its own queue", func(ch *amqp.Channel) error { _, err := ch.QueuePurge(rabbit.QueueName(own), false); return err }},
		{"delete its own queue", func(ch *amqp.Channel) error {
			_, err := ch.QueueDelete(rabbit.QueueName(own), false, false, false)
			return err
		}},
		{"delete its own exchange", func(ch *amqp.Channel) error { return ch.ExchangeDelete(rabbit.ExchangeName(own), false, false) }},
		{"declare its own queue", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare(rabbit.QueueName(own), true, false, false, false, rabbit.QueueArgs(rabbit.DefaultTopology.Queue, own))
			return err
		}},
		{"declare a server-named queue", func(ch *amqp.Channel) error { _, err := ch.QueueDeclare("", false, true, true, false, nil); return err }},
		{"declare an exchange", func(ch *amqp.Channel) error {
			return ch.ExchangeDeclare("tenant_"+own+"_x", amqp.ExchangeFanout, false, true, false, false, nil)
		}},
		{"bind its own queue to dlx_exchange", func(ch *amqp.Channel) error {
			return ch.QueueBind(rabbit.QueueName(own), rabbit.DLQName(other), rabbit.DeadLetterExchange, false, nil)
		}},
		{"unbind its own queue from its exchange", func(ch *amqp.Channel) error {
			return ch.QueueUnbind(rabbit.QueueName(own), "", rabbit.ExchangeName(own), nil)
		}},
	}
	for _, r := range refused {
		ch, err := conn.Channel()
		require.NoError(t, err)
		requireRefused(t, r.op(ch), r.what)
		_ = ch.Close()
	}

	// Refusals closed channels only; nothing moved.
	require.False(t, conn.IsClosed())
	assert.Equal(t, 3, messages(t, admin, rabbit.QueueName(own)))
	assert.Equal(t, 0, messages(t, admin, rabbit.DLQName(own)))
	assert.Equal(t, 0, messages(t, admin, rabbit.QueueName(other)))
	assert.Equal(t, 0, messages(t, admin, rabbit.DLQName(other)))
}

func TestRotationAndDeletion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	admin := amqptest.Dial(t)
	id := declareTenant(t, admin)
	accounts := commandtest.Accounts(t)
	first, err := accounts.Grant(ctx, id)
	require.NoError(t, err)
	oldConn, err := commandtest.DialTenant(t, first)
	require.NoError(t, err)
	oldClosed := oldConn.NotifyClose(make(chan *amqp.Error, 1))

	ids, err := accounts.Tenants(ctx)
	require.NoError(t, err)
	assert.Contains(t, ids, id)
	assert.NotContains(t, ids, "guest")

	second, err := accounts.Grant(ctx, id)
	require.NoError(t, err)
	require.Equal(t, first.Username, second.Username)
	require.NotEqual(t, first.Password, second.Password)
	_, err = commandtest.DialTenant(t, first)
	require.Error(t, err, "the old password no longer opens a connection")
	require.NoError(t, accounts.Disconnect(ctx, id))
	select {
	case <-oldClosed:
	case <-time.After(10 * time.Second):
		t.Fatal("a connection opened with the old password stayed open")
	}
	conn, err := commandtest.DialTenant(t, second)
	require.NoError(t, err)
	require.NoError(t, publishConfirmed(t, conn, rabbit.ExchangeName(id), ""))

	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	require.NoError(t, accounts.Delete(ctx, id))
	require.NoError(t, accounts.Delete(ctx, id), "deleting again succeeds")
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the deleted user's connection stayed open")
	}
	_, err = commandtest.DialTenant(t, second)
	require.Error(t, err)
	exists, err := amqptest.Admin(t).UserExists(ctx, rabbit.UserName(id))
	require.NoError(t, err)
	require.False(t, exists)
	ids, err = accounts.Tenants(ctx)
	require.NoError(t, err)
	assert.False(t, slices.Contains(ids, id))
}

func TestTenantPermissionsAreAnchored(t *testing.T) {
	t.Parallel()
	p := broker.TenantPermissions("0190f2a4-7b7e-7c3a-9d4e-1a2b3c4d5e6f")
	assert.Equal(t, "^$", p.Configure)
	assert.Equal(t, "^$", p.Read)
	assert.Equal(t, "^tenant_0190f2a4-7b7e-7c3a-9d4e-1a2b3c4d5e6f_queue$", p.Write)
}
