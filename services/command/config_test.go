package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/config"
	"github.com/multitenant/mtm/services/command/internal/tenant"
)

func loadCommandConfig(t *testing.T, env map[string]string) (Config, error) {
	t.Helper()
	for _, k := range []string{"WORKERS", "MAX_WORKERS", "MAX_TOTAL_WORKERS", "MAX_TENANTS", "TENANT_RATE_LIMIT", "TENANT_RATE_BURST",
		"CONFIG_FILE", "HTTP_ADDR", "JWT_SECRET", "PUBLISH_CHANNELS", "PUBLISH_CONFIRM_TIMEOUT", "RABBITMQ_MANAGEMENT_URL", "RABBITMQ_URL", "DLQ_MAX_LENGTH",
		"DRAIN_CHECK_INTERVAL", "REDRIVE_RATE"} {
		t.Setenv(k, "")
		require.NoError(t, os.Unsetenv(k))
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	var c Config
	err := config.Load(&c, &c.Base, ":8080")
	return c, err
}

func TestWorkerDefaults(t *testing.T) {
	c, err := loadCommandConfig(t, nil)
	require.NoError(t, err)
	require.Equal(t, 3, c.Workers)
	require.Equal(t, 64, c.MaxWorkers)
	require.Equal(t, 1024, c.MaxTotalWorkers)
	require.Equal(t, 1000, c.MaxTenants)
	require.GreaterOrEqual(t, c.MaxTotalWorkers, c.MaxTenants, "every tenant claims at least one worker: more tenants could never be created")
	require.Equal(t, tenant.RateLimit{PerSecond: 1000, Burst: 2000}, c.limits().DefaultRate)
	require.Equal(t, time.Second, c.DrainCheckInterval)
	require.Equal(t, 500, c.RedriveRate)
}

// TENANT_RATE_LIMIT 0 turns the default limit off; the burst is then not used.
func TestUnlimitedDefaultRate(t *testing.T) {
	c, err := loadCommandConfig(t, map[string]string{"TENANT_RATE_LIMIT": "0", "TENANT_RATE_BURST": "0"})
	require.NoError(t, err)
	require.True(t, c.limits().DefaultRate.Unlimited())
}

// The worker bound is tenant.Limits' rule; the command refuses to start with bounds the
// API would then contradict.
func TestWorkerBoundsAreValidated(t *testing.T) {
	for _, tc := range []struct {
		env     map[string]string
		wantVar string
	}{
		{map[string]string{"WORKERS": "0"}, "WORKERS"},
		{map[string]string{"WORKERS": "abc"}, "WORKERS"},
		{map[string]string{"WORKERS": "65"}, "WORKERS"},
		{map[string]string{"MAX_WORKERS": "-1"}, "MAX_WORKERS"},
		{map[string]string{"PUBLISH_CHANNELS": "0"}, "PUBLISH_CHANNELS"},
		{map[string]string{"MAX_TOTAL_WORKERS": "63"}, "MAX_TOTAL_WORKERS"},
		{map[string]string{"MAX_WORKERS": "2000"}, "MAX_TOTAL_WORKERS"},
		{map[string]string{"MAX_TOTAL_WORKERS": "x"}, "MAX_TOTAL_WORKERS"},
		{map[string]string{"MAX_TENANTS": "0"}, "MAX_TENANTS"},
		{map[string]string{"MAX_TENANTS": "many"}, "MAX_TENANTS"},
		{map[string]string{"TENANT_RATE_LIMIT": "-1"}, "TENANT_RATE_LIMIT"},
		{map[string]string{"TENANT_RATE_LIMIT": "1000001"}, "TENANT_RATE_LIMIT"},
		{map[string]string{"TENANT_RATE_BURST": "0"}, "TENANT_RATE_BURST"},
		{map[string]string{"DLQ_MAX_LENGTH": "0"}, "DLQ_MAX_LENGTH"},
		{map[string]string{"DRAIN_CHECK_INTERVAL": "0s"}, "DRAIN_CHECK_INTERVAL"},
		{map[string]string{"DRAIN_CHECK_INTERVAL": "99ms"}, "DRAIN_CHECK_INTERVAL"},
		{map[string]string{"DRAIN_CHECK_INTERVAL": "2h"}, "DRAIN_CHECK_INTERVAL"},
		{map[string]string{"REDRIVE_RATE": "0"}, "REDRIVE_RATE"},
		{map[string]string{"REDRIVE_RATE": "100001"}, "REDRIVE_RATE"},
	} {
		_, err := loadCommandConfig(t, tc.env)
		require.Error(t, err, tc.env)
		require.NotContains(t, err.Error(), "\n", "one line")
		require.True(t, strings.HasPrefix(err.Error(), tc.wantVar), "error %q must name %s", err, tc.wantVar)
	}
}

// RABBITMQ_MANAGEMENT_URL is optional; when set it must be usable, and the error never
// repeats the administrator's password.
func TestManagementURL(t *testing.T) {
	c, err := loadCommandConfig(t, nil)
	require.NoError(t, err)
	require.Empty(t, c.ManagementURL, "per-tenant accounts are off by default")

	c, err = loadCommandConfig(t, map[string]string{"RABBITMQ_MANAGEMENT_URL": "http://admin:s3cret@rabbitmq:15672", "RABBITMQ_URL": "amqp://svc:pw@rabbitmq:5672/prod"})
	require.NoError(t, err)
	admin, vhost, err := c.management()
	require.NoError(t, err)
	require.NotNil(t, admin)
	require.Equal(t, "prod", vhost)

	// With a list of nodes, the vhost is the first URL's (validation made them agree).
	c, err = loadCommandConfig(t, map[string]string{"RABBITMQ_MANAGEMENT_URL": "http://admin:s3cret@rabbitmq:15672",
		"RABBITMQ_URL": "amqp://svc:pw@mq1:5672/prod,amqp://svc:pw@mq2:5672/prod,amqp://svc:pw@mq3:5672/prod"})
	require.NoError(t, err)
	_, vhost, err = c.management()
	require.NoError(t, err)
	require.Equal(t, "prod", vhost)

	for _, bad := range []string{
		"amqp://admin:s3cret@rabbitmq:15672",
		"http://rabbitmq:15672",
		"http://admin:s3cret@",
		"http://admin:s3cret@rabbit mq:15672",
		"http://admin:s3cret@rabbitmq:15672/?x=%zz",
	} {
		_, err := loadCommandConfig(t, map[string]string{"RABBITMQ_MANAGEMENT_URL": bad})
		require.Error(t, err, bad)
		require.True(t, strings.HasPrefix(err.Error(), "RABBITMQ_MANAGEMENT_URL: "), "%q: %v", bad, err)
		require.NotContains(t, err.Error(), "s3cret")
		require.NotContains(t, err.Error(), "\n")
	}
}
