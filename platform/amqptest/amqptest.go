// Package amqptest gives integration tests a reachable RabbitMQ and cleans up the
// tenant queues a test declared.
//
// The broker is TEST_RABBITMQ_URL, else the local default; when neither answers and a
// Docker engine does, a throwaway rabbitmq container (dockertest). Otherwise the test
// fails naming what is missing.
package amqptest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/ory/dockertest/v3"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/multitenant/mtm/platform/internal/dockerhost"
	"github.com/multitenant/mtm/platform/rabbit"
)

// DefaultURL is used when TEST_RABBITMQ_URL is unset.
const DefaultURL = "amqp://guest:guest@127.0.0.1:5672/"

var (
	once      sync.Once
	brokerURL string
	brokerErr error
)

// URL returns the URL of a reachable broker.
func URL(t testing.TB) string {
	t.Helper()
	once.Do(func() { brokerURL, brokerErr = find(DefaultURL) })
	if brokerErr != nil {
		t.Fatalf("amqptest: %v", brokerErr)
	}
	return brokerURL
}

// find returns TEST_RABBITMQ_URL, else defaultURL, else a container's URL; its errors
// say which service is missing and how to provide it.
func find(defaultURL string) (string, error) {
	if u := os.Getenv("TEST_RABBITMQ_URL"); u != "" {
		if err := ping(u); err != nil {
			return "", fmt.Errorf("RabbitMQ is missing: TEST_RABBITMQ_URL=%s is not reachable: %w", redact(u), err)
		}
		return u, nil
	}
	localErr := ping(defaultURL)
	if localErr == nil {
		return defaultURL, nil
	}
	u, dockerErr := startContainer()
	if dockerErr != nil {
		return "", fmt.Errorf("RabbitMQ is missing: nothing answers at %s (%w) and no test container could be started (%w); start RabbitMQ (make deps), set TEST_RABBITMQ_URL, or run a Docker engine", redact(defaultURL), localErr, dockerErr)
	}
	return u, nil
}

func startContainer() (string, error) {
	pool, err := dockertest.NewPool("")
	if err != nil {
		return "", fmt.Errorf("no Docker engine: %w", err)
	}
	if err := pool.Client.Ping(); err != nil {
		return "", fmt.Errorf("no Docker engine: %w", err)
	}
	pool.MaxWait = 90 * time.Second
	res, err := pool.Run("rabbitmq", "3.13-alpine", nil)
	if err != nil {
		return "", fmt.Errorf("start rabbitmq container: %w", err)
	}
	_ = res.Expire(dockerhost.ExpireSeconds) // reaped even if the test binary dies
	u := fmt.Sprintf("amqp://guest:guest@%s/", dockerhost.HostPort(res, "5672/tcp"))
	if err := pool.Retry(func() error { return ping(u) }); err != nil {
		_ = pool.Purge(res)
		return "", fmt.Errorf("rabbitmq container never answered: %w", err)
	}
	return u, nil
}

func ping(u string) error {
	conn, err := amqp.DialConfig(u, amqp.Config{Dial: amqp.DefaultDial(10 * time.Second)}) // generous: a loaded broker answers slowly
	if err != nil {
		return err
	}
	return conn.Close()
}

func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable url)"
	}
	return p.Redacted()
}

// Dial opens a connection closed at test end.
func Dial(t testing.TB) *amqp.Connection {
	t.Helper()
	conn, err := amqp.Dial(URL(t))
	if err != nil {
		t.Fatalf("amqptest: dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// CleanupTenant deletes the tenant's queues when the test ends (tests use fresh UUIDs,
// so queue names never collide between tests). Cleanups run last-registered first: a
// service still running then may declare the queues again, so tests that run services
// should also call DeleteTenant from a cleanup registered before the service starts.
func CleanupTenant(t testing.TB, tenantID string) {
	t.Helper()
	t.Cleanup(func() { DeleteTenant(t, tenantID) })
}

// CleanupEventStoreTenants deletes, when the test ends, the queues of every tenant in
// the event store of pool's database. Register it before starting services (cleanups run
// last-registered first) so it runs after they stopped: a running consumer would
// declare the queues of live tenants again.
func CleanupEventStoreTenants(t testing.TB, pool *pgxpool.Pool) {
	t.Helper()
	t.Cleanup(func() {
		rows, err := pool.Query(context.Background(), `SELECT DISTINCT stream_id::text FROM event_store`)
		if err != nil {
			t.Logf("amqptest: list tenants: %v", err)
			return
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Logf("amqptest: list tenants: %v", err)
			return
		}
		for _, id := range ids {
			DeleteTenant(t, id)
		}
	})
}

// DeleteTenant deletes the tenant's queues now (best effort: a test's leftovers must not
// fail it, but they must not pile up on a shared broker either).
func DeleteTenant(t testing.TB, tenantID string) {
	t.Helper()
	conn, err := amqp.DialConfig(URL(t), amqp.Config{Dial: amqp.DefaultDial(10 * time.Second)})
	if err != nil {
		t.Logf("amqptest: delete queues of %s: %v", tenantID, err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Logf("amqptest: delete queues of %s: %v", tenantID, err)
		return
	}
	if err := rabbit.DeleteTenant(ch, tenantID); err != nil {
		t.Logf("amqptest: delete queues of %s: %v", tenantID, err)
	}
}

// Inspect returns the queue's message and consumer counts, or an error if it does not exist.
func Inspect(t testing.TB, conn *amqp.Connection, queue string) (amqp.Queue, error) {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("amqptest: channel: %v", err)
	}
	defer ch.Close()
	return rabbit.Inspect(ch, queue)
}
