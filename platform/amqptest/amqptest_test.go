package amqptest

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// noDocker points the Docker client at a socket that does not exist, so the container
// fallback fails the way it does on a machine without a Docker engine.
func noDocker(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "no-docker.sock"))
	t.Setenv("DOCKER_CERT_PATH", "")
	t.Setenv("DOCKER_MACHINE_NAME", "")
}

func TestNoBrokerAndNoDockerNamesRabbitMQ(t *testing.T) {
	noDocker(t)
	t.Setenv("TEST_RABBITMQ_URL", "")
	_, err := find("amqp://guest:s3cret@127.0.0.1:1/")
	require.Error(t, err)
	msg := err.Error()
	require.Contains(t, msg, "RabbitMQ is missing: nothing answers at amqp://guest:xxxxx@127.0.0.1:1/")
	require.Contains(t, msg, "no Docker engine")
	require.Contains(t, msg, "set TEST_RABBITMQ_URL")
	require.NotContains(t, msg, "s3cret")
}

func TestUnreachableTestRabbitMQURLIsNamed(t *testing.T) {
	noDocker(t)
	t.Setenv("TEST_RABBITMQ_URL", "amqp://app:s3cret@127.0.0.1:1/vhost")
	_, err := find(DefaultURL)
	require.Error(t, err)
	require.Contains(t, err.Error(), "RabbitMQ is missing: TEST_RABBITMQ_URL=amqp://app:xxxxx@127.0.0.1:1/vhost is not reachable")
	require.NotContains(t, err.Error(), "s3cret")
}
