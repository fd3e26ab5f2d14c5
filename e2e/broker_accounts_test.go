//go:build integration

package e2e

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/amqptest"
	"github.com/multitenant/mtm/platform/msgid"
	"github.com/multitenant/mtm/platform/rabbit"
)

// startSystemWithAccounts is startSystem with per-tenant broker accounts on.
func startSystemWithAccounts(t *testing.T) *system {
	t.Helper()
	env := Env(t)
	env["RABBITMQ_MANAGEMENT_URL"] = amqptest.ManagementURL(t)
	return startSystemWith(t, env)
}

// tenantAMQP is a tenant's own broker account as POST /tenants or /credentials gave it.
type tenantAMQP struct{ user, password, exchange string }

func amqpOf(t *testing.T, body map[string]any) tenantAMQP {
	t.Helper()
	a, ok := body["amqp"].(map[string]any)
	require.True(t, ok, "%v", body)
	return tenantAMQP{user: a["username"].(string), password: a["password"].(string), exchange: a["exchange"].(string)}
}

func dialAs(t *testing.T, a tenantAMQP) (*amqp.Connection, error) {
	t.Helper()
	u, err := url.Parse(amqptest.URL(t))
	require.NoError(t, err)
	u.User = url.UserPassword(a.user, a.password)
	conn, err := amqp.DialConfig(u.String(), amqp.Config{Dial: amqp.DefaultDial(10 * time.Second)})
	if err == nil {
		t.Cleanup(func() { _ = conn.Close() })
	}
	return conn, err
}

// publishAs publishes on a fresh confirm channel and returns the confirm or the
// broker's refusal (which closes the channel).
func publishAs(t *testing.T, conn *amqp.Connection, exchange, key, messageID string) error {
	t.Helper()
	ch, err := conn.Channel()
	require.NoError(t, err)
	defer ch.Close()
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	require.NoError(t, ch.Confirm(false))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, false, false, amqp.Publishing{
		MessageId: messageID, DeliveryMode: amqp.Persistent, ContentType: "application/json", Body: []byte(`{"via":"amqp"}`),
	})
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

func requireAccessRefused(t *testing.T, err error, what string) {
	t.Helper()
	var amqpErr *amqp.Error
	require.ErrorAs(t, err, &amqpErr, what)
	require.Equal(t, amqp.AccessRefused, amqpErr.Code, "%s: %v", what, amqpErr)
}

// Each tenant gets its own broker account with the 201; it writes its own queue and
// nothing else, its messages are stored, its password rotates, and it goes with the
// tenant. An AMQP message_id and an HTTP Idempotency-Key of the same string are two
// messages.
func TestBrokerAccountsEndToEnd(t *testing.T) {
	s := startSystemWithAccounts(t)
	create := func(name string) (string, tenantAMQP) {
		code, _, body := jsonCall(t, "POST", s.command.URL()+"/tenants", map[string]any{"name": name + "-" + uuid.NewString()[:8], "workers": 1}, nil)
		require.Equal(t, 201, code, "%v", body)
		id := body["id"].(string)
		amqptest.CleanupTenant(t, id)
		return id, amqpOf(t, body)
	}
	a, accA := create("acct-a")
	b, _ := create("acct-b")
	require.Equal(t, rabbit.ExchangeName(a), accA.exchange)

	conn, err := dialAs(t, accA)
	require.NoError(t, err)
	require.NoError(t, publishAs(t, conn, accA.exchange, "", "order-42"), "its own queue")
	requireAccessRefused(t, publishAs(t, conn, rabbit.ExchangeName(b), "", "forged"), "another tenant's exchange")
	requireAccessRefused(t, publishAs(t, conn, "", rabbit.QueueName(b), "forged"), "another tenant's queue through the default exchange")

	// The HTTP key "order-42" is another message than AMQP message_id "order-42".
	code, _, body := jsonCall(t, "POST", s.command.URL()+"/tenants/"+a+"/messages", map[string]any{"via": "http"}, map[string]string{"Idempotency-Key": "order-42"})
	require.Equal(t, 202, code, "%v", body)
	httpID := body["id"].(string)
	amqpID := uuid.NewSHA1(uuid.MustParse(a), []byte("order-42")).String()
	require.Equal(t, msgid.FromIdempotencyKey(uuid.MustParse(a), "order-42").String(), httpID)
	require.NotEqual(t, amqpID, httpID)
	require.Eventually(t, func() bool { return len(allMessageIDs(t, s.query, a)) >= 2 }, 15*time.Second, 50*time.Millisecond)
	require.ElementsMatch(t, []string{amqpID, httpID}, allMessageIDs(t, s.query, a))
	require.Empty(t, allMessageIDs(t, s.query, b), "nothing forged reached the other tenant")

	// Rotation: the old password and its open connection stop working.
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	code, _, body = jsonCall(t, "POST", s.command.URL()+"/tenants/"+a+"/credentials", nil, nil)
	require.Equal(t, 200, code, "%v", body)
	rotated := amqpOf(t, body)
	require.NotEqual(t, accA.password, rotated.password)
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the connection opened with the old password stayed open")
	}
	_, err = dialAs(t, accA)
	require.Error(t, err)
	conn, err = dialAs(t, rotated)
	require.NoError(t, err)
	require.NoError(t, publishAs(t, conn, rotated.exchange, "", "after-rotation"))
	require.Eventually(t, func() bool { return len(allMessageIDs(t, s.query, a)) == 3 }, 15*time.Second, 50*time.Millisecond)

	// Deletion removes the user at once (its connection closes), the consumer the queues.
	closed = conn.NotifyClose(make(chan *amqp.Error, 1))
	code, _, body = jsonCall(t, "DELETE", s.command.URL()+"/tenants/"+a, nil, nil)
	require.Equal(t, 202, code, "%v", body)
	exists, err := amqptest.Admin(t).UserExists(context.Background(), rabbit.UserName(a))
	require.NoError(t, err)
	require.False(t, exists)
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the deleted tenant's connection stayed open")
	}
	_, err = dialAs(t, rotated)
	require.Error(t, err)
	admin := amqptest.Dial(t)
	require.Eventually(t, func() bool {
		_, err := amqptest.Inspect(t, admin, rabbit.QueueName(a))
		return err != nil
	}, 10*time.Second, 50*time.Millisecond, "queue deleted")
	code, _, _ = jsonCall(t, "POST", s.command.URL()+"/tenants/"+a+"/credentials", nil, nil)
	require.Equal(t, 404, code)
}
