package pgtest

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

func TestNoServerAndNoDockerNamesPostgres(t *testing.T) {
	noDocker(t)
	t.Setenv("TEST_DATABASE_URL", "")
	_, err := findServer("postgres://postgres:s3cret@127.0.0.1:1/postgres?sslmode=disable")
	require.Error(t, err)
	msg := err.Error()
	require.Contains(t, msg, "PostgreSQL is missing: nothing answers at postgres://postgres:xxxxx@127.0.0.1:1/postgres")
	require.Contains(t, msg, "no Docker engine")
	require.Contains(t, msg, "set TEST_DATABASE_URL")
	require.NotContains(t, msg, "s3cret")
}

func TestUnreachableTestDatabaseURLIsNamed(t *testing.T) {
	noDocker(t)
	t.Setenv("TEST_DATABASE_URL", "postgres://app:s3cret@127.0.0.1:1/app?sslmode=disable")
	_, err := findServer(DefaultURL)
	require.Error(t, err)
	require.Contains(t, err.Error(), "PostgreSQL is missing: TEST_DATABASE_URL=postgres://app:xxxxx@127.0.0.1:1/app?sslmode=disable is not reachable")
	require.NotContains(t, err.Error(), "s3cret")
}
