// Package pgtest gives each integration test its own migrated Postgres database.
//
// The server is TEST_DATABASE_URL, else the local default; when neither answers and a
// Docker engine does, a throwaway postgres container (dockertest). Otherwise the test
// fails with a message naming what is missing: it never skips silently.
package pgtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/ory/dockertest/v3"

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

// findServer returns TEST_DATABASE_URL, else defaultURL, else a container's URL; its
// errors say which service is missing and how to provide it.
func findServer(defaultURL string) (string, error) {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		if err := ping(u); err != nil {
			return "", fmt.Errorf("PostgreSQL is missing: TEST_DATABASE_URL=%s is not reachable: %w", redact(u), err)
		}
		return u, nil
	}
	localErr := ping(defaultURL)
	if localErr == nil {
		return defaultURL, nil
	}
	u, dockerErr := startContainer()
	if dockerErr != nil {
		return "", fmt.Errorf("PostgreSQL is missing: nothing answers at %s (%w) and no test container could be started (%w); start PostgreSQL (make deps), set TEST_DATABASE_URL, or run a Docker engine", redact(defaultURL), localErr, dockerErr)
	}
	return u, nil
}

func ping(u string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

func startContainer() (string, error) {
	pool, err := dockertest.NewPool("")
	if err != nil {
		return "", fmt.Errorf("no Docker engine: %w", err)
	}
	if err := pool.Client.Ping(); err != nil {
		return "", fmt.Errorf("no Docker engine: %w", err)
	}
	pool.MaxWait = 60 * time.Second
	res, err := pool.Run("postgres", "16-alpine", []string{"POSTGRES_PASSWORD=postgres"})
	if err != nil {
		return "", fmt.Errorf("start postgres container: %w", err)
	}
	_ = res.Expire(dockerhost.ExpireSeconds) // reaped even if the test binary dies
	u := fmt.Sprintf("postgres://postgres:postgres@%s/postgres?sslmode=disable", dockerhost.HostPort(res, "5432/tcp"))
	if err := pool.Retry(func() error { return ping(u) }); err != nil {
		_ = pool.Purge(res)
		return "", fmt.Errorf("postgres container never answered: %w", err)
	}
	return u, nil
}

func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable url)"
	}
	return p.Redacted()
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
