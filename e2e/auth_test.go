//go:build integration

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/amqptest"
	"github.com/multitenant/mtm/platform/auth"
	"github.com/multitenant/mtm/platform/rabbit"
)

// principal is one column of the matrix: who calls.
type principal struct {
	name   string
	token  string
	kind   string // "anon", "bad", "admin", "tenant"
	tenant string // own tenant id, for kind tenant
	detail string // the 401 detail, for kind bad
}

// route is one row of the matrix: an endpoint of a running service and what each kind
// of caller must get from it.
type route struct {
	name   string
	proc   *Proc
	method string
	path   string
	body   func(p principal) string
	public bool
	// admin is the status an admin gets; tenant the status for a tenant principal
	// (given its own tenant id). Bad and missing tokens always get 401.
	admin  int
	tenant func(own string) int
	// notFound is the unknown-tenant 404 of this route (asked as admin); a tenant's
	// 404 on another tenant's resource must be the same body.
	notFound *reply
	// check looks at a 2xx body.
	check func(t *testing.T, p principal, r reply)
}

// seen is a response to a tenant principal, checked for foreign data at the end.
type seen struct {
	who  principal
	cell string
	uri  string
	r    reply
}

// The full authentication and tenant-isolation matrix against the real binaries:
// every kind of caller × every endpoint of the command and query services, plus the
// public probes, docs and metrics of all three.
func TestAuthMatrix(t *testing.T) {
	began := time.Now()
	const secret = "e2e-auth-matrix-secret-6f1d2c9a-0b7e"
	env := Env(t)
	env["JWT_SECRET"] = secret

	// Queues of every tenant made here are deleted after the processes are killed
	// (cleanups run last-registered first), so the consumer never recreates them.
	conn := amqptest.Dial(t)
	var mu sync.Mutex
	var made []string
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, id := range made {
			if ch, err := conn.Channel(); err == nil {
				_ = rabbit.DeleteTenant(ch, id)
				_ = ch.Close()
			}
		}
	})
	remember := func(id string) { mu.Lock(); made = append(made, id); mu.Unlock() }

	code, out := Run(t, "command", env, "-migrate")
	require.Equal(t, 0, code, out)
	cmd, cons, qry := Start(t, "command", env), Start(t, "consumer", env), Start(t, "query", env)
	for _, p := range []*Proc{cmd, cons, qry} {
		p.WaitStatus(t, "/readyz", http.StatusOK, 30*time.Second)
	}
	started := time.Now()

	// The operator path: bin/command -token prints a token the services accept.
	operatorToken := func(args ...string) string {
		code, out := Run(t, "command", env, append([]string{"-token", "-ttl", "10m"}, args...)...)
		require.Equal(t, 0, code, out)
		tok := strings.TrimSpace(out)
		require.Equal(t, 2, strings.Count(tok, "."), "one JWT on stdout: %q", out)
		return tok
	}
	operatorAdmin := operatorToken("-role", "admin")

	// Fixture: tenants A and B with three messages each, and a throwaway for DELETE.
	create := func(token, name string) (reply, string) {
		r := call(t, http.MethodPost, cmd.URL()+"/tenants", token, fmt.Sprintf(`{"name":%q,"workers":1}`, name))
		var body struct{ ID string }
		if r.status == http.StatusCreated {
			require.NoError(t, json.Unmarshal(r.body, &body))
			remember(body.ID)
		}
		return r, body.ID
	}
	suffix := randHex(t)
	names := map[string]string{}
	mustCreate := func(name string) string {
		r, id := create(operatorAdmin, name)
		require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
		names[id] = name
		return id
	}
	A, B := mustCreate("alpha-"+suffix), mustCreate("bravo-"+suffix)
	throwaway := mustCreate("throwaway-" + suffix)
	unknown := uuid.NewString()

	cfg := auth.Config{Secret: secret}
	admin, err := auth.Mint(cfg, auth.RoleAdmin, "", time.Hour)
	require.NoError(t, err)
	tokA, err := auth.Mint(cfg, auth.RoleTenant, A, time.Hour)
	require.NoError(t, err)
	tokB := operatorToken("-role", "tenant", "-tenant", B)

	var msgMu sync.Mutex
	msgs := map[string][]string{} // tenant id -> ids of messages published to it
	publish := func(token, tenantID, body string) reply {
		r := call(t, http.MethodPost, cmd.URL()+"/tenants/"+tenantID+"/messages", token, body)
		if r.status == http.StatusAccepted {
			var m struct {
				ID       string `json:"id"`
				TenantID string `json:"tenant_id"`
			}
			require.NoError(t, json.Unmarshal(r.body, &m))
			require.Equal(t, tenantID, m.TenantID)
			msgMu.Lock()
			msgs[tenantID] = append(msgs[tenantID], m.ID)
			msgMu.Unlock()
		}
		return r
	}
	for _, id := range []string{A, B} {
		for i := range 3 {
			r := publish(admin, id, fmt.Sprintf(`{"seq":%d}`, i))
			require.Equal(t, http.StatusAccepted, r.status, "%s", r.body)
		}
	}
	setupMsgs := map[string][]string{A: append([]string(nil), msgs[A]...), B: append([]string(nil), msgs[B]...)}
	// The query service shows both tenants and all their messages.
	for _, id := range []string{A, B} {
		require.Eventually(t, func() bool {
			if call(t, http.MethodGet, qry.URL()+"/tenants/"+id, admin, "").status != http.StatusOK {
				return false
			}
			r := call(t, http.MethodGet, qry.URL()+"/tenants/"+id+"/messages?limit=100", admin, "")
			return r.status == http.StatusOK && len(decodePage(t, r).Data) == len(setupMsgs[id])
		}, 30*time.Second, 50*time.Millisecond, "query service shows tenant %s and its messages", id)
	}
	ready := time.Now()

	// The unknown-tenant 404 of each tenant-scoped route, as an admin sees it.
	ref := func(p *Proc, method, path, body string) *reply {
		r := call(t, method, p.URL()+path, admin, body)
		require.Equal(t, http.StatusNotFound, r.status, "%s %s: %s", method, path, r.body)
		return &r
	}
	refPublish := ref(cmd, http.MethodPost, "/tenants/"+unknown+"/messages", `{"x":1}`)
	refTenant := ref(qry, http.MethodGet, "/tenants/"+unknown, "")
	refTenantMsgs := ref(qry, http.MethodGet, "/tenants/"+unknown+"/messages", "")
	refMsgs := ref(qry, http.MethodGet, "/messages?tenant_id="+unknown, "")
	refDeadLetters := ref(qry, http.MethodGet, "/tenants/"+unknown+"/dead-letters", "")
	refEvents := ref(qry, http.MethodGet, "/tenants/"+unknown+"/events", "")

	principals := []principal{{name: "no token", kind: "anon"}}
	bad := badTokens(t, secret)
	for _, name := range []string{"expired", "wrong signature", "alg none", "HS512", "no exp"} {
		principals = append(principals, principal{name: name, token: bad[name].token, kind: "bad", detail: bad[name].detail})
	}
	principals = append(principals,
		principal{name: "admin", token: admin, kind: "admin"},
		principal{name: "tenant A", token: tokA, kind: "tenant", tenant: A},
		principal{name: "tenant B (bin-command -token)", token: tokB, kind: "tenant", tenant: B},
	)

	forbidden := func(string) int { return http.StatusForbidden }
	ownOr404 := func(id string, ok int) func(string) int {
		return func(own string) int {
			if own == id {
				return ok
			}
			return http.StatusNotFound
		}
	}
	noBody := func(principal) string { return "" }
	fixed := func(s string) func(principal) string { return func(principal) string { return s } }
	seq := 0
	msgBody := func(p principal) string { seq++; return fmt.Sprintf(`{"seq":%d,"by":%q}`, 100+seq, p.kind) }

	checkMessages := func(id string) func(*testing.T, principal, reply) {
		return func(t *testing.T, _ principal, r reply) {
			pg := decodePage(t, r)
			got := map[string]bool{}
			for _, m := range pg.Data {
				require.Equal(t, id, m.TenantID, "a row of another tenant: %s", r.body)
				got[m.ID] = true
			}
			for _, m := range setupMsgs[id] {
				require.True(t, got[m], "message %s of tenant %s listed", m, id)
			}
		}
	}
	checkTenant := func(id string) func(*testing.T, principal, reply) {
		return func(t *testing.T, _ principal, r reply) {
			var tn struct{ ID, Name string }
			require.NoError(t, json.Unmarshal(r.body, &tn))
			require.Equal(t, id, tn.ID)
			require.Equal(t, names[id], tn.Name)
		}
	}
	checkAccepted := func(id string) func(*testing.T, principal, reply) {
		return func(t *testing.T, _ principal, r reply) {
			var m struct {
				ID       string `json:"id"`
				TenantID string `json:"tenant_id"`
			}
			require.NoError(t, json.Unmarshal(r.body, &m))
			require.Equal(t, id, m.TenantID)
			msgMu.Lock()
			msgs[id] = append(msgs[id], m.ID)
			msgMu.Unlock()
		}
	}

	// A tenant's history starts with its creation, versions counting up from 1.
	checkHistory := func(t *testing.T, _ principal, r reply) {
		var pg struct {
			Data []struct {
				Type    string `json:"type"`
				Version int    `json:"version"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(r.body, &pg))
		require.NotEmpty(t, pg.Data, "%s", r.body)
		require.Equal(t, "tenant.created.v1", pg.Data[0].Type)
		for i, e := range pg.Data {
			require.Equal(t, i+1, e.Version, "%s", r.body)
		}
	}

	routes := []route{
		{name: "command POST /tenants", proc: cmd, method: http.MethodPost, path: "/tenants",
			body: func(p principal) string {
				return fmt.Sprintf(`{"name":%q}`, "made-by-"+strings.ReplaceAll(p.name, " ", "-")+"-"+suffix)
			},
			admin: http.StatusCreated, tenant: forbidden,
			check: func(t *testing.T, _ principal, r reply) {
				var body struct{ ID string }
				require.NoError(t, json.Unmarshal(r.body, &body))
				remember(body.ID)
			}},
		{name: "command PUT /tenants/{A}/config/concurrency", proc: cmd, method: http.MethodPut,
			path: "/tenants/" + A + "/config/concurrency", body: fixed(`{"workers":2}`),
			admin: http.StatusOK, tenant: forbidden},
		{name: "command PUT /tenants/{B}/config/concurrency", proc: cmd, method: http.MethodPut,
			path: "/tenants/" + B + "/config/concurrency", body: fixed(`{"workers":2}`),
			admin: http.StatusOK, tenant: forbidden},
		// A tenant may not lift its own ingest limit either.
		{name: "command PUT /tenants/{A}/config/rate-limit", proc: cmd, method: http.MethodPut,
			path: "/tenants/" + A + "/config/rate-limit", body: fixed(`{"per_second":500,"burst":500}`),
			admin: http.StatusOK, tenant: forbidden},
		{name: "command PUT /tenants/{B}/config/rate-limit", proc: cmd, method: http.MethodPut,
			path: "/tenants/" + B + "/config/rate-limit", body: fixed(`{"per_second":500,"burst":500}`),
			admin: http.StatusOK, tenant: forbidden},
		// Pause then resume at once, so A is consumed again before its messages are listed.
		{name: "command POST /tenants/{A}/pause", proc: cmd, method: http.MethodPost,
			path: "/tenants/" + A + "/pause", body: noBody, admin: http.StatusOK, tenant: forbidden},
		{name: "command POST /tenants/{A}/resume", proc: cmd, method: http.MethodPost,
			path: "/tenants/" + A + "/resume", body: noBody, admin: http.StatusOK, tenant: forbidden},
		{name: "command POST /tenants/{B}/dead-letters/redrive (dry run)", proc: cmd, method: http.MethodPost,
			path: "/tenants/" + B + "/dead-letters/redrive", body: fixed(`{"max":1,"dry_run":true}`),
			admin: http.StatusOK, tenant: forbidden},
		// Stale If-Match: past authorization without draining the fixture or purging.
		{name: "command DELETE /tenants/{A}?drain=true (stale If-Match)", proc: cmd, method: http.MethodDelete,
			path: "/tenants/" + A + "?drain=true", body: noBody, admin: http.StatusPreconditionFailed, tenant: forbidden},
		{name: "command DELETE /tenants/{B}/dead-letters (stale If-Match)", proc: cmd, method: http.MethodDelete,
			path: "/tenants/" + B + "/dead-letters", body: fixed(`{"max":1}`), admin: http.StatusPreconditionFailed, tenant: forbidden},
		{name: "command DELETE /tenants/{throwaway}", proc: cmd, method: http.MethodDelete,
			path: "/tenants/" + throwaway, body: noBody, admin: http.StatusAccepted, tenant: forbidden},
		// A tenant may not delete even itself. The admin's If-Match is stale on purpose:
		// it gets past authorization (412 from the handler) without deleting the fixture.
		{name: "command DELETE /tenants/{A} (stale If-Match)", proc: cmd, method: http.MethodDelete,
			path: "/tenants/" + A, body: noBody, admin: http.StatusPreconditionFailed, tenant: forbidden},
		{name: "command DELETE /tenants/{B} (stale If-Match)", proc: cmd, method: http.MethodDelete,
			path: "/tenants/" + B, body: noBody, admin: http.StatusPreconditionFailed, tenant: forbidden},
		{name: "command POST /tenants/{A}/messages", proc: cmd, method: http.MethodPost,
			path: "/tenants/" + A + "/messages", body: msgBody, admin: http.StatusAccepted,
			tenant: ownOr404(A, http.StatusAccepted), notFound: refPublish, check: checkAccepted(A)},
		{name: "command POST /tenants/{B}/messages", proc: cmd, method: http.MethodPost,
			path: "/tenants/" + B + "/messages", body: msgBody, admin: http.StatusAccepted,
			tenant: ownOr404(B, http.StatusAccepted), notFound: refPublish, check: checkAccepted(B)},
		{name: "query GET /tenants", proc: qry, method: http.MethodGet, path: "/tenants?limit=100", body: noBody,
			admin: http.StatusOK, tenant: func(string) int { return http.StatusOK },
			check: func(t *testing.T, p principal, r reply) {
				pg := decodePage(t, r)
				ids := map[string]bool{}
				for _, d := range pg.Data {
					ids[d.ID] = true
				}
				if p.kind == "tenant" {
					require.Len(t, pg.Data, 1, "a tenant lists only itself: %s", r.body)
					require.True(t, ids[p.tenant], "%s", r.body)
					require.Nil(t, pg.NextCursor)
					return
				}
				require.True(t, ids[A] && ids[B], "admin lists every tenant: %s", r.body)
			}},
		{name: "query GET /tenants/{A}", proc: qry, method: http.MethodGet, path: "/tenants/" + A, body: noBody,
			admin: http.StatusOK, tenant: ownOr404(A, http.StatusOK), notFound: refTenant, check: checkTenant(A)},
		{name: "query GET /tenants/{B}", proc: qry, method: http.MethodGet, path: "/tenants/" + B, body: noBody,
			admin: http.StatusOK, tenant: ownOr404(B, http.StatusOK), notFound: refTenant, check: checkTenant(B)},
		{name: "query GET /tenants/{A}/messages", proc: qry, method: http.MethodGet, path: "/tenants/" + A + "/messages?limit=100",
			body: noBody, admin: http.StatusOK, tenant: ownOr404(A, http.StatusOK), notFound: refTenantMsgs, check: checkMessages(A)},
		{name: "query GET /tenants/{B}/messages", proc: qry, method: http.MethodGet, path: "/tenants/" + B + "/messages?limit=100",
			body: noBody, admin: http.StatusOK, tenant: ownOr404(B, http.StatusOK), notFound: refTenantMsgs, check: checkMessages(B)},
		{name: "query GET /messages?tenant_id={A}", proc: qry, method: http.MethodGet, path: "/messages?limit=100&tenant_id=" + A,
			body: noBody, admin: http.StatusOK, tenant: ownOr404(A, http.StatusOK), notFound: refMsgs, check: checkMessages(A)},
		{name: "query GET /messages?tenant_id={B}", proc: qry, method: http.MethodGet, path: "/messages?limit=100&tenant_id=" + B,
			body: noBody, admin: http.StatusOK, tenant: ownOr404(B, http.StatusOK), notFound: refMsgs, check: checkMessages(B)},
		{name: "query GET /tenants/{A}/dead-letters", proc: qry, method: http.MethodGet, path: "/tenants/" + A + "/dead-letters?limit=100",
			body: noBody, admin: http.StatusOK, tenant: ownOr404(A, http.StatusOK), notFound: refDeadLetters},
		{name: "query GET /tenants/{B}/dead-letters", proc: qry, method: http.MethodGet, path: "/tenants/" + B + "/dead-letters?limit=100",
			body: noBody, admin: http.StatusOK, tenant: ownOr404(B, http.StatusOK), notFound: refDeadLetters},
		{name: "query GET /tenants/{A}/events", proc: qry, method: http.MethodGet, path: "/tenants/" + A + "/events?limit=100",
			body: noBody, admin: http.StatusOK, tenant: ownOr404(A, http.StatusOK), notFound: refEvents, check: checkHistory},
		{name: "query GET /tenants/{B}/events", proc: qry, method: http.MethodGet, path: "/tenants/" + B + "/events?limit=100",
			body: noBody, admin: http.StatusOK, tenant: ownOr404(B, http.StatusOK), notFound: refEvents, check: checkHistory},
	}
	for _, p := range []*Proc{cmd, cons, qry} {
		for _, path := range []string{"/healthz", "/readyz"} {
			routes = append(routes, route{name: p.Name + " GET " + path, proc: p, method: http.MethodGet, path: path, body: noBody, public: true})
		}
		// Metrics name every tenant: admin only on the public port.
		routes = append(routes, route{name: p.Name + " GET /metrics", proc: p, method: http.MethodGet, path: "/metrics", body: noBody,
			admin: http.StatusOK, tenant: forbidden})
	}
	for _, p := range []*Proc{cmd, qry} {
		routes = append(routes, route{name: p.Name + " GET /swagger/index.html", proc: p, method: http.MethodGet,
			path: "/swagger/index.html", body: noBody, public: true})
	}

	var seenMu sync.Mutex
	var tenantReplies []seen
	observe := func(p principal, cell, uri string, r reply) {
		if p.kind != "tenant" {
			return
		}
		seenMu.Lock()
		tenantReplies = append(tenantReplies, seen{who: p, cell: cell, uri: uri, r: r})
		seenMu.Unlock()
	}

	cells := 0
	for _, rt := range routes {
		t.Run(rt.name, func(t *testing.T) {
			for _, p := range principals {
				cells++
				t.Run(p.name, func(t *testing.T) {
					h := http.Header{}
					if strings.HasPrefix(rt.name, "command DELETE /tenants/{A}") || strings.HasPrefix(rt.name, "command DELETE /tenants/{B}") {
						h.Set("If-Match", `"999"`)
					}
					r := callWith(t, rt.method, rt.proc.URL()+rt.path, p.token, rt.body(p), h)
					if rt.public {
						require.Equal(t, http.StatusOK, r.status, "public endpoint answers any caller: %s", r.body)
						return
					}
					observe(p, rt.name+" as "+p.name, rt.path, r)
					switch p.kind {
					case "anon", "bad":
						require.Equal(t, http.StatusUnauthorized, r.status, "%s", r.body)
						challenge := r.header.Get("WWW-Authenticate")
						require.True(t, strings.HasPrefix(challenge, `Bearer realm="`), "WWW-Authenticate: %q", challenge)
						m := problem(t, r)
						if p.kind == "anon" {
							require.Equal(t, "unauthorized", m["code"])
							require.NotContains(t, challenge, "error=", "RFC 6750: no error code without credentials")
						} else {
							require.Equal(t, "invalid_token", m["code"])
							require.Contains(t, challenge, `error="invalid_token"`)
							require.Equal(t, p.detail, m["detail"])
						}
						return
					case "admin":
						require.Equal(t, rt.admin, r.status, "%s", r.body)
					case "tenant":
						want := rt.tenant(p.tenant)
						require.Equal(t, want, r.status, "%s", r.body)
						switch want {
						case http.StatusForbidden:
							require.Equal(t, "forbidden", problem(t, r)["code"])
						case http.StatusNotFound:
							require.NotNil(t, rt.notFound, "route has an unknown-tenant reference")
							got := problem(t, r)
							require.Equal(t, rt.path, got["instance"], "instance echoes the caller's own request")
							require.Equal(t, withoutInstance(problem(t, *rt.notFound)), withoutInstance(got),
								"another tenant's resource answers exactly like an unknown tenant")
							require.Empty(t, r.header.Get("WWW-Authenticate"))
						}
					}
					if r.status/100 == 2 && rt.check != nil {
						rt.check(t, p, r)
					}
				})
			}
		})
	}

	// A cursor is bound to the tenant it was issued for.
	t.Run("cursor of tenant A used by tenant B", func(t *testing.T) {
		first := call(t, http.MethodGet, qry.URL()+"/tenants/"+A+"/messages?limit=1", tokA, "")
		pg := decodePage(t, first)
		require.NotNil(t, pg.NextCursor, "more than one message, so a next page")
		curA := url.QueryEscape(*pg.NextCursor)

		own := call(t, http.MethodGet, qry.URL()+"/tenants/"+A+"/messages?limit=1&cursor="+curA, tokA, "")
		next := decodePage(t, own)
		require.Len(t, next.Data, 1)
		require.NotEqual(t, pg.Data[0].ID, next.Data[0].ID, "the cursor works for its own tenant")

		for _, path := range []string{"/tenants/" + B + "/messages?cursor=" + curA, "/messages?tenant_id=" + B + "&cursor=" + curA} {
			r := call(t, http.MethodGet, qry.URL()+path, tokB, "")
			observe(principals[len(principals)-1], "foreign cursor "+path, path, r)
			require.Equal(t, http.StatusBadRequest, r.status, "%s: %s", path, r.body)
			require.Equal(t, "invalid_cursor", problem(t, r)["code"])
			// Not a property of the caller: the admin cannot move it to B either.
			r = call(t, http.MethodGet, qry.URL()+path, admin, "")
			require.Equal(t, http.StatusBadRequest, r.status, "%s: %s", path, r.body)
		}
		// On A's own list, B is stopped by access before the cursor is looked at.
		path := "/tenants/" + A + "/messages?cursor=" + curA
		r := call(t, http.MethodGet, qry.URL()+path, tokB, "")
		observe(principals[len(principals)-1], "A's cursor on A's list by B", path, r)
		require.Equal(t, http.StatusNotFound, r.status, "%s", r.body)
		require.Equal(t, withoutInstance(problem(t, *refTenantMsgs)), withoutInstance(problem(t, r)))
	})

	// Both services accept one tenant id form: any other spelling in a path, even of
	// the caller's own live tenant, is the unknown tenant's 404; in tenant_id it is 400.
	t.Run("malformed tenant ids", func(t *testing.T) {
		want := withoutInstance(problem(t, *refTenant))
		for _, bad := range []string{strings.ReplaceAll(A, "-", ""), "urn:uuid:" + A, A[:35], "not-a-uuid"} {
			for _, tok := range []string{admin, tokA} {
				for _, c := range []struct {
					p            *Proc
					method, path string
					body         string
				}{
					{cmd, http.MethodPut, "/tenants/" + bad + "/config/concurrency", `{"workers":2}`},
					{cmd, http.MethodDelete, "/tenants/" + bad, ""},
					{cmd, http.MethodDelete, "/tenants/" + bad + "/dead-letters", `{"max":1}`},
					{cmd, http.MethodPost, "/tenants/" + bad + "/messages", `{"x":1}`},
					{qry, http.MethodGet, "/tenants/" + bad, ""},
					{qry, http.MethodGet, "/tenants/" + bad + "/messages", ""},
				} {
					r := call(t, c.method, c.p.URL()+c.path, tok, c.body)
					if tok == tokA && c.method != http.MethodGet && c.method != http.MethodPost {
						// Management commands stop a tenant before the id is looked at.
						require.Equal(t, http.StatusForbidden, r.status, "%s %s: %s", c.method, c.path, r.body)
						continue
					}
					require.Equal(t, http.StatusNotFound, r.status, "%s %s: %s", c.method, c.path, r.body)
					require.Equal(t, want, withoutInstance(problem(t, r)), "%s %s", c.method, c.path)
				}
				r := call(t, http.MethodGet, qry.URL()+"/messages?tenant_id="+url.QueryEscape(bad), tok, "")
				require.Equal(t, http.StatusBadRequest, r.status, "tenant_id=%s: %s", bad, r.body)
				require.Equal(t, "invalid_tenant_id", problem(t, r)["code"])
			}
		}
	})

	// No reply to one tenant carries the other's id, name or message ids. A problem's
	// instance is the caller's own request URI echoed back (checked above), so it is
	// left out.
	t.Run("no foreign data in any tenant reply", func(t *testing.T) {
		secrets := map[string][]string{}
		for _, id := range []string{A, B} {
			secrets[id] = append([]string{id, names[id]}, msgs[id]...)
		}
		other := map[string]string{A: B, B: A}
		for _, s := range tenantReplies {
			body := string(s.r.body)
			if strings.HasPrefix(s.r.header.Get("Content-Type"), "application/problem+json") {
				m := problem(t, s.r)
				assert.Equal(t, s.uri, m["instance"], s.cell)
				b, err := json.Marshal(withoutInstance(m))
				require.NoError(t, err)
				body = string(b)
			}
			body = strings.ToLower(body)
			for _, secret := range secrets[other[s.who.tenant]] {
				assert.NotContains(t, body, strings.ToLower(secret), "%s leaks tenant %s", s.cell, other[s.who.tenant])
			}
		}
		require.NotEmpty(t, tenantReplies)
		t.Logf("%d tenant replies checked against %d+%d foreign strings", len(tenantReplies), len(secrets[A]), len(secrets[B]))
	})

	t.Logf("matrix: %d routes x %d principals = %d cells; startup %s, fixture %s, matrix %s, total %s",
		len(routes), len(principals), cells, started.Sub(began).Round(time.Millisecond),
		ready.Sub(started).Round(time.Millisecond), time.Since(ready).Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}
