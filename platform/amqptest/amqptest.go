// Package amqptest gives integration tests a reachable RabbitMQ and cleans up the
// tenant queues and broker users a test made.
//
// The broker is TEST_RABBITMQ_URL, else the local default; when neither answers and a
// Docker engine does, a throwaway rabbitmq container (dockertest). Otherwise the test
// fails naming what is missing. Its management API (for per-tenant users) is
// TEST_RABBITMQ_MANAGEMENT_URL, else the local default; tests that need it fail
// naming it when it does not answer.
package amqptest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/multitenant/mtm/platform/internal/dockerhost"
	"github.com/multitenant/mtm/platform/rabbit"
	"github.com/multitenant/mtm/platform/rabbitadmin"
)

// DefaultURL is used when TEST_RABBITMQ_URL is unset.
const DefaultURL = "amqp://guest:guest@127.0.0.1:5672/"

// DefaultManagementURL is used when TEST_RABBITMQ_MANAGEMENT_URL is unset.
const DefaultManagementURL = "http://guest:guest@127.0.0.1:15672"

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

var server = dockerhost.Server{
	Name: "RabbitMQ", EnvVar: "TEST_RABBITMQ_URL", Ping: ping,
	Repository: "rabbitmq", Tag: "3.13-alpine",
	Port: "5672/tcp", URLFormat: "amqp://guest:guest@%s/",
	MaxWait: 90 * time.Second,
}

// find returns TEST_RABBITMQ_URL, else defaultURL, else a container's URL.
func find(defaultURL string) (string, error) { return server.Find(defaultURL) }

func ping(u string) error {
	conn, err := amqp.DialConfig(u, amqp.Config{Dial: amqp.DefaultDial(10 * time.Second)}) // generous: a loaded broker answers slowly
	if err != nil {
		return err
	}
	return conn.Close()
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

// CleanupTenant deletes the tenant's queues and broker user when the test ends (tests use fresh UUIDs,
// so queue names never collide between tests). Cleanups run last-registered first: a
// service still running then may declare the queues again, so tests that run services
// should also call DeleteTenant from a cleanup registered before the service starts.
func CleanupTenant(t testing.TB, tenantID string) {
	t.Helper()
	t.Cleanup(func() { DeleteTenant(t, tenantID) })
}

// CleanupEventStoreTenants deletes, when the test ends, the queues and broker users of
// every tenant in the event store of pool's database. Register it before starting services (cleanups run
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

// DeleteTenant deletes the tenant's queues and broker user now (best effort: a test's
// leftovers must not fail it, but they must not pile up on a shared broker either).
func DeleteTenant(t testing.TB, tenantID string) {
	t.Helper()
	deleteTenantUser(t, tenantID)
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

var (
	mgmtOnce  sync.Once
	mgmtURL   string
	mgmtAdmin *rabbitadmin.Client
	mgmtErr   error
)

func findManagement() {
	mgmtURL = os.Getenv("TEST_RABBITMQ_MANAGEMENT_URL")
	if mgmtURL == "" {
		mgmtURL = DefaultManagementURL
	}
	mgmtAdmin, mgmtErr = rabbitadmin.New(mgmtURL, 10*time.Second)
	if mgmtErr != nil {
		mgmtErr = fmt.Errorf("TEST_RABBITMQ_MANAGEMENT_URL: %w", mgmtErr)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := mgmtAdmin.UserExists(ctx, "mtm-amqptest-probe"); err != nil {
		mgmtErr = fmt.Errorf("RabbitMQ management API does not answer (set TEST_RABBITMQ_MANAGEMENT_URL, or enable it: rabbitmq-plugins enable rabbitmq_management): %w", err)
	}
}

// ManagementURL returns the URL of a reachable management API (with credentials).
func ManagementURL(t testing.TB) string {
	t.Helper()
	mgmtOnce.Do(findManagement)
	if mgmtErr != nil {
		t.Fatalf("amqptest: %v", mgmtErr)
	}
	return mgmtURL
}

// Admin returns a management API client.
func Admin(t testing.TB) *rabbitadmin.Client {
	t.Helper()
	ManagementURL(t)
	return mgmtAdmin
}

// deleteTenantUser deletes the tenant's broker user when a management API answers
// (tests that made one needed it; the others may run without it).
func deleteTenantUser(t testing.TB, tenantID string) {
	t.Helper()
	mgmtOnce.Do(findManagement)
	if mgmtErr != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := mgmtAdmin.DeleteUser(ctx, rabbit.UserName(tenantID)); err != nil {
		t.Logf("amqptest: delete broker user of %s: %v", tenantID, err)
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
