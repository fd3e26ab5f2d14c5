package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/auth"
)

const tenantA = "0190f2a4-7b7e-7c3a-9d4e-1a2b3c4d5e6f"

// fakeAPI answers like both services for the few routes these tests use, and records
// the requests.
type fakeAPI struct {
	mu       sync.Mutex
	requests []*http.Request
	bodies   []string
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body bytes.Buffer
	_, _ = body.ReadFrom(r.Body)
	f.mu.Lock()
	f.requests = append(f.requests, r)
	f.bodies = append(f.bodies, body.String())
	f.mu.Unlock()
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/tenants":
		writeJSONTo(w, 200, map[string]any{"data": []map[string]any{{"id": tenantA, "name": "Acme", "status": "active"}}, "next_cursor": nil})
	case r.Method == http.MethodGet && r.URL.Path == "/tenants/"+tenantA:
		writeJSONTo(w, 200, map[string]any{"id": tenantA, "name": "Acme", "status": "paused", "workers": map[string]int{"desired": 2, "current": 0}})
	case r.Method == http.MethodPost && r.URL.Path == "/tenants/"+tenantA+"/dead-letters/redrive":
		writeJSONTo(w, 200, map[string]any{"matched": 3})
	default:
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"type":"about:blank","title":"Not Found","status":404,"detail":"tenant not found","code":"tenant_not_found"}`))
	}
}

func writeJSONTo(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

type result struct {
	code           int
	stdout, stderr string
}

func execute(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := Execute(context.Background(), args, Streams{In: strings.NewReader(""), Out: &out, Err: &errb}, func(k string) string { return env[k] })
	return result{code, out.String(), errb.String()}
}

func fakeEnv(t *testing.T) (*fakeAPI, map[string]string) {
	t.Helper()
	f := &fakeAPI{}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, map[string]string{EnvCommandURL: srv.URL, EnvQueryURL: srv.URL}
}

func TestUsageErrorsExitTwoWithUsage(t *testing.T) {
	f, env := fakeEnv(t)
	for name, args := range map[string][]string{
		"unknown command":        {"tenantz"},
		"unknown subcommand":     {"tenants", "frobnicate"},
		"group alone":            {"dlq"},
		"unknown flag":           {"tenants", "list", "--nope"},
		"missing argument":       {"tenants", "get"},
		"extra argument":         {"events", tenantA, "more"},
		"bad output":             {"tenants", "list", "-o", "yaml"},
		"bad limit":              {"tenants", "list", "--limit", "-1"},
		"non-integer workers":    {"tenants", "resize", tenantA, "many"},
		"drain timeout alone":    {"tenants", "delete", tenantA, "--drain-timeout", "1m"},
		"empty dlq selector":     {"dlq", "redrive", tenantA},
		"follow with limit":      {"messages", "list", tenantA, "--follow", "--limit", "3"},
		"bad concurrency":        {"publish", tenantA, "--concurrency", "0"},
		"flag value not a count": {"tenants", "create", "x", "--workers", "three"},
	} {
		r := execute(t, env, args...)
		assert.Equal(t, ExitUsage, r.code, "%s: %+v", name, r)
		assert.True(t, strings.HasPrefix(r.stderr, "mtmctl: "), "%s: %q", name, r.stderr)
		assert.Contains(t, r.stderr, "Usage:", name)
		assert.Empty(t, r.stdout, name)
	}
	assert.Empty(t, f.requests, "a usage error calls nothing")
}

func TestAProblemExitsOneWithItsDetail(t *testing.T) {
	_, env := fakeEnv(t)
	r := execute(t, env, "tenants", "get", "0190f2a4-7b7e-7c3a-9d4e-0000000000ff")
	assert.Equal(t, ExitFailure, r.code)
	assert.Equal(t, "mtmctl: tenant not found\n", r.stderr)
	assert.Empty(t, r.stdout)
}

func TestNetworkErrorExitsOne(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close() // nothing listens there now
	r := execute(t, map[string]string{EnvQueryURL: srv.URL}, "tenants", "list")
	assert.Equal(t, ExitFailure, r.code)
	assert.Contains(t, r.stderr, "mtmctl: list tenants: GET "+srv.URL+"/tenants")
	assert.NotContains(t, r.stderr, "goroutine", "no stack trace")
}

func TestTokenFromEnvironmentAndFlagsAndNames(t *testing.T) {
	f, env := fakeEnv(t)
	env[EnvToken] = "from-env"
	r := execute(t, env, "tenants", "get", "acme") // a name, case-insensitive
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "Status:        paused\n")
	assert.Contains(t, r.stdout, "Workers:       0 running of 2 desired\n")
	require.Len(t, f.requests, 2, "one lookup, one get")
	assert.Equal(t, "Bearer from-env", f.requests[1].Header.Get("Authorization"))

	r = execute(t, env, "--token", "from-flag", "-o", "json", "dlq", "redrive", "Acme", "--reason", "invalid_json", "--dry-run")
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.JSONEq(t, `{"matched":3}`, r.stdout)
	assert.Equal(t, "Bearer from-flag", f.requests[3].Header.Get("Authorization"))
	assert.JSONEq(t, `{"reason":"invalid_json","dry_run":true}`, f.bodies[3])

	r = execute(t, env, "tenants", "get", "nobody")
	assert.Equal(t, ExitFailure, r.code)
	assert.Equal(t, "mtmctl: no tenant with id or name \"nobody\"\n", r.stderr)
}

func TestHelpDoesNotShowTheToken(t *testing.T) {
	r := execute(t, map[string]string{EnvToken: "secret-token-value"}, "--help")
	assert.Equal(t, ExitOK, r.code)
	assert.NotContains(t, r.stdout, "secret-token-value")
}

func TestTokenMintsWhatTheServicesAccept(t *testing.T) {
	secret := strings.Repeat("s", 32)
	env := map[string]string{"JWT_SECRET": secret, "JWT_ISSUER": "mtm"}
	r := execute(t, env, "token", "--role", "tenant", "--tenant", tenantA, "--ttl", "10m")
	require.Equal(t, ExitOK, r.code, r.stderr)
	p, err := auth.Verify(auth.Config{Secret: secret, Issuer: "mtm"}, strings.TrimSpace(r.stdout))
	require.NoError(t, err)
	assert.Equal(t, auth.RoleTenant, p.Role)
	assert.Equal(t, tenantA, p.TenantID)

	r = execute(t, env, "token")
	require.Equal(t, ExitOK, r.code, r.stderr)
	p, err = auth.Verify(auth.Config{Secret: secret}, strings.TrimSpace(r.stdout))
	require.NoError(t, err)
	assert.True(t, p.IsAdmin())

	for name, c := range map[string]struct {
		env  map[string]string
		args []string
		want string
	}{
		"no secret":        {map[string]string{}, nil, "JWT_SECRET: not set"},
		"short secret":     {map[string]string{"JWT_SECRET": "short"}, nil, "JWT_SECRET: must be at least 32 bytes"},
		"bad role":         {env, []string{"--role", "root"}, "--role: must be admin or tenant"},
		"tenant without":   {env, []string{"--role", "tenant"}, "--tenant: --role tenant needs a tenant id"},
		"admin with":       {env, []string{"--tenant", tenantA}, "--tenant: only with --role tenant"},
		"ttl over max":     {map[string]string{"JWT_SECRET": secret, "JWT_MAX_TTL": "1h"}, []string{"--ttl", "2h"}, "--ttl: must be positive and at most JWT_MAX_TTL (1h0m0s)"},
		"bad max ttl":      {map[string]string{"JWT_SECRET": secret, "JWT_MAX_TTL": "soon"}, nil, "JWT_MAX_TTL: must be a positive duration"},
		"zero ttl refused": {env, []string{"--ttl", "0s"}, "--ttl: must be positive"},
	} {
		r := execute(t, c.env, append([]string{"token"}, c.args...)...)
		assert.Equal(t, ExitUsage, r.code, name)
		assert.Contains(t, r.stderr, "mtmctl: "+c.want, name)
		assert.Empty(t, r.stdout, name)
	}
}

func TestWalkStopsAtMax(t *testing.T) {
	pages := 0
	got, err := collect(context.Background(), 5, func(cursor string, limit int) ([]int, string, error) {
		pages++
		assert.LessOrEqual(t, limit, 5)
		return []int{1, 2, 3}, "next", nil
	})
	require.NoError(t, err)
	assert.Equal(t, []int{1, 2, 3, 1, 2}, got)
	assert.Equal(t, 2, pages)

	got, err = collect(context.Background(), 0, func(cursor string, limit int) ([]int, string, error) {
		assert.Equal(t, maxPage, limit)
		return nil, "", nil
	})
	require.NoError(t, err)
	assert.NotNil(t, got, "-o json prints [] for nothing")
}
