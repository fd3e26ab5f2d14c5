//go:build integration

package e2e

import (
	"context"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// Every service comes up healthy and ready, and exits 0 promptly on SIGTERM.
func TestServicesStartAndStopCleanly(t *testing.T) {
	env := Env(t)
	code, out := Run(t, "command", env, "-migrate")
	require.Equal(t, 0, code, out)

	for _, name := range []string{"command", "consumer", "query"} {
		t.Run(name, func(t *testing.T) {
			p := Start(t, name, env)
			p.WaitStatus(t, "/healthz", 200, 30*time.Second)
			p.WaitStatus(t, "/readyz", 200, 30*time.Second)
			require.Equal(t, 200, p.Status("/metrics"))
			code, took := p.Terminate(t, 10*time.Second)
			require.Equal(t, 0, code, p.Output())
			require.Less(t, took, 10*time.Second)
			require.Contains(t, p.Output(), "stopped cleanly")
		})
	}
}

// /readyz follows the database: 503 within a few seconds of losing it, 200 once it is back.
func TestReadinessFollowsDatabase(t *testing.T) {
	env := Env(t)
	code, out := Run(t, "command", env, "-migrate")
	require.Equal(t, 0, code, out)

	u, err := url.Parse(env["DATABASE_URL"])
	require.NoError(t, err)
	px := newProxy(t, u.Host)
	env["DATABASE_URL"] = replaceHost(env["DATABASE_URL"], u.Host, px.addr)

	p := Start(t, "query", env)
	p.WaitStatus(t, "/readyz", 200, 30*time.Second)

	px.Down()
	p.WaitStatus(t, "/readyz", 503, 5*time.Second)
	require.Equal(t, 200, p.Status("/healthz"), "losing the database does not make the process unhealthy")

	px.Up()
	p.WaitStatus(t, "/readyz", 200, 10*time.Second)
}

// A service started while its broker is unreachable stays up, logs retries and is not ready.
func TestBrokerDownAtStartIsNotReady(t *testing.T) {
	env := Env(t)
	env["RABBITMQ_URL"] = "amqp://guest:guest@" + freeAddr(t) + "/"
	p := Start(t, "query", env)
	p.WaitStatus(t, "/healthz", 200, 30*time.Second)
	require.Equal(t, 503, p.Status("/readyz"))
	require.Eventually(t, func() bool { return strings.Contains(p.Output(), "rabbitmq not reachable, retrying") }, 10*time.Second, 50*time.Millisecond)
	code, _ := p.Terminate(t, 10*time.Second)
	require.Equal(t, 0, code)
}

// A bad configuration value stops the binary with one line naming the variable.
func TestBadConfigurationExitsWithOneLine(t *testing.T) {
	shared := map[string]string{
		"LOG_LEVEL":    "loud",
		"DATABASE_URL": "not a url",
		"RABBITMQ_URL": "http://x/",
		"JWT_SECRET":   "short",
	}
	// Each service's own variables; the others ignore them.
	own := map[string]map[string]string{
		"command":  {"WORKERS": "0", "MAX_WORKERS": "0"},
		"consumer": {"CONSUMER_PREFETCH": "0"},
		"query":    {"REPLAY_BATCH": "0"},
	}
	for _, name := range []string{"command", "consumer", "query"} {
		cases := maps.Clone(shared)
		maps.Copy(cases, own[name])
		for variable, value := range cases {
			code, out := Run(t, name, map[string]string{variable: value})
			require.Equal(t, 2, code, "%s with %s=%s: %s", name, variable, value, out)
			out = strings.TrimSpace(out)
			require.NotContains(t, out, "\n", "one line")
			require.Contains(t, out, variable)
		}
	}
}

// A service started while its database is unreachable stays up, logs, is not ready, and
// becomes ready once the database answers (here: a proxy brought up later).
func TestDatabaseDownAtStartRecovers(t *testing.T) {
	env := Env(t)
	code, out := Run(t, "command", env, "-migrate")
	require.Equal(t, 0, code, out)
	u, err := url.Parse(env["DATABASE_URL"])
	require.NoError(t, err)
	px := newProxy(t, u.Host)
	px.Down()
	env["DATABASE_URL"] = replaceHost(env["DATABASE_URL"], u.Host, px.addr)

	procs := []*Proc{Start(t, "command", env), Start(t, "consumer", env), Start(t, "query", env)}
	for _, p := range procs {
		p.WaitStatus(t, "/healthz", 200, 30*time.Second)
		require.Equal(t, 503, p.Status("/readyz"), p.Name)
	}
	px.Up()
	for _, p := range procs {
		p.WaitStatus(t, "/readyz", 200, 15*time.Second)
		code, _ := p.Terminate(t, 10*time.Second)
		require.Equal(t, 0, code, p.Output())
	}
}

// A request stuck in the database (here: a read behind a table lock another session
// holds) cannot keep a stopping service alive past SHUTDOWN_TIMEOUT.
func TestShutdownIsBoundedByTimeout(t *testing.T) {
	env := Env(t)
	code, out := Run(t, "command", env, "-migrate")
	require.Equal(t, 0, code, out)
	env["SHUTDOWN_TIMEOUT"] = "2s"
	p := Start(t, "query", env)
	p.WaitStatus(t, "/readyz", 200, 30*time.Second)

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, env["DATABASE_URL"])
	require.NoError(t, err)
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, `LOCK TABLE tenants IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)

	go func() {
		if resp, err := http.Get(p.URL() + "/tenants"); err == nil {
			_ = resp.Body.Close()
		}
	}()
	require.Eventually(t, func() bool {
		var waiting int
		_ = conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()`).Scan(&waiting)
		return waiting > 0
	}, 10*time.Second, 20*time.Millisecond, "the request waits on the lock")

	_, took := p.Terminate(t, 5*time.Second)
	require.Less(t, took, 3500*time.Millisecond, "exit within SHUTDOWN_TIMEOUT (2s) plus process teardown")
}
