//go:build integration

package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/events"
	"github.com/multitenant/mtm/platform/amqptest"
	"github.com/multitenant/mtm/platform/rabbit"
	"github.com/multitenant/mtm/services/command/internal/commandtest"
	"github.com/multitenant/mtm/services/command/internal/tenant"
)

// credentialsOf reads the "amqp" object of an answer.
func credentialsOf(t *testing.T, r response) tenant.Credentials {
	t.Helper()
	amqpObj, ok := r.body["amqp"].(map[string]any)
	require.True(t, ok, r.raw)
	c := tenant.Credentials{}
	c.Username, _ = amqpObj["username"].(string)
	c.Password, _ = amqpObj["password"].(string)
	c.VHost, _ = amqpObj["vhost"].(string)
	require.NotEmpty(t, c.Username, r.raw)
	require.NotEmpty(t, c.Password, r.raw)
	return c
}

// publishAs publishes one message to the tenant's exchange with its own credentials and
// waits for the confirm.
func publishAs(t *testing.T, c tenant.Credentials, tenantID string) {
	t.Helper()
	conn, err := commandtest.DialTenant(t, c)
	require.NoError(t, err)
	ch, err := conn.Channel()
	require.NoError(t, err)
	defer ch.Close()
	require.NoError(t, ch.Confirm(false))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, rabbit.ExchangeName(tenantID), "", false, false, amqp.Publishing{Body: []byte(`{"via":"amqp"}`)})
	require.NoError(t, err)
	ok, err := dc.WaitContext(ctx)
	require.NoError(t, err)
	require.True(t, ok)
}

func TestCreateTenantReturnsBrokerCredentialsOnce(t *testing.T) {
	t.Parallel()
	f := newAccountsFixture(t, commandtest.Accounts(t))
	r := f.json("POST", "/tenants", `{"name":"creds-`+uuid.NewString()[:8]+`"}`)
	require.Equal(t, http.StatusCreated, r.status, r.raw)
	id := r.body["id"].(string)
	amqptest.CleanupTenant(t, id)
	first := credentialsOf(t, r)
	assert.Equal(t, map[string]any{
		"username": rabbit.UserName(id), "password": first.Password, "vhost": "/", "exchange": rabbit.ExchangeName(id),
	}, r.body["amqp"])
	assert.Equal(t, "no-store", r.header.Get("Cache-Control"))
	publishAs(t, first, id)

	// Rotation: a new password in a 200; the old one stops working.
	path := "/tenants/" + id + "/credentials"
	r = f.do("POST", path, "", "")
	require.Equal(t, http.StatusOK, r.status, r.raw)
	assert.Equal(t, id, r.body["id"])
	second := credentialsOf(t, r)
	assert.Equal(t, first.Username, second.Username)
	assert.NotEqual(t, first.Password, second.Password)
	_, err := commandtest.DialTenant(t, first)
	require.Error(t, err, "the old password is refused")
	publishAs(t, second, id)
	assert.Equal(t, []int{1}, f.env.Versions(t, id), "credentials are not events")

	// Not for an unknown tenant, nor a malformed id.
	for _, bad := range []string{uuid.NewString(), "nope", strings.ToUpper(strings.ReplaceAll(id, "-", ""))} {
		requireProblem(t, f.do("POST", "/tenants/"+bad+"/credentials", "", ""), http.StatusNotFound)
	}

	// The user goes with the tenant.
	r = f.do("DELETE", "/tenants/"+id, "", "")
	require.Equal(t, http.StatusAccepted, r.status, r.raw)
	exists, err := amqptest.Admin(t).UserExists(t.Context(), rabbit.UserName(id))
	require.NoError(t, err)
	assert.False(t, exists)
	_, err = commandtest.DialTenant(t, second)
	require.Error(t, err)
	requireProblem(t, f.do("POST", path, "", ""), http.StatusNotFound)
}

func TestCredentialsWithAccountsOff(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	id := f.createTenant("no-creds-"+uuid.NewString()[:8], 1)
	r := f.do("POST", "/tenants/"+id+"/credentials", "", "")
	requireProblem(t, r, http.StatusNotImplemented)
	assert.Equal(t, "broker_accounts_disabled", r.body["code"])
	assert.Contains(t, r.body["detail"], "RABBITMQ_MANAGEMENT_URL")
}

func TestManagementAPIDown(t *testing.T) {
	t.Parallel()
	f := newAccountsFixture(t, commandtest.DownAccounts(t))
	r := f.json("POST", "/tenants", `{"name":"mgmt-down"}`)
	requireProblem(t, r, http.StatusServiceUnavailable)
	assert.Equal(t, "broker_unavailable", r.body["code"])
	assert.NotContains(t, r.raw, "127.0.0.1", "broker details stay in the log")
	assert.NotContains(t, r.raw, "management", "broker details stay in the log")
	assert.Equal(t, 0, f.env.EventCount(t), "nothing recorded")

	// A tenant recorded earlier: its rotation answers 503 without broker text.
	id := uuid.NewString()
	env, err := events.NewEnvelope(id, 1, events.Metadata{EventID: uuid.NewString(), OccurredAt: time.Now().UTC()}, events.TenantCreated{Name: "earlier", Workers: 1})
	require.NoError(t, err)
	_, err = f.env.Store.Append(t.Context(), []events.Envelope{env}, nil)
	require.NoError(t, err)
	r = f.do("POST", "/tenants/"+id+"/credentials", "", "")
	requireProblem(t, r, http.StatusServiceUnavailable)
	assert.Equal(t, "1", r.header.Get("Retry-After"))
	assert.NotContains(t, r.raw, "127.0.0.1")
	assert.NotContains(t, r.raw, "connection refused")
}
