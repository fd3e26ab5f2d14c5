// Package e2e runs the three real binaries against real Postgres and RabbitMQ. Its tests
// carry the integration build tag (make test); `make chaos` adds the chaos tag.
package e2e
