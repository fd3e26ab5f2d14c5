package web

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/client"
	"github.com/multitenant/mtm/platform/auth"
)

const (
	testSecret = "console-test-secret-0123456789abcdef-xyz"
	tenantA    = "0190f2a4-7b7e-7c3a-9d4e-1a2b3c4d5e6f"
	tenantB    = "0190f2a4-7b7e-7c3a-9d4e-1a2b3c4d5e70"
	origin     = "http://console.test"
)

// upstream fakes both services: it records every call and answers from canned JSON.
type upstream struct {
	mu    sync.Mutex
	calls []string // "METHOD path auth"
	// answers maps "METHOD path" to status and body; absent paths are 404 problems.
	answers map[string]answer
}

type answer struct {
	status int
	body   string
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.calls = append(u.calls, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization"))
	a, ok := u.answers[r.Method+" "+r.URL.Path]
	u.mu.Unlock()
	if !ok {
		a = answer{404, `{"status":404,"code":"tenant_not_found","detail":"tenant not found"}`}
	}
	if a.status >= 300 {
		w.Header().Set("Content-Type", "application/problem+json")
	} else {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(a.status)
	_, _ = io.WriteString(w, a.body)
}

func (u *upstream) called(prefix string) []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []string
	for _, c := range u.calls {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}

func tenantJSON(id, name, status string, backlog bool) string {
	t := map[string]any{
		"id": id, "name": name, "status": status, "workers": map[string]int{"desired": 3, "current": 2},
		"dead_letters_pending": 1, "queue": "tenant_" + id + "_queue", "version": 99,
		"created_at": time.Now().Add(-time.Hour), "updated_at": time.Now(),
	}
	if backlog {
		t["backlog"] = map[string]any{"ready": 42, "unacked": 7, "lag_seconds": 1.5, "sampled_at": time.Now()}
	}
	b, _ := json.Marshal(t)
	return string(b)
}

// browser is a console plus a cookie jar, driving it through Fiber's test hook.
type browser struct {
	t    *testing.T
	app  *fiber.App
	up   *upstream
	jar  map[string]string
	last string // body of the last page
}

func newBrowser(t *testing.T, secret string) *browser {
	t.Helper()
	up := &upstream{answers: map[string]answer{
		"GET /tenants":                          {200, `{"data":[` + tenantJSON(tenantA, `<img src=x onerror=alert(1)>`, "active", false) + `,` + tenantJSON(tenantB, "beta", "paused", true) + `],"next_cursor":null}`},
		"GET /tenants/" + tenantA:               {200, tenantJSON(tenantA, "acme", "active", false)},
		"GET /tenants/" + tenantA + "/messages": {200, `{"data":[{"id":"m1","tenant_id":"` + tenantA + `","payload":{"html":"<script>alert('x')</script>","n":1},"created_at":"2024-05-01T10:00:00Z"}],"next_cursor":"CURSOR-2"}`},
		"GET /tenants/" + tenantA + "/dead-letters": {200, `{"data":[{"id":"d1","message_id":"poison-1","reason":"invalid_json","reason_detail":"body is not valid JSON","status":"pending","deaths":1,
			"headers":{},"size":10,"payload_base64":"eyJicm9rZW4iOg==","payload_encoding":"base64"}],"next_cursor":null}`},
		"GET /tenants/" + tenantA + "/events":                {200, `{"data":[{"type":"tenant.created.v1","version":1,"occurred_at":"2024-05-01T10:00:00Z","correlation_id":"c1","data":{"name":"acme"}}],"next_cursor":null}`},
		"POST /tenants/" + tenantA + "/pause":                {200, `{"id":"` + tenantA + `","status":"paused","version":5}`},
		"POST /tenants/" + tenantA + "/resume":               {409, `{"status":409,"code":"tenant_draining","detail":"the tenant is draining: it takes no more commands but a delete"}`},
		"DELETE /tenants/" + tenantA:                         {202, `{"id":"` + tenantA + `","status":"deleting","version":6}`},
		"POST /tenants/" + tenantA + "/dead-letters/redrive": {200, `{"matched":1}`},
		"POST /tenants": {201, `{"id":"` + tenantB + `","name":"new","workers":2,"status":"active","version":1,"amqp":{"username":"u","password":"p4ss","vhost":"/","exchange":"x"}}`},
	}}
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	s, err := New(Options{
		Client: client.New(srv.URL, srv.URL, ""),
		Auth:   auth.Config{Secret: secret},
		Key:    []byte("k"),
		Log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	app := fiber.New()
	s.Register(app)
	return &browser{t: t, app: app, up: up, jar: map[string]string{}}
}

// do sends one request with the jar's cookies (and form values, for POST) and keeps the
// cookies the answer sets.
func (b *browser) do(method, path string, form url.Values, hdr map[string]string) *http.Response {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequest(method, origin+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range b.jar {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := b.app.Test(req, -1)
	require.NoError(b.t, err)
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 || c.Value == "" {
			delete(b.jar, c.Name)
		} else {
			b.jar[c.Name] = c.Value
		}
	}
	raw, err := io.ReadAll(resp.Body)
	require.NoError(b.t, err)
	b.last = string(raw)
	return resp
}

func (b *browser) get(path string) *http.Response { return b.do(http.MethodGet, path, nil, nil) }

var csrfMeta = regexp.MustCompile(`name="csrf-token" content="([^"]+)"`)

// post submits a form the way a console page does: same origin, with the token of the
// last page rendered.
func (b *browser) post(path string, form url.Values) *http.Response {
	b.t.Helper()
	m := csrfMeta.FindStringSubmatch(b.last)
	require.NotNil(b.t, m, "the last page carries a CSRF token")
	form.Set(csrfField, m[1])
	return b.do(http.MethodPost, path, form, map[string]string{"Origin": origin})
}

func (b *browser) signIn(token string) {
	b.t.Helper()
	b.get("/signin")
	resp := b.post("/signin", url.Values{"token": {token}})
	require.Equal(b.t, http.StatusSeeOther, resp.StatusCode, b.last)
}

func mint(t *testing.T, role auth.Role, tenant string) string {
	t.Helper()
	tok, err := auth.Mint(auth.Config{Secret: testSecret}, role, tenant, time.Hour)
	require.NoError(t, err)
	return tok
}

// Payloads and names are tenant-controlled: they render as text, never as markup, and
// the page forbids inline script anyway.
func TestTenantControlledTextIsEscaped(t *testing.T) {
	b := newBrowser(t, "")
	resp := b.get("/tenants/" + tenantA + "/messages")
	require.Equal(t, http.StatusOK, resp.StatusCode, b.last)
	assert.NotContains(t, b.last, "<script>alert")
	assert.Contains(t, b.last, `&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;`)
	assert.Contains(t, b.last, "&#34;n&#34;: 1", "payload pretty-printed")
	assert.Contains(t, b.last, "cursor=CURSOR-2", "next page link")

	b.get("/tenants")
	assert.NotContains(t, b.last, "<img src=x")
	assert.Contains(t, b.last, "&lt;img src=x onerror=alert(1)&gt;")
	assert.Equal(t, contentSecurityPolicy, resp.Header.Get("Content-Security-Policy"))
	assert.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"))
	assert.Contains(t, contentSecurityPolicy, "script-src 'self';")
	assert.Contains(t, contentSecurityPolicy, "frame-ancestors 'none'")
	assert.NotContains(t, contentSecurityPolicy, "unsafe-inline")
}

// Pretty-printing shows the characters the services escape, and only those: an escaped
// backslash before "u003c" stays as it was.
func TestPrettyJSON(t *testing.T) {
	assert.Equal(t, "{\n  \"a\": \"<b> & </b>\",\n  \"n\": [\n    1\n  ]\n}", prettyJSON(json.RawMessage(`{"a":"\u003cb\u003e \u0026 \u003c/b\u003e","n":[1]}`)))
	assert.Equal(t, `"\\u003c \u00e9 \n"`, prettyJSON(json.RawMessage(`"\\u003c \u00e9 \n"`)))
	assert.Equal(t, "not json {", prettyJSON(json.RawMessage("not json {")))
}

// The tenants table shows the backlog when the query service has one and a dash when
// not; the live-refresh fragment is the rows alone.
func TestTenantsTableAndFragment(t *testing.T) {
	b := newBrowser(t, "")
	b.get("/tenants")
	assert.Contains(t, b.last, `<td class="num">42</td><td class="num">7</td><td class="num">1.5s</td>`)
	assert.Contains(t, b.last, `<td class="num muted">—</td>`)
	assert.Contains(t, b.last, `status-paused`)
	assert.Contains(t, b.last, `id="create-form"`, "open console: implicit admin")
	b.do(http.MethodGet, "/tenants?fragment=rows", nil, map[string]string{fragmentHeader: "1"})
	assert.NotContains(t, b.last, "<html")
	assert.Contains(t, b.last, `data-tenant="`+tenantB+`"`)
}

// With JWT on, pages need a session: the sign-in page verifies the pasted token as the
// services do, keeps it in an HttpOnly SameSite=Strict cookie, and every API call
// carries it.
func TestSignInSessionAndToken(t *testing.T) {
	b := newBrowser(t, testSecret)
	resp := b.get("/tenants/" + tenantA)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "/signin?next=%2Ftenants%2F"+tenantA, resp.Header.Get("Location"))
	resp = b.do(http.MethodGet, "/tenants?fragment=rows", nil, map[string]string{fragmentHeader: "1"})
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "live refresh is told, not redirected")
	require.Empty(t, b.up.called("GET"), "nothing reached the services")

	b.get("/signin")
	resp = b.post("/signin", url.Values{"token": {mint(t, auth.RoleAdmin, "")[:20]}})
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Contains(t, b.last, "This token cannot sign in: token is malformed.")
	wrong, err := auth.Mint(auth.Config{Secret: testSecret + "-other"}, auth.RoleAdmin, "", time.Hour)
	require.NoError(t, err)
	b.post("/signin", url.Values{"token": {wrong}})
	assert.Contains(t, b.last, "token signature is invalid")

	admin := mint(t, auth.RoleAdmin, "")
	resp = b.post("/signin", url.Values{"token": {"Bearer " + admin}, "next": {"/tenants/" + tenantA}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, b.last)
	require.Equal(t, "/tenants/"+tenantA, resp.Header.Get("Location"))
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie {
			session = c
		}
	}
	require.NotNil(t, session)
	assert.True(t, session.HttpOnly)
	assert.Equal(t, http.SameSiteStrictMode, session.SameSite)
	assert.Equal(t, admin, session.Value)

	resp = b.get("/tenants/" + tenantA)
	require.Equal(t, http.StatusOK, resp.StatusCode, b.last)
	assert.Equal(t, []string{"GET /tenants/" + tenantA + " Bearer " + admin}, b.up.called("GET /tenants/"+tenantA))

	// An open redirect through next is refused.
	b.get("/signin")
	resp = b.post("/signin", url.Values{"token": {admin}, "next": {"//evil.test/x"}})
	assert.Equal(t, "/tenants", resp.Header.Get("Location"))

	b.get("/tenants")
	resp = b.post("/signout", url.Values{})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.NotContains(t, b.jar, sessionCookie)
	resp = b.get("/tenants")
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode)
}

// Every state-changing request needs the page's CSRF token and a same-origin Origin (or
// Referer); without them nothing reaches the services.
func TestCSRFRefusesForeignPosts(t *testing.T) {
	b := newBrowser(t, testSecret)
	b.signIn(mint(t, auth.RoleAdmin, ""))
	b.get("/tenants/" + tenantA)
	token := csrfMeta.FindStringSubmatch(b.last)[1]
	pause := "/tenants/" + tenantA + "/pause"

	resp := b.do(http.MethodPost, pause, url.Values{}, map[string]string{"Origin": origin})
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "no token")
	assert.Contains(t, b.last, "missing or wrong CSRF token")
	resp = b.do(http.MethodPost, pause, url.Values{csrfField: {token + "x"}}, map[string]string{"Origin": origin})
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "wrong token")
	resp = b.do(http.MethodPost, pause, url.Values{csrfField: {token}}, map[string]string{"Origin": "http://evil.test"})
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "foreign origin")
	resp = b.do(http.MethodPost, pause, url.Values{csrfField: {token}}, nil)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "neither Origin nor Referer")
	resp = b.do(http.MethodPost, pause, url.Values{csrfField: {token}}, map[string]string{"Referer": "http://evil.test/tenants"})
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "foreign referer")
	require.Empty(t, b.up.called("POST"), "nothing reached the command service")

	resp = b.do(http.MethodPost, pause, url.Values{csrfField: {token}}, map[string]string{"Referer": origin + "/tenants/" + tenantA})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, b.last)
	require.Len(t, b.up.called("POST "+pause), 1)

	// A token from before sign-in (another session) is worth nothing after it.
	b.signIn(mint(t, auth.RoleAdmin, ""))
	resp = b.do(http.MethodPost, pause, url.Values{csrfField: {token}}, map[string]string{"Origin": origin})
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
}

// A tenant token sees no admin controls, and the console refuses the admin actions with
// a 403 before calling anything.
func TestTenantTokenHasNoAdminActions(t *testing.T) {
	b := newBrowser(t, testSecret)
	b.signIn(mint(t, auth.RoleTenant, tenantA))
	b.get("/tenants")
	assert.NotContains(t, b.last, `id="create-form"`)
	b.get("/tenants/" + tenantA)
	assert.NotContains(t, b.last, "Actions")
	assert.NotContains(t, b.last, `id="delete-form"`)
	b.get("/tenants/" + tenantA + "/dead-letters")
	assert.NotContains(t, b.last, `id="dl-actions"`)
	assert.NotContains(t, b.last, `class="dl-pick"`)

	for _, path := range []string{"/tenants", "/tenants/" + tenantA + "/pause", "/tenants/" + tenantA + "/resize", "/tenants/" + tenantA + "/delete", "/tenants/" + tenantA + "/dead-letters"} {
		b.get("/tenants/" + tenantA)
		resp := b.post(path, url.Values{"name": {"x"}, "workers": {"2"}, "drain": {"true"}, "op": {"redrive"}})
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, path)
		assert.Contains(t, b.last, "needs an admin token")
	}
	assert.Empty(t, b.up.called("POST"))
	assert.Empty(t, b.up.called("DELETE"))
}

// A refused command shows the problem's detail on the page it came from.
func TestProblemDetailIsShown(t *testing.T) {
	b := newBrowser(t, "")
	b.get("/tenants/" + tenantA)
	resp := b.post("/tenants/"+tenantA+"/resume", url.Values{"version": {"4"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	b.get(resp.Header.Get("Location"))
	assert.Contains(t, b.last, "the tenant is draining: it takes no more commands but a delete")
	b.get("/tenants/" + tenantA)
	assert.NotContains(t, b.last, "the tenant is draining", "a flash shows once")

	resp = b.get("/tenants/" + tenantB + "/events")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	assert.Contains(t, b.last, "tenant not found")
}

// Deleting without draining needs the tenant's name typed in; draining does not.
func TestPlainDeleteNeedsTypedName(t *testing.T) {
	b := newBrowser(t, "")
	b.get("/tenants/" + tenantA)
	resp := b.post("/tenants/"+tenantA+"/delete", url.Values{"confirm": {"acm"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Empty(t, b.up.called("DELETE"))
	b.get(resp.Header.Get("Location"))
	assert.Contains(t, b.last, "type the tenant&#39;s name exactly")

	resp = b.post("/tenants/"+tenantA+"/delete", url.Values{"confirm": {"acme"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.Equal(t, "/tenants", resp.Header.Get("Location"))
	require.Len(t, b.up.called("DELETE /tenants/"+tenantA), 1)
}

// A dry run keeps the selection and enables Redrive and Purge for exactly it; the
// not-JSON payload is shown as its text.
func TestDeadLetterDryRunThenRedrive(t *testing.T) {
	b := newBrowser(t, "")
	b.get("/tenants/" + tenantA + "/dead-letters")
	assert.Contains(t, b.last, `{&#34;broken&#34;:`, "raw body as text")
	assert.Regexp(t, `id="dl-redrive" disabled`, b.last)
	resp := b.post("/tenants/"+tenantA+"/dead-letters", url.Values{"op": {"dry-run"}, "ids": {"d1"}, "status": {"pending"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	loc := resp.Header.Get("Location")
	assert.Contains(t, loc, "sel=d1")
	b.get(loc)
	assert.Contains(t, b.last, "Dry run: redrive or purge would act on 1 pending dead letter (the 1 selected row).")
	assert.NotRegexp(t, `id="dl-redrive" disabled`, b.last)
	assert.Regexp(t, `value="d1" class="dl-pick" checked`, b.last)
	assert.Equal(t, 1, strings.Count(b.last, "Dry run: redrive or purge"), "shown in the action bar only")
	b.get(loc)
	assert.Regexp(t, `id="dl-redrive" disabled`, b.last, "the dry run counts once")
}
