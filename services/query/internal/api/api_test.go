//go:build integration

package api_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/events"
	"github.com/multitenant/mtm/platform/auth"
	"github.com/multitenant/mtm/platform/httpserver"
	"github.com/multitenant/mtm/platform/metrics"
	"github.com/multitenant/mtm/platform/pgtest"
	"github.com/multitenant/mtm/projections/cursor"
	"github.com/multitenant/mtm/projections/messages/messagestest"
	"github.com/multitenant/mtm/projections/tenants"
	"github.com/multitenant/mtm/services/query/internal/api"
)

type env struct {
	base  string
	pool  *pgxpool.Pool
	codec *cursor.Codec
	pos   int64
}

// start serves the API on a free loopback port against db's pool.
func start(t *testing.T, pool *pgxpool.Pool) *env {
	t.Helper()
	return startWith(t, pool, nil)
}

// startWith installs the JWT middleware and guards first when authCfg is set, exactly
// as main does.
func startWith(t *testing.T, pool *pgxpool.Pool, authCfg *auth.Config, opts ...func(*api.Handler)) *env {
	t.Helper()
	codec, err := cursor.NewCodec([]byte("api-test"))
	require.NoError(t, err)
	srv := httpserver.New(httpserver.Options{
		Service:  "query-test",
		Addr:     "127.0.0.1:0",
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registry: metrics.NewRegistry(),
	})
	h := api.New(pool, codec)
	if authCfg != nil {
		srv.App.Use(auth.Middleware(*authCfg))
		h.WithGuards(api.Guards{
			TenantAccess: auth.TenantAccess,
			TenantScope:  func(c *fiber.Ctx) (string, bool) { return auth.PrincipalFrom(c).TenantScope() },
		})
	}
	for _, o := range opts {
		o(h)
	}
	h.Register(srv.App)
	require.NoError(t, srv.Listen())
	done := make(chan error, 1)
	go func() { done <- srv.Run(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, srv.Stop(ctx))
		require.NoError(t, <-done)
	})
	return &env{base: "http://" + srv.Addr(), pool: pool, codec: codec}
}

func (e *env) apply(t *testing.T, id uuid.UUID, version int, at time.Time, ev events.Event) {
	t.Helper()
	envl, err := events.NewEnvelope(id.String(), version, events.Metadata{EventID: uuid.NewString(), OccurredAt: at}, ev)
	require.NoError(t, err)
	e.pos++
	require.NoError(t, pgx.BeginFunc(context.Background(), e.pool, func(tx pgx.Tx) error {
		_, err := tenants.Apply(context.Background(), tx, e.pos, events.Recorded{Envelope: envl, Event: ev})
		return err
	}))
}

type response struct {
	status      int
	contentType string
	body        []byte
}

func (e *env) get(t *testing.T, path string) response {
	t.Helper()
	return e.getAs(t, path, "")
}

func (e *env) getAs(t *testing.T, path, token string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.base+path, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), body: b}
}

// requireProblem checks an RFC 9457 body with the given status and code, and that no
// database text leaked into it.
func requireProblem(t *testing.T, r response, status int, code string) {
	t.Helper()
	require.Equal(t, status, r.status, string(r.body))
	require.Equal(t, httpserver.ProblemContentType, r.contentType)
	var p map[string]any
	require.NoError(t, json.Unmarshal(r.body, &p), string(r.body))
	for _, k := range []string{"type", "title", "status", "code", "instance"} {
		require.Contains(t, p, k, string(r.body))
	}
	require.Equal(t, float64(status), p["status"])
	require.Equal(t, code, p["code"], string(r.body))
	lower := strings.ToLower(string(r.body))
	for _, leak := range []string{"sqlstate", "select ", "pgx", "pgconn", "postgres", "relation", "syntax", "closed pool"} {
		require.NotContains(t, lower, leak, "database text in body: %s", r.body)
	}
}

type tenantJSON struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Status  string `json:"status"`
	Workers struct {
		Desired  int      `json:"desired"`
		Current  int      `json:"current"`
		Owner    *string  `json:"owner"`
		Replicas []string `json:"replicas"`
	} `json:"workers"`
	RateLimit *struct {
		PerSecond int `json:"per_second"`
		Burst     int `json:"burst"`
	} `json:"rate_limit"`
	Queue     string    `json:"queue"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Version   int       `json:"version"`
}

type pageJSON[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

type messageJSON struct {
	ID        string          `json:"id"`
	TenantID  string          `json:"tenant_id"`
	Payload   json.RawMessage `json:"payload"`
	CreatedAt time.Time       `json:"created_at"`
}

func decode[T any](t *testing.T, r response) T {
	t.Helper()
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	var v T
	require.NoError(t, json.Unmarshal(r.body, &v), string(r.body))
	return v
}

func TestGetTenant(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	e := start(t, db.Pool)
	ctx := context.Background()
	id := uuid.New()
	t0 := time.Date(2025, 5, 6, 7, 8, 9, 123456000, time.UTC)
	e.apply(t, id, 1, t0, events.TenantCreated{Name: "acme", Workers: 3})
	e.apply(t, id, 2, t0.Add(time.Minute), events.TenantConcurrencyChanged{Workers: 5, PreviousWorkers: 3})

	r := e.get(t, "/tenants/"+id.String())
	var raw map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(r.body, &raw))
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	require.ElementsMatch(t, []string{"id", "name", "status", "workers", "backlog", "rate_limit", "queue", "created_at", "updated_at", "version", "dead_letters_pending"}, keys,
		"no drain unless draining")
	require.JSONEq(t, "null", string(raw["rate_limit"]), "no limit of its own: the command service's default")
	require.JSONEq(t, "null", string(raw["backlog"]), "no backlog before the consumer's first sample")
	got := decode[tenantJSON](t, r)
	require.Equal(t, id.String(), got.ID)
	require.Equal(t, "acme", got.Name)
	require.Equal(t, "active", got.Status)
	require.Equal(t, 5, got.Workers.Desired)
	require.Equal(t, 0, got.Workers.Current, "no consumer report yet")
	require.Equal(t, "tenant_"+id.String()+"_queue", got.Queue)
	require.True(t, t0.Equal(got.CreatedAt))
	require.True(t, t0.Add(time.Minute).Equal(got.UpdatedAt))
	require.Equal(t, 2, got.Version)

	// workers.current is the consumer's report, read live.
	err := tenants.ReportWorkers(ctx, db.Pool, tenants.WorkerReport{Tenant: id, Replica: "replica-a", Current: 4, Owner: true})
	require.NoError(t, err)
	require.Equal(t, 4, decode[tenantJSON](t, e.get(t, "/tenants/"+id.String())).Workers.Current)
	err = tenants.ReportWorkers(ctx, db.Pool, tenants.WorkerReport{Tenant: id, Replica: "replica-a", Current: 5, Owner: true})
	require.NoError(t, err)
	require.Equal(t, 5, decode[tenantJSON](t, e.get(t, "/tenants/"+id.String())).Workers.Current)

	// A limit of its own shows as set.
	e.apply(t, id, 3, t0.Add(90*time.Second), events.TenantRateLimitChanged{PerSecond: 25, Burst: 50})
	limited := decode[tenantJSON](t, e.get(t, "/tenants/"+id.String()))
	require.NotNil(t, limited.RateLimit)
	require.Equal(t, 25, limited.RateLimit.PerSecond)
	require.Equal(t, 50, limited.RateLimit.Burst)
	require.Equal(t, 3, limited.Version)

	requireProblem(t, e.get(t, "/tenants/"+uuid.NewString()), http.StatusNotFound, "tenant_not_found")
	// A malformed path id names no tenant, as in the command service: even a live
	// tenant's id in another spelling is the unknown tenant's 404.
	requireProblem(t, e.get(t, "/tenants/not-a-uuid"), http.StatusNotFound, "tenant_not_found")
	requireProblem(t, e.get(t, "/tenants/%7B"+id.String()+"%7D"), http.StatusNotFound, "tenant_not_found")
	requireProblem(t, e.get(t, "/tenants/"+strings.ReplaceAll(id.String(), "-", "")), http.StatusNotFound, "tenant_not_found")
	require.Equal(t, http.StatusOK, e.get(t, "/tenants/"+strings.ToUpper(id.String())).status, "letter case does not matter")

	e.apply(t, id, 4, t0.Add(2*time.Minute), events.TenantDeleted{Name: "acme"})
	requireProblem(t, e.get(t, "/tenants/"+id.String()), http.StatusNotFound, "tenant_not_found")
}

func TestListTenants(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	e := start(t, db.Pool)

	empty := decode[pageJSON[tenantJSON]](t, e.get(t, "/tenants"))
	require.NotNil(t, empty.Data, `"data" is [] not null`)
	require.Empty(t, empty.Data)
	require.Nil(t, empty.NextCursor)
	require.Contains(t, string(e.get(t, "/tenants").body), `"next_cursor":null`)

	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	want := map[string]bool{}
	var deleted uuid.UUID
	for i := range 25 {
		id := uuid.New()
		// Groups of five share a created_at: the id tie-break keeps pages exact.
		e.apply(t, id, 1, t0.Add(time.Duration(i/5)*time.Second), events.TenantCreated{Name: id.String(), Workers: 1})
		want[id.String()] = true
		if i == 7 {
			deleted = id
		}
	}
	e.apply(t, deleted, 2, t0.Add(time.Hour), events.TenantDeleted{})
	delete(want, deleted.String())

	first := decode[pageJSON[tenantJSON]](t, e.get(t, "/tenants"))
	require.Len(t, first.Data, api.DefaultLimit, "default limit")
	require.NotNil(t, first.NextCursor)

	seen := map[string]int{}
	path := "/tenants?limit=7"
	pages := 0
	var prev time.Time
	for {
		p := decode[pageJSON[tenantJSON]](t, e.get(t, path))
		pages++
		for _, tn := range p.Data {
			seen[tn.ID]++
			require.False(t, tn.CreatedAt.Before(prev), "oldest first")
			prev = tn.CreatedAt
		}
		if p.NextCursor == nil {
			break
		}
		require.Len(t, p.Data, 7)
		path = "/tenants?limit=7&cursor=" + url.QueryEscape(*p.NextCursor)
	}
	require.Equal(t, 4, pages, "24 live tenants in pages of 7")
	require.Len(t, seen, len(want))
	for id := range want {
		require.Equal(t, 1, seen[id], id)
	}
	require.Zero(t, seen[deleted.String()], "deleted tenants are not listed")

	all := decode[pageJSON[tenantJSON]](t, e.get(t, "/tenants?limit=100"))
	require.Len(t, all.Data, 24)
	require.Nil(t, all.NextCursor)
}

func TestMessages(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	e := start(t, db.Pool)
	t0 := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	a, b, noPartition := uuid.New(), uuid.New(), uuid.New()
	for _, id := range []uuid.UUID{a, b, noPartition} {
		e.apply(t, id, 1, t0, events.TenantCreated{Name: id.String(), Workers: 1})
	}
	messagestest.CreatePartition(t, db.Pool, a)
	messagestest.CreatePartition(t, db.Pool, b)
	messagestest.InsertSeries(t, db.Pool, a, t0, time.Second, 7)
	messagestest.InsertSeries(t, db.Pool, b, t0, time.Second, 3)

	for _, prefix := range []string{"/messages?tenant_id=" + a.String() + "&", "/tenants/" + a.String() + "/messages?"} {
		t.Run(prefix, func(t *testing.T) {
			var got []messageJSON
			path := prefix + "limit=3"
			pages := 0
			for {
				p := decode[pageJSON[messageJSON]](t, e.get(t, path))
				pages++
				got = append(got, p.Data...)
				if p.NextCursor == nil {
					break
				}
				path = prefix + "limit=3&cursor=" + url.QueryEscape(*p.NextCursor)
			}
			require.Equal(t, 3, pages)
			require.Len(t, got, 7)
			ids := map[string]bool{}
			for i, m := range got {
				require.Equal(t, a.String(), m.TenantID)
				require.True(t, t0.Add(time.Duration(i)*time.Second).Equal(m.CreatedAt), "oldest first")
				require.JSONEq(t, `{"n":`+strconv.Itoa(i+1)+`}`, string(m.Payload))
				require.False(t, ids[m.ID], "no repeats")
				ids[m.ID] = true
			}

			def := decode[pageJSON[messageJSON]](t, e.get(t, strings.TrimSuffix(strings.TrimSuffix(prefix, "&"), "?")))
			require.Len(t, def.Data, 7, "default limit 20 covers all")
			require.Nil(t, def.NextCursor)
		})
	}

	// A tenant whose partition the consumer has not created yet has no messages.
	p := decode[pageJSON[messageJSON]](t, e.get(t, "/tenants/"+noPartition.String()+"/messages"))
	require.NotNil(t, p.Data)
	require.Empty(t, p.Data)

	requireProblem(t, e.get(t, "/messages"), http.StatusBadRequest, "missing_tenant_id")
	requireProblem(t, e.get(t, "/messages?tenant_id="), http.StatusBadRequest, "missing_tenant_id")
	requireProblem(t, e.get(t, "/messages?tenant_id=abc"), http.StatusBadRequest, "invalid_tenant_id")
	requireProblem(t, e.get(t, "/messages?tenant_id="+a.String()[:35]), http.StatusBadRequest, "invalid_tenant_id")
	requireProblem(t, e.get(t, "/messages?tenant_id=urn:uuid:"+a.String()), http.StatusBadRequest, "invalid_tenant_id")
	requireProblem(t, e.get(t, "/messages?tenant_id="+uuid.NewString()), http.StatusNotFound, "tenant_not_found")
	requireProblem(t, e.get(t, "/tenants/"+uuid.NewString()+"/messages"), http.StatusNotFound, "tenant_not_found")
	requireProblem(t, e.get(t, "/messages?tenant_id="+strings.ReplaceAll(a.String(), "-", "")), http.StatusBadRequest, "invalid_tenant_id")
	requireProblem(t, e.get(t, "/tenants/x/messages"), http.StatusNotFound, "tenant_not_found")
	requireProblem(t, e.get(t, "/tenants/urn:uuid:"+a.String()+"/messages"), http.StatusNotFound, "tenant_not_found")

	e.apply(t, b, 2, t0.Add(time.Hour), events.TenantDeleted{})
	requireProblem(t, e.get(t, "/messages?tenant_id="+b.String()), http.StatusNotFound, "tenant_not_found")
	requireProblem(t, e.get(t, "/tenants/"+b.String()+"/messages"), http.StatusNotFound, "tenant_not_found")
}

func TestBadLimit(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	e := start(t, db.Pool)
	id := uuid.New()
	e.apply(t, id, 1, time.Now(), events.TenantCreated{Name: "a", Workers: 1})
	paths := []string{"/tenants?", "/messages?tenant_id=" + id.String() + "&", "/tenants/" + id.String() + "/messages?",
		"/tenants/" + id.String() + "/dead-letters?", "/tenants/" + id.String() + "/events?"}
	for _, p := range paths {
		for _, bad := range []string{"0", "-1", "101", "1e9", "abc", "1.5", "99999999999999999999", "%20"} {
			t.Run(p+bad, func(t *testing.T) {
				requireProblem(t, e.get(t, p+"limit="+bad), http.StatusBadRequest, "invalid_limit")
			})
		}
		for _, good := range []string{"1", "100"} {
			r := e.get(t, p+"limit="+good)
			require.Equal(t, http.StatusOK, r.status, string(r.body))
		}
	}
}

func TestBadCursor(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	e := start(t, db.Pool)
	t0 := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	a, b := uuid.New(), uuid.New()
	for _, id := range []uuid.UUID{a, b} {
		e.apply(t, id, 1, t0, events.TenantCreated{Name: id.String(), Workers: 1})
		messagestest.CreatePartition(t, db.Pool, id)
		messagestest.InsertSeries(t, db.Pool, id, t0, time.Second, 5)
	}
	// Cursors the service itself issued.
	aCursor := *decode[pageJSON[messageJSON]](t, e.get(t, "/tenants/"+a.String()+"/messages?limit=2")).NextCursor
	tCursor := *decode[pageJSON[tenantJSON]](t, e.get(t, "/tenants?limit=1")).NextCursor
	other, err := cursor.NewCodec([]byte("other"))
	require.NoError(t, err)
	raw, err := base64.RawURLEncoding.DecodeString(aCursor)
	require.NoError(t, err)
	flipped := append([]byte(nil), raw...)
	flipped[30] ^= 0x04

	bad := map[string]string{
		"truncated":        aCursor[:len(aCursor)-4],
		"re-encoded std":   base64.StdEncoding.EncodeToString(raw),
		"re-encoded pad":   base64.URLEncoding.EncodeToString(raw),
		"bit-flipped":      base64.RawURLEncoding.EncodeToString(flipped),
		"garbage":          "hello",
		"tenants cursor":   tCursor,
		"other key":        other.Encode(cursor.KindMessages, a, cursor.Position{CreatedAt: t0, ID: uuid.New()}),
		"foreign (A on B)": aCursor,
	}
	for name, c := range bad {
		for _, path := range []string{"/messages?tenant_id=" + b.String() + "&cursor=", "/tenants/" + b.String() + "/messages?cursor="} {
			t.Run(name+" "+path, func(t *testing.T) {
				requireProblem(t, e.get(t, path+url.QueryEscape(c)), http.StatusBadRequest, "invalid_cursor")
			})
		}
	}
	// Tampered cursors are also refused on the owner's own list; the genuine one works.
	for name, c := range bad {
		if name == "foreign (A on B)" {
			continue
		}
		requireProblem(t, e.get(t, "/tenants/"+a.String()+"/messages?cursor="+url.QueryEscape(c)), http.StatusBadRequest, "invalid_cursor")
	}
	ok := decode[pageJSON[messageJSON]](t, e.get(t, "/tenants/"+a.String()+"/messages?limit=2&cursor="+url.QueryEscape(aCursor)))
	require.Len(t, ok.Data, 2)
	require.True(t, t0.Add(2*time.Second).Equal(ok.Data[0].CreatedAt), "resumes after the first page")

	// A messages cursor is not a tenants cursor.
	requireProblem(t, e.get(t, "/tenants?cursor="+url.QueryEscape(aCursor)), http.StatusBadRequest, "invalid_cursor")
	requireProblem(t, e.get(t, "/tenants?cursor="+url.QueryEscape(tCursor[:20])), http.StatusBadRequest, "invalid_cursor")
}

// A database failure is a generic 500 problem: the driver's text is logged, not sent.
func TestDatabaseErrorHidden(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	pool, err := pgxpool.New(context.Background(), db.URL)
	require.NoError(t, err)
	pool.Close()
	e := start(t, pool)
	for _, path := range []string{"/tenants", "/tenants/" + uuid.NewString(), "/messages?tenant_id=" + uuid.NewString(), "/tenants/" + uuid.NewString() + "/messages",
		"/tenants/" + uuid.NewString() + "/dead-letters", "/tenants/" + uuid.NewString() + "/events"} {
		requireProblem(t, e.get(t, path), http.StatusInternalServerError, "internal_error")
	}
}

// With JWT_SECRET set, a tenant principal reads only its own tenant: another tenant is
// the same 404 as an unknown one, lists show only itself, and no token is 401.
func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	cfg := auth.Config{Secret: "isolation-test"}
	e := startWith(t, db.Pool, &cfg)
	t0 := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	a, b := uuid.New(), uuid.New()
	for _, id := range []uuid.UUID{a, b} {
		e.apply(t, id, 1, t0, events.TenantCreated{Name: id.String(), Workers: 1})
		messagestest.CreatePartition(t, db.Pool, id)
		messagestest.InsertSeries(t, db.Pool, id, t0, time.Second, 3)
	}
	admin, err := auth.Mint(cfg, auth.RoleAdmin, "", time.Hour)
	require.NoError(t, err)
	tenantA, err := auth.Mint(cfg, auth.RoleTenant, a.String(), time.Hour)
	require.NoError(t, err)

	r := e.get(t, "/tenants")
	require.Equal(t, http.StatusUnauthorized, r.status)
	require.Equal(t, httpserver.ProblemContentType, r.contentType)

	require.Len(t, decode[pageJSON[tenantJSON]](t, e.getAs(t, "/tenants", admin)).Data, 2)
	mine := decode[pageJSON[tenantJSON]](t, e.getAs(t, "/tenants", tenantA))
	require.Len(t, mine.Data, 1)
	require.Equal(t, a.String(), mine.Data[0].ID)
	require.Nil(t, mine.NextCursor)

	require.Equal(t, http.StatusOK, e.getAs(t, "/tenants/"+a.String(), tenantA).status)
	// The consumer replica running it is the deployment's business: admins see it, the
	// tenant's own token sees the count only.
	require.NoError(t, tenants.ReportWorkers(context.Background(), db.Pool, tenants.WorkerReport{Tenant: a, Replica: "consumer-pod-7f-1a2b3c4d", Current: 1, Owner: true}))
	asAdmin := decode[tenantJSON](t, e.getAs(t, "/tenants/"+a.String(), admin))
	require.NotNil(t, asAdmin.Workers.Owner)
	require.Equal(t, "consumer-pod-7f-1a2b3c4d", *asAdmin.Workers.Owner)
	require.Equal(t, []string{"consumer-pod-7f-1a2b3c4d"}, asAdmin.Workers.Replicas)
	for _, got := range []tenantJSON{decode[tenantJSON](t, e.getAs(t, "/tenants/"+a.String(), tenantA)), decode[pageJSON[tenantJSON]](t, e.getAs(t, "/tenants", tenantA)).Data[0]} {
		require.Equal(t, 1, got.Workers.Current)
		require.Nil(t, got.Workers.Owner)
		require.NotNil(t, got.Workers.Replicas)
		require.Empty(t, got.Workers.Replicas)
	}
	require.Len(t, decode[pageJSON[messageJSON]](t, e.getAs(t, "/messages?tenant_id="+a.String(), tenantA)).Data, 3)

	unknown := e.getAs(t, "/tenants/"+uuid.NewString(), tenantA)
	for _, path := range []string{"/tenants/" + b.String(), "/tenants/" + b.String() + "/messages", "/messages?tenant_id=" + b.String()} {
		r := e.getAs(t, path, tenantA)
		requireProblem(t, r, http.StatusNotFound, "tenant_not_found")
		var p1, p2 map[string]any
		require.NoError(t, json.Unmarshal(r.body, &p1))
		require.NoError(t, json.Unmarshal(unknown.body, &p2))
		delete(p1, "instance")
		delete(p2, "instance")
		require.Equal(t, p2, p1, "another tenant looks exactly like an unknown one")
	}
	// B's data stays hidden even with a cursor the admin got for B.
	bCursor := *decode[pageJSON[messageJSON]](t, e.getAs(t, "/tenants/"+b.String()+"/messages?limit=1", admin)).NextCursor
	requireProblem(t, e.getAs(t, "/tenants/"+b.String()+"/messages?cursor="+url.QueryEscape(bCursor), tenantA), http.StatusNotFound, "tenant_not_found")
	requireProblem(t, e.getAs(t, "/tenants/"+a.String()+"/messages?cursor="+url.QueryEscape(bCursor), tenantA), http.StatusBadRequest, "invalid_cursor")
}

// backlog is "null" before the consumer's first sample of the tenant and then its
// latest reported sample, in GET /tenants/{id} and in every item of GET /tenants.
func TestTenantBacklog(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	e := start(t, db.Pool)
	ctx := context.Background()
	t0 := time.Date(2025, 5, 6, 7, 8, 9, 0, time.UTC)
	sampled, unsampled := uuid.New(), uuid.New()
	e.apply(t, sampled, 1, t0, events.TenantCreated{Name: "sampled", Workers: 2})
	e.apply(t, unsampled, 1, t0.Add(time.Second), events.TenantCreated{Name: "unsampled", Workers: 1})
	// The consumer's worker report comes first; the backlog columns stay NULL until
	// its sampler reports.
	require.NoError(t, tenants.ReportWorkers(ctx, db.Pool, tenants.WorkerReport{Tenant: sampled, Replica: "replica-a", Current: 2, Owner: true}))
	require.NoError(t, tenants.ReportWorkers(ctx, db.Pool, tenants.WorkerReport{Tenant: unsampled, Replica: "replica-a", Current: 1, Owner: true}))

	backlogOf := func(body []byte) json.RawMessage {
		t.Helper()
		var raw map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(body, &raw), string(body))
		require.Contains(t, raw, "backlog", string(body))
		return raw["backlog"]
	}
	r := e.get(t, "/tenants/"+sampled.String())
	require.Equal(t, http.StatusOK, r.status)
	require.JSONEq(t, "null", string(backlogOf(r.body)), "worker report without a sample")

	at := time.Date(2025, 5, 6, 7, 9, 10, 123456000, time.UTC)
	n, err := tenants.NewBacklogReporter(30*time.Second).Report(ctx, db.Pool, []tenants.BacklogSample{{
		TenantID: sampled, Backlog: tenants.Backlog{Ready: 120, Unacked: 64, LagSeconds: 1.5, SampledAt: at},
	}})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	want := `{"ready":120,"unacked":64,"lag_seconds":1.5,"sampled_at":"2025-05-06T07:09:10.123456Z"}`
	r = e.get(t, "/tenants/"+sampled.String())
	require.Equal(t, http.StatusOK, r.status)
	require.JSONEq(t, want, string(backlogOf(r.body)))
	require.JSONEq(t, "null", string(backlogOf(e.get(t, "/tenants/"+unsampled.String()).body)))

	var page struct {
		Data []json.RawMessage `json:"data"`
	}
	r = e.get(t, "/tenants")
	require.Equal(t, http.StatusOK, r.status)
	require.NoError(t, json.Unmarshal(r.body, &page))
	require.Len(t, page.Data, 2)
	require.JSONEq(t, want, string(backlogOf(page.Data[0])), "oldest first: the sampled tenant")
	require.JSONEq(t, "null", string(backlogOf(page.Data[1])))
}
