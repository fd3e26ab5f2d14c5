// Package dockerhost finds the servers pgtest and amqptest need: the configured or local
// one, else a throwaway dockertest container, reached on the right host.
package dockerhost

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"time"

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

// Server is a service the integration tests need, and how to get a throwaway one.
type Server struct {
	Name       string // for messages: "PostgreSQL"
	EnvVar     string // overrides the local default: "TEST_DATABASE_URL"
	Ping       func(url string) error
	Repository string // container image, e.g. "postgres"
	Tag        string
	Env        []string      // container environment
	Port       string        // published port, e.g. "5432/tcp"
	URLFormat  string        // the server's URL with %s for host:port
	MaxWait    time.Duration // for the container to answer
}

// Find returns $EnvVar, else defaultURL, else a container's URL. Its errors say which
// service is missing and how to provide it, with passwords masked.
func (s Server) Find(defaultURL string) (string, error) {
	if u := os.Getenv(s.EnvVar); u != "" {
		if err := s.Ping(u); err != nil {
			return "", fmt.Errorf("%s is missing: %s=%s is not reachable: %w", s.Name, s.EnvVar, Redact(u), err)
		}
		return u, nil
	}
	localErr := s.Ping(defaultURL)
	if localErr == nil {
		return defaultURL, nil
	}
	u, dockerErr := s.startContainer()
	if dockerErr != nil {
		return "", fmt.Errorf("%s is missing: nothing answers at %s (%w) and no test container could be started (%w); start %s (make deps), set %s, or run a Docker engine",
			s.Name, Redact(defaultURL), localErr, dockerErr, s.Name, s.EnvVar)
	}
	return u, nil
}

func (s Server) startContainer() (string, error) {
	pool, err := dockertest.NewPool("")
	if err != nil {
		return "", fmt.Errorf("no Docker engine: %w", err)
	}
	if err := pool.Client.Ping(); err != nil {
		return "", fmt.Errorf("no Docker engine: %w", err)
	}
	pool.MaxWait = s.MaxWait
	res, err := pool.Run(s.Repository, s.Tag, s.Env)
	if err != nil {
		return "", fmt.Errorf("start %s container: %w", s.Repository, err)
	}
	_ = res.Expire(ExpireSeconds) // reaped even if the test binary dies
	u := fmt.Sprintf(s.URLFormat, HostPort(res, s.Port))
	if err := pool.Retry(func() error { return s.Ping(u) }); err != nil {
		_ = pool.Purge(res)
		return "", fmt.Errorf("%s container never answered: %w", s.Repository, err)
	}
	return u, nil
}

// Redact masks the password in a URL for messages.
func Redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable url)"
	}
	return p.Redacted()
}
