package main

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/config"
)

func loadCommandConfig(t *testing.T, env map[string]string) (Config, error) {
	t.Helper()
	for _, k := range []string{"WORKERS", "MAX_WORKERS", "CONFIG_FILE", "HTTP_ADDR", "JWT_SECRET", "PUBLISH_CHANNELS", "PUBLISH_CONFIRM_TIMEOUT"} {
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
	} {
		_, err := loadCommandConfig(t, tc.env)
		require.Error(t, err, tc.env)
		require.NotContains(t, err.Error(), "\n", "one line")
		require.True(t, strings.HasPrefix(err.Error(), tc.wantVar), "error %q must name %s", err, tc.wantVar)
	}
}
