//go:build integration

package rabbitadmin_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/amqptest"
	"github.com/multitenant/mtm/platform/rabbitadmin"
)

// userURL is the test broker's AMQP URL with another user's credentials.
func userURL(t *testing.T, user, password string) string {
	t.Helper()
	u, err := url.Parse(amqptest.URL(t))
	require.NoError(t, err)
	u.User = url.UserPassword(user, password)
	return u.String()
}

func dial(t *testing.T, user, password string) (*amqp.Connection, error) {
	t.Helper()
	conn, err := amqp.DialConfig(userURL(t, user, password), amqp.Config{Dial: amqp.DefaultDial(10 * time.Second)})
	if err == nil {
		t.Cleanup(func() { _ = conn.Close() })
	}
	return conn, err
}

func TestUserLifecycleAgainstTheBroker(t *testing.T) {
	t.Parallel()
	admin := amqptest.Admin(t)
	ctx := context.Background()
	user := "mtm-rabbitadmin-test-" + uuid.NewString()
	t.Cleanup(func() { _ = admin.DeleteUser(context.Background(), user) })

	ok, err := admin.UserExists(ctx, user)
	require.NoError(t, err)
	require.False(t, ok)

	// The hash computed here is one the broker accepts.
	require.NoError(t, admin.PutUser(ctx, user, "first-password"))
	ok, err = admin.UserExists(ctx, user)
	require.NoError(t, err)
	require.True(t, ok)
	_, err = dial(t, user, "first-password")
	require.Error(t, err, "no permissions on the vhost yet")

	require.NoError(t, admin.SetPermissions(ctx, "/", user, rabbitadmin.Permissions{Configure: "^$", Write: "^$", Read: "^$"}))
	users, err := admin.VHostUsers(ctx, "/")
	require.NoError(t, err)
	assert.Contains(t, users, user)
	conn, err := dial(t, user, "first-password")
	require.NoError(t, err)

	// A new password: the old one is refused, the new one works, and the connection
	// opened with the old one stays open until it is closed explicitly.
	require.NoError(t, admin.PutUser(ctx, user, "second-password"))
	_, err = dial(t, user, "first-password")
	require.Error(t, err)
	_, err = dial(t, user, "second-password")
	require.NoError(t, err)
	require.False(t, conn.IsClosed())
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	require.NoError(t, admin.CloseConnections(ctx, user, "test"))
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the old connection was not closed")
	}

	// Deleting closes what is left and is repeatable.
	conn, err = dial(t, user, "second-password")
	require.NoError(t, err)
	closed = conn.NotifyClose(make(chan *amqp.Error, 1))
	require.NoError(t, admin.DeleteUser(ctx, user))
	require.NoError(t, admin.DeleteUser(ctx, user))
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the deleted user's connection was not closed")
	}
	_, err = dial(t, user, "second-password")
	require.Error(t, err)
	ok, err = admin.UserExists(ctx, user)
	require.NoError(t, err)
	require.False(t, ok)
}

func TestWrongAdminCredentialsAreAStatusError(t *testing.T) {
	t.Parallel()
	u, err := url.Parse(amqptest.ManagementURL(t))
	require.NoError(t, err)
	u.User = url.UserPassword("guest", "wrong-s3cret")
	c, err := rabbitadmin.New(u.String(), 5*time.Second)
	require.NoError(t, err)
	_, err = c.UserExists(context.Background(), "guest")
	require.True(t, rabbitadmin.IsStatus(err, http.StatusUnauthorized), "%v", err)
	assert.False(t, strings.Contains(err.Error(), "wrong-s3cret"))
}
