package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// svcConfig is a service's config: Base plus its own variables (WORKERS as the
// command has it, since the YAML file's "workers" key maps to it).
type svcConfig struct {
	Base
	Extra      int `env:"EXTRA_KNOB" envDefault:"1"`
	Workers    int `env:"WORKERS" envDefault:"3"`
	MaxWorkers int `env:"MAX_WORKERS" envDefault:"64"`
}

// clearEnv unsets every variable Load reads so the host environment cannot leak in.
func clearEnv(t *testing.T) {
	for _, k := range []string{"DATABASE_URL", "RABBITMQ_URL", "HTTP_ADDR", "WORKERS", "MAX_WORKERS", "JWT_SECRET",
		"SHUTDOWN_TIMEOUT", "JWT_MAX_TTL", "METRICS_ADDR", "LOG_LEVEL", "LOG_FORMAT", "CONFIG_FILE", "EXTRA_KNOB", "MAX_MESSAGE_BYTES", "QUEUE_TYPE", "DLQ_QUEUE_TYPE", "QUEUE_REPLICAS"} {
		t.Setenv(k, "")
		require.NoError(t, os.Unsetenv(k))
	}
}

func TestLoadDefaults(t *testing.T) {
	clearEnv(t)
	var c svcConfig
	require.NoError(t, Load(&c, &c.Base, ":8081"))
	require.Equal(t, "postgres://postgres:postgres@localhost:5432/multi_tenant?sslmode=disable", c.DatabaseURL)
	require.Equal(t, "amqp://guest:guest@localhost:5672/", c.RabbitMQURL)
	require.Equal(t, ":8081", c.HTTPAddr)
	require.Equal(t, 3, c.Workers)
	require.Equal(t, 64, c.MaxWorkers)
	require.Equal(t, 30*time.Second, c.ShutdownTimeout)
	require.Equal(t, 24*time.Hour, c.JWTMaxTTL)
	require.Equal(t, "info", c.LogLevel)
	require.Equal(t, 1, c.Extra)
	require.Equal(t, "quorum", c.QueueType)
	require.Equal(t, "classic", c.DLQQueueType)
	require.Equal(t, 0, c.QueueReplicas, "the broker's default")
}

func TestLoadYAMLThenEnvironmentWins(t *testing.T) {
	clearEnv(t)
	path := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`
rabbitmq:
  url: amqp://u:p@mq:5672/
database:
  url: postgres://db:5432/x
workers: 7
server:
  port: 9090
security:
  jwt_secret: from-file-0123456789abcdef0123456789
`), 0o600))
	t.Setenv("CONFIG_FILE", path)
	t.Setenv("WORKERS", "5")

	var c svcConfig
	require.NoError(t, Load(&c, &c.Base, ":8080"))
	require.Equal(t, "amqp://u:p@mq:5672/", c.RabbitMQURL)
	require.Equal(t, "postgres://db:5432/x", c.DatabaseURL)
	require.Equal(t, ":9090", c.HTTPAddr)
	require.Equal(t, "from-file-0123456789abcdef0123456789", c.JWTSecret)
	require.Equal(t, 5, c.Workers, "environment must win over the file")
}

func TestLoadRejectsBadValues(t *testing.T) {
	cases := []struct {
		env     map[string]string
		wantVar string
	}{
		{map[string]string{"WORKERS": "abc"}, "WORKERS"},
		{map[string]string{"LOG_LEVEL": "loud"}, "LOG_LEVEL"},
		{map[string]string{"LOG_FORMAT": "xml"}, "LOG_FORMAT"},
		{map[string]string{"DATABASE_URL": "::not a url"}, "DATABASE_URL"},
		{map[string]string{"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL"},
		{map[string]string{"RABBITMQ_URL": "http://x/"}, "RABBITMQ_URL"},
		{map[string]string{"HTTP_ADDR": "8080"}, "HTTP_ADDR"},
		{map[string]string{"SHUTDOWN_TIMEOUT": "soon"}, "SHUTDOWN_TIMEOUT"},
		{map[string]string{"EXTRA_KNOB": "x"}, "EXTRA_KNOB"},
		{map[string]string{"CONFIG_FILE": "/does/not/exist.yaml"}, "CONFIG_FILE"},
		{map[string]string{"JWT_SECRET": "a"}, "JWT_SECRET"},
		{map[string]string{"JWT_SECRET": strings.Repeat("s", MinJWTSecretBytes-1)}, "JWT_SECRET"},
		{map[string]string{"JWT_MAX_TTL": "0s"}, "JWT_MAX_TTL"},
		{map[string]string{"METRICS_ADDR": "9090"}, "METRICS_ADDR"},
		{map[string]string{"METRICS_ADDR": ":8080", "HTTP_ADDR": ":8080"}, "METRICS_ADDR"},
		{map[string]string{"JWT_MAX_TTL": "forever"}, "JWT_MAX_TTL"},
		{map[string]string{"QUEUE_TYPE": "stream"}, "QUEUE_TYPE"},
		{map[string]string{"QUEUE_TYPE": "Quorum"}, "QUEUE_TYPE"},
		{map[string]string{"DLQ_QUEUE_TYPE": "lazy"}, "DLQ_QUEUE_TYPE"},
		{map[string]string{"RABBITMQ_URL": "amqp://a/,http://b/"}, "RABBITMQ_URL"},
		{map[string]string{"RABBITMQ_URL": "amqp://a/,"}, "RABBITMQ_URL"},
		{map[string]string{"RABBITMQ_URL": "amqp://a/x,amqp://b/y"}, "RABBITMQ_URL"},
		{map[string]string{"QUEUE_REPLICAS": "-1"}, "QUEUE_REPLICAS"},
		{map[string]string{"QUEUE_REPLICAS": "8"}, "QUEUE_REPLICAS"},
		{map[string]string{"QUEUE_REPLICAS": "three"}, "QUEUE_REPLICAS"},
	}
	for _, tc := range cases {
		t.Run(tc.wantVar+"="+strings.Join(values(tc.env), ","), func(t *testing.T) {
			clearEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var c svcConfig
			err := Load(&c, &c.Base, ":8080")
			require.Error(t, err)
			require.NotContains(t, err.Error(), "\n", "one line")
			require.True(t, strings.HasPrefix(err.Error(), tc.wantVar), "error %q must name %s", err, tc.wantVar)
		})
	}
}

// A malformed URL's error names the variable and never repeats the password in it.
func TestBadURLErrorHidesPassword(t *testing.T) {
	for _, v := range []string{"DATABASE_URL", "RABBITMQ_URL"} {
		clearEnv(t)
		t.Setenv(v, "postgres://user:hunter2-secret@db host:5432/x")
		var c svcConfig
		err := Load(&c, &c.Base, ":8080")
		require.Error(t, err)
		require.True(t, strings.HasPrefix(err.Error(), v), err.Error())
		require.NotContains(t, err.Error(), "hunter2")
	}
}

// RABBITMQ_URL may list the nodes of one cluster; each is checked, and a problem names
// the URL's position, never its password.
func TestBrokerURLList(t *testing.T) {
	clearEnv(t)
	list := "amqp://guest:guest@127.0.0.1:5681/, amqp://guest:guest@127.0.0.1:5682/,amqps://guest:guest@mq3:5671/"
	t.Setenv("RABBITMQ_URL", list)
	t.Setenv("QUEUE_REPLICAS", "3")
	var c svcConfig
	require.NoError(t, Load(&c, &c.Base, ":8080"))
	require.Equal(t, list, c.RabbitMQURL)
	require.Equal(t, 3, c.QueueReplicas)

	for list, want := range map[string]string{
		"amqp://u:hunter2@a/,https://u:hunter2@b/":         `RABBITMQ_URL: URL 2 of 2: scheme must be amqp or amqps, got "https"`,
		"amqp://u:hunter2@a/,amqp://u:hunter2@b/,":         "RABBITMQ_URL: URL 3 of 3: empty",
		"amqp://u:hunter2@a/,amqp:///":                     "RABBITMQ_URL: URL 2 of 2: URL has no host",
		"amqp://u:hunter2@a/,amqp://u:hunter2@b c/":        "RABBITMQ_URL: URL 2 of 2: not a valid URL",
		"amqp://u:hunter2@a/prod,amqp://u:hunter2@b/prod2": `RABBITMQ_URL: URL 2 of 2: vhost "prod2" differs from the first URL's "prod"`,
	} {
		clearEnv(t)
		t.Setenv("RABBITMQ_URL", list)
		err := Load(&c, &c.Base, ":8080")
		require.Error(t, err, list)
		require.True(t, strings.HasPrefix(err.Error(), want), "%q: got %q, want %q", list, err, want)
		require.NotContains(t, err.Error(), "hunter2")
		require.NotContains(t, err.Error(), "\n")
	}
	// An empty path and "/" both name the default vhost.
	clearEnv(t)
	t.Setenv("RABBITMQ_URL", "amqp://u:p@a:5672/,amqp://u:p@b:5672")
	require.NoError(t, Load(&c, &c.Base, ":8080"))
}

func TestJWTSecretOfMinimumLengthIsAccepted(t *testing.T) {
	clearEnv(t)
	t.Setenv("JWT_SECRET", strings.Repeat("s", MinJWTSecretBytes))
	var c svcConfig
	require.NoError(t, Load(&c, &c.Base, ":8080"))
}

func values(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
