// Package pgtest gives each integration test its own migrated Postgres database.
//
// The server is TEST_DATABASE_URL, else the local default; when neither answers and a
// Docker engine does, a throwaway postgres container (dockertest). Otherwise the test
// fails with a message naming what is missing: it never skips silently.
package pgtest

import (
	"context"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/multitenant/mtm/platform/internal/dockerhost"
	"github.com/multitenant/mtm/platform/postgres"
)

// DefaultURL is used when TEST_DATABASE_URL is unset.
const DefaultURL = "postgres://postgres:postgres@127.0.0.1:5432/postgres?sslmode=disable"

var (
	serverOnce sync.Once
	serverURL  string
	serverErr  error
)

// ServerURL returns a URL of a reachable server (any database on it).
func ServerURL(t testing.TB) string {
	t.Helper()
	serverOnce.Do(func() { serverURL, serverErr = findServer(DefaultURL) })
	if serverErr != nil {
		t.Fatalf("pgtest: %v", serverErr)
	}
	return serverURL
}

var server = dockerhost.Server{
	Name: "PostgreSQL", EnvVar: "TEST_DATABASE_URL", Ping: ping,
	Repository: "postgres", Tag: "16-alpine", Env: []string{"POSTGRES_PASSWORD=postgres"},
	Port: "5432/tcp", URLFormat: "postgres://postgres:postgres@%s/postgres?sslmode=disable",
	MaxWait: 60 * time.Second,
}

// findServer returns TEST_DATABASE_URL, else defaultURL, else a container's URL.
func findServer(defaultURL string) (string, error) { return server.Find(defaultURL) }

func ping(u string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// DB is one test's database.
type DB struct {
	URL  string
	Pool *pgxpool.Pool
}

// New creates a fresh database with every migration applied and drops it when the test ends.
func New(t testing.TB) DB {
	t.Helper()
	return create(t, true)
}

// NewEmpty creates a fresh database without migrations (for migration tests).
func NewEmpty(t testing.TB) DB {
	t.Helper()
	return create(t, false)
}

func create(t testing.TB, migrate bool) DB {
	t.Helper()
	server := ServerURL(t)
	name := "mtm_test_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:16]
	u, err := url.Parse(server)
	if err != nil {
		t.Fatalf("pgtest: parse server url: %v", err)
	}
	u.Path = "/" + name
	dbURL := u.String()

	ctx := context.Background()
	if err := postgres.EnsureDatabase(ctx, dbURL); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	pool, err := postgres.NewPool(ctx, dbURL, 20)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		pool.Close()
		conn, err := pgx.Connect(context.Background(), server)
		if err != nil {
			t.Logf("pgtest: drop %s: %v", name, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Logf("pgtest: drop %s: %v", name, err)
		}
	})
	if migrate {
		if err := postgres.Migrate(ctx, pool); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
	}
	return DB{URL: dbURL, Pool: pool}
}
