// Package commandtest builds the command service's parts against real Postgres and
// RabbitMQ for integration tests: one fresh database per call, running broker
// connections stopped at test end.
package commandtest

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"net/url"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/multitenant/mtm/platform/amqptest"
	"github.com/multitenant/mtm/platform/eventstore"
	"github.com/multitenant/mtm/platform/pgtest"
	"github.com/multitenant/mtm/platform/postgres"
	"github.com/multitenant/mtm/platform/rabbit"
	"github.com/multitenant/mtm/platform/rabbitadmin"
	"github.com/multitenant/mtm/services/command/internal/broker"
	"github.com/multitenant/mtm/services/command/internal/tenant"
)

// Limits used by tests: MAX_WORKERS 64, WORKERS 3, MAX_TOTAL_WORKERS 1024, MAX_TENANTS
// 1000, and the default ingest limit of 1000 messages a second with bursts of 2000.
var Limits = tenant.Limits{DefaultWorkers: 3, MaxWorkers: 64, MaxTotalWorkers: 1024, MaxTenants: 1000,
	DefaultRate: tenant.RateLimit{PerSecond: 1000, Burst: 2000}}

// Log discards output; tests assert on outcomes, not on log lines.
var Log = slog.New(slog.NewTextHandler(io.Discard, nil))

// Env is one test's command side.
type Env struct {
	Pool    *pgxpool.Pool
	DB      *sql.DB
	Store   *eventstore.Store
	Tenants *tenant.Service
}

// New builds a tenant service with Limits on a fresh database whose queues are
// declared through conn (nil: a connection to the test broker, running until the test
// ends).
func New(t testing.TB, conn *rabbit.Conn) Env {
	t.Helper()
	return NewWithLimits(t, conn, Limits)
}

// NewWithLimits is New with other limits.
func NewWithLimits(t testing.TB, conn *rabbit.Conn, limits tenant.Limits) Env {
	t.Helper()
	pg := pgtest.New(t)
	db := postgres.OpenDB(pg.Pool)
	t.Cleanup(func() { _ = db.Close() })
	if conn == nil {
		conn = RunConn(t, amqptest.URL(t))
	}
	store := eventstore.New(db, watermill.NopLogger{})
	return Env{Pool: pg.Pool, DB: db, Store: store, Tenants: tenant.NewService(store, db, broker.NewTopology(conn, rabbit.DefaultTopology, Log), limits, Log)}
}

// RunConn runs a reconnecting connection to url until the test ends and waits until
// it is up.
func RunConn(t testing.TB, url string) *rabbit.Conn {
	t.Helper()
	conn := rabbit.NewConn(url, "command-test", Log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = conn.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	wctx, wcancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer wcancel()
	if err := conn.WaitConnected(wctx); err != nil {
		t.Fatalf("commandtest: %v", err)
	}
	return conn
}

// Accounts manages tenant broker users through the test broker's management API, on the
// vhost of its AMQP URL (amqptest deletes a tenant's user with its queues).
func Accounts(t testing.TB) *broker.Accounts {
	t.Helper()
	uri, err := amqp.ParseURI(amqptest.URL(t))
	if err != nil {
		t.Fatalf("commandtest: %v", err)
	}
	return broker.NewAccounts(amqptest.Admin(t), uri.Vhost)
}

// DownAccounts is an account manager whose management API never answers.
func DownAccounts(t testing.TB) *broker.Accounts {
	t.Helper()
	admin, err := rabbitadmin.New("http://guest:guest@127.0.0.1:1", time.Second)
	if err != nil {
		t.Fatalf("commandtest: %v", err)
	}
	return broker.NewAccounts(admin, "/")
}

// TenantURL is the test broker's AMQP URL with a tenant's own credentials.
func TenantURL(t testing.TB, c tenant.Credentials) string {
	t.Helper()
	u, err := url.Parse(amqptest.URL(t))
	if err != nil {
		t.Fatalf("commandtest: %v", err)
	}
	u.User = url.UserPassword(c.Username, c.Password)
	return u.String()
}

// DialTenant connects with a tenant's own credentials; the connection is closed at
// test end.
func DialTenant(t testing.TB, c tenant.Credentials) (*amqp.Connection, error) {
	t.Helper()
	conn, err := amqp.DialConfig(TenantURL(t, c), amqp.Config{Dial: amqp.DefaultDial(10 * time.Second)})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn, nil
}

// DownConn is a connection that is never dialled: every use fails as if the broker
// were down.
func DownConn() *rabbit.Conn {
	return rabbit.NewConn("amqp://guest:guest@127.0.0.1:1/", "command-test-down", Log)
}

// EventCount counts all events in the store.
func (e Env) EventCount(t testing.TB) int {
	t.Helper()
	var n int
	if err := e.DB.QueryRowContext(context.Background(), `SELECT count(*) FROM event_store`).Scan(&n); err != nil {
		t.Fatalf("commandtest: count events: %v", err)
	}
	return n
}

// Versions returns a stream's versions in order.
func (e Env) Versions(t testing.TB, id string) []int {
	t.Helper()
	stored, err := e.Store.Load(context.Background(), id)
	if err != nil {
		t.Fatalf("commandtest: load %s: %v", id, err)
	}
	out := make([]int, len(stored))
	for i, s := range stored {
		out[i] = s.Version
	}
	return out
}

// DeadLetter is a row of the dead-letter archive as a test seeds it.
type DeadLetter struct {
	ID        string // the row id (a UUID)
	MessageID string
	Reason    string
	Body      []byte
	Status    string // "" is pending
	// FirstAt orders the rows (oldest first); zero is now.
	FirstAt time.Time
}

// SeedDeadLetters inserts dead letters of a tenant directly (the consumer's archive is
// not running in these tests), each with death key "k1" and one death.
func (e Env) SeedDeadLetters(t testing.TB, tenantID string, rows ...DeadLetter) {
	t.Helper()
	for _, r := range rows {
		status, at := r.Status, r.FirstAt
		if status == "" {
			status = "pending"
		}
		if at.IsZero() {
			at = time.Now()
		}
		_, err := e.DB.ExecContext(context.Background(), `
			INSERT INTO dead_letters (tenant_id, id, message_id, reason, body, body_size, deaths, death_key, status,
				first_dead_lettered_at, last_dead_lettered_at)
			VALUES ($1, $2, $3, $4, $5::bytea, length($5::bytea), 1, 'k1', $6, $7, $7)`,
			tenantID, r.ID, r.MessageID, r.Reason, r.Body, status, at)
		if err != nil {
			t.Fatalf("commandtest: seed dead letter: %v", err)
		}
	}
}

// DeadLetterStatus is the status of one archived dead letter.
func (e Env) DeadLetterStatus(t testing.TB, tenantID, id string) string {
	t.Helper()
	var s string
	if err := e.DB.QueryRowContext(context.Background(), `SELECT status FROM dead_letters WHERE tenant_id = $1 AND id = $2`, tenantID, id).Scan(&s); err != nil {
		t.Fatalf("commandtest: dead letter status: %v", err)
	}
	return s
}
