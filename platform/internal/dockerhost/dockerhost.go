// Package dockerhost locates a port published by a dockertest container, for pgtest and
// amqptest.
package dockerhost

import (
	"net"
	"net/url"
	"os"

	"github.com/ory/dockertest/v3"
)

// ExpireSeconds is how long a test container lives at most: dockertest hard-kills it
// then even if the test binary died without cleaning up. It exceeds the Makefile's
// -timeout 20m, so a container never disappears under a package still running.
const ExpireSeconds = 30 * 60

// HostPort returns host:port where the container's port (e.g. "5432/tcp") is reachable.
// dockertest answers localhost; with a remote engine (DOCKER_HOST=tcp://host:2376, as in
// CI with Docker-in-Docker) the published port lives on that host instead.
func HostPort(res *dockertest.Resource, port string) string {
	hp := res.GetHostPort(port)
	if u, err := url.Parse(os.Getenv("DOCKER_HOST")); err == nil && u.Scheme == "tcp" && u.Hostname() != "" {
		if _, p, err := net.SplitHostPort(hp); err == nil {
			return net.JoinHostPort(u.Hostname(), p)
		}
	}
	return hp
}
