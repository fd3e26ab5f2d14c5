package auth_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/auth"
	"github.com/multitenant/mtm/platform/httpserver"
)

const (
	testSecret   = "test-secret-with-enough-entropy-0123456789"
	testIssuer   = "mtm-test"
	testAudience = "mtm-api"
)

// testApp is a service-shaped app on the real platform server (so problems render
// through its error handler): management routes behind RequireAdmin, tenant-scoped
// routes behind TenantAccess, and a list filtered by TenantScope. Only tenants a and b
// exist.
type testApp struct {
	app  *fiber.App
	a, b string
}

func newTestApp(t *testing.T, cfg auth.Config) *testApp {
	t.Helper()
	ta := &testApp{a: uuid.NewString(), b: uuid.NewString()}
	srv := httpserver.New(httpserver.Options{
		Service:  "authtest",
		Addr:     ":0",
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registry: prometheus.NewRegistry(),
		Auth:     auth.Middleware(cfg),
	})
	app := srv.App
	// Registered after the middleware on purpose: it must be skipped by path, not by order.
	app.Get("/swagger/*", func(c *fiber.Ctx) error { return c.SendString("docs") })

	known := func(id uuid.UUID) bool { return id.String() == ta.a || id.String() == ta.b }
	// who reports the principal as the handler sees it through UserContext, so the test
	// proves the context plumbing too.
	who := func(c *fiber.Ctx) fiber.Map {
		p, ok := auth.FromContext(c.UserContext())
		require.True(t, ok, "principal missing from user context")
		return fiber.Map{"role": p.Role, "principal_tenant": p.TenantID}
	}
	// tenantRoute mirrors a service: access first, then the id parsed as both services
	// parse it (a malformed one is the unknown tenant's 404).
	tenantRoute := func(c *fiber.Ctx, raw string, status int) error {
		if err := auth.TenantAccess(c, raw); err != nil {
			return err
		}
		id, err := auth.PathTenantID(raw)
		if err != nil {
			return err
		}
		if !known(id) {
			return auth.TenantNotFound()
		}
		body := who(c)
		body["tenant_ids"] = []string{id.String()}
		return c.Status(status).JSON(body)
	}
	mgmt := func(status int) fiber.Handler {
		return func(c *fiber.Ctx) error { return c.Status(status).JSON(who(c)) }
	}

	app.Post("/tenants", auth.RequireAdmin(), mgmt(http.StatusCreated))
	app.Put("/tenants/:id/config/concurrency", auth.RequireAdmin(), mgmt(http.StatusOK))
	app.Delete("/tenants/:id", auth.RequireAdmin(), mgmt(http.StatusAccepted))
	app.Get("/tenants", func(c *fiber.Ctx) error {
		rows := []string{ta.a, ta.b}
		if id, scoped := auth.PrincipalFrom(c).TenantScope(); scoped {
			var own []string
			for _, r := range rows {
				if r == id {
					own = append(own, r)
				}
			}
			rows = own
		}
		body := who(c)
		body["tenant_ids"] = rows
		return c.JSON(body)
	})
	app.Get("/tenants/:id", func(c *fiber.Ctx) error { return tenantRoute(c, c.Params("id"), http.StatusOK) })
	app.Get("/tenants/:id/messages", func(c *fiber.Ctx) error { return tenantRoute(c, c.Params("id"), http.StatusOK) })
	app.Post("/tenants/:id/messages", func(c *fiber.Ctx) error { return tenantRoute(c, c.Params("id"), http.StatusAccepted) })
	app.Get("/messages", func(c *fiber.Ctx) error {
		id := c.Query("tenant_id")
		if _, err := auth.ParseTenantID(id); err != nil {
			return httpserver.BadRequest("invalid_tenant_id", "tenant_id must be a UUID")
		}
		return tenantRoute(c, id, http.StatusOK)
	})
	ta.app = app
	return ta
}

type response struct {
	status  int
	wwwAuth string
	ctype   string
	body    map[string]any
	raw     string
}

func (ta *testApp) do(t *testing.T, method, path, authHeader string) response {
	t.Helper()
	var body io.Reader
	if method == http.MethodPost || method == http.MethodPut {
		body = strings.NewReader(`{"name":"x","workers":1}`)
	}
	req := httptest.NewRequest(method, path, body)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if authHeader != "" {
		req.Header.Set("Authorization", authHeader)
	}
	resp, err := ta.app.Test(req, 5000)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	r := response{status: resp.StatusCode, wwwAuth: resp.Header.Get("WWW-Authenticate"), ctype: resp.Header.Get("Content-Type"), raw: string(raw)}
	if strings.Contains(r.ctype, "json") {
		require.NoError(t, json.Unmarshal(raw, &r.body), "body %s", raw)
	}
	return r
}

func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	require.NoError(t, err)
	return s
}

// claims returns a valid claim set for role/tenant under the test config; mutate drops
// or overrides entries (a nil value deletes the claim).
func claims(role, tenant string, mutate map[string]any) jwt.MapClaims {
	c := jwt.MapClaims{
		"role": role,
		"iss":  testIssuer,
		"aud":  testAudience,
		"iat":  time.Now().Unix(),
		"exp":  time.Now().Add(time.Hour).Unix(),
	}
	if tenant != "" {
		c["tenant_id"] = tenant
	}
	for k, v := range mutate {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// who a token case authenticates as.
type outcome int

const (
	rejected outcome = iota // 401
	asAdmin
	asTenantA
	asTenantB
)

type tokenCase struct {
	name   string
	header string
	want   outcome
	// for rejected cases: the problem code and the RFC 6750 error in WWW-Authenticate
	// ("" means the challenge carries none).
	code, bearerErr, detail string
}

func tokenCases(t *testing.T, ta *testApp) []tokenCase {
	hs := func(c jwt.MapClaims) string {
		return "Bearer " + sign(t, jwt.SigningMethodHS256, []byte(testSecret), c)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	none := "Bearer " + sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims("admin", "", nil))
	// alg "none" with a signature segment that is not empty, and an alg the library does not know.
	b64 := base64.RawURLEncoding.EncodeToString
	payload := b64(mustJSON(t, claims("admin", "", nil)))
	noneWithSig := "Bearer " + b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + payload + "." + b64([]byte("sig"))
	unknownAlg := "Bearer " + b64([]byte(`{"alg":"XX999","typ":"JWT"}`)) + "." + payload + "." + b64([]byte("sig"))
	// An HS256 header on an HS512 signature: the method is right, the signature is not.
	hs512 := sign(t, jwt.SigningMethodHS512, []byte(testSecret), claims("admin", "", nil))
	parts := strings.Split(hs512, ".")
	hs256HeaderHS512Sig := "Bearer " + b64([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + parts[1] + "." + parts[2]

	bad := func(name, header, code, bearerErr, detail string) tokenCase {
		return tokenCase{name: name, header: header, want: rejected, code: code, bearerErr: bearerErr, detail: detail}
	}
	inv := func(name, header string, reason error) tokenCase {
		return bad(name, header, auth.CodeInvalidToken, "invalid_token", reason.Error())
	}
	return []tokenCase{
		bad("no header", "", auth.CodeUnauthorized, "", ""),
		bad("basic scheme", "Basic YWRtaW46YWRtaW4=", auth.CodeUnauthorized, "invalid_request", ""),
		bad("bearer without token", "Bearer", auth.CodeUnauthorized, "invalid_request", ""),
		bad("bearer two tokens", "Bearer a b", auth.CodeUnauthorized, "invalid_request", ""),
		inv("not a jwt", "Bearer not-a-jwt", auth.ErrMalformed),
		inv("garbage segments", "Bearer a.b.c", auth.ErrMalformed),
		inv("expired", hs(claims("admin", "", map[string]any{"exp": time.Now().Add(-time.Minute).Unix()})), auth.ErrExpired),
		inv("no exp", hs(claims("admin", "", map[string]any{"exp": nil})), auth.ErrMissingExp),
		inv("exp not a number", hs(claims("admin", "", map[string]any{"exp": "tomorrow"})), auth.ErrMalformed),
		inv("not yet valid", hs(claims("admin", "", map[string]any{"nbf": time.Now().Add(time.Hour).Unix()})), auth.ErrNotYetValid),
		inv("issued in the future", hs(claims("admin", "", map[string]any{"iat": time.Now().Add(10 * time.Minute).Unix()})), auth.ErrFutureIat),
		inv("valid for 100 years", hs(claims("admin", "", map[string]any{"exp": time.Now().AddDate(100, 0, 0).Unix()})), auth.ErrLifetime),
		inv("valid for 25 hours", hs(claims("tenant", ta.a, map[string]any{"exp": time.Now().Add(25 * time.Hour).Unix()})), auth.ErrLifetime),
		{name: "iat within clock skew", header: hs(claims("admin", "", map[string]any{"iat": time.Now().Add(10 * time.Second).Unix()})), want: asAdmin},
		{name: "valid for 23 hours", header: hs(claims("admin", "", map[string]any{"exp": time.Now().Add(23 * time.Hour).Unix()})), want: asAdmin},
		inv("wrong signature", "Bearer "+sign(t, jwt.SigningMethodHS256, []byte("another-secret"), claims("admin", "", nil)), auth.ErrSignature),
		inv("hs256 header on hs512 signature", hs256HeaderHS512Sig, auth.ErrSignature),
		inv("alg none", none, auth.ErrAlgorithm),
		inv("alg none with signature", noneWithSig, auth.ErrAlgorithm),
		inv("unknown alg", unknownAlg, auth.ErrAlgorithm),
		inv("RS256", "Bearer "+sign(t, jwt.SigningMethodRS256, rsaKey, claims("admin", "", nil)), auth.ErrAlgorithm),
		inv("HS512 same secret", "Bearer "+hs512, auth.ErrAlgorithm),
		inv("HS384 same secret", "Bearer "+sign(t, jwt.SigningMethodHS384, []byte(testSecret), claims("admin", "", nil)), auth.ErrAlgorithm),
		inv("wrong issuer", hs(claims("admin", "", map[string]any{"iss": "someone-else"})), auth.ErrIssuer),
		inv("missing issuer", hs(claims("admin", "", map[string]any{"iss": nil})), auth.ErrIssuer),
		inv("wrong audience", hs(claims("admin", "", map[string]any{"aud": "other-api"})), auth.ErrAudience),
		inv("missing audience", hs(claims("admin", "", map[string]any{"aud": nil})), auth.ErrAudience),
		inv("unknown role", hs(claims("root", "", nil)), auth.ErrRole),
		inv("no role", hs(claims("admin", "", map[string]any{"role": nil})), auth.ErrRole),
		inv("tenant without tenant_id", hs(claims("tenant", "", nil)), auth.ErrTenantID),
		inv("tenant with non-uuid tenant_id", hs(claims("tenant", "acme", nil)), auth.ErrTenantID),
		inv("tenant with the nil UUID", hs(claims("tenant", uuid.Nil.String(), nil)), auth.ErrTenantID),
		{name: "admin", header: hs(claims("admin", "", nil)), want: asAdmin},
		{name: "admin with audience list", header: hs(claims("admin", "", map[string]any{"aud": []string{"x", testAudience}})), want: asAdmin},
		{name: "lower-case bearer scheme", header: strings.Replace(hs(claims("admin", "", nil)), "Bearer", "bearer", 1), want: asAdmin},
		{name: "tenant A", header: hs(claims("tenant", ta.a, nil)), want: asTenantA},
		{name: "tenant A upper-case id", header: hs(claims("tenant", strings.ToUpper(ta.a), nil)), want: asTenantA},
		{name: "tenant B", header: hs(claims("tenant", ta.b, nil)), want: asTenantB},
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

type route struct {
	name, method, path string
	public             bool
	// status for an admin, for the tenant the path names (own), and for the other (foreign)
	admin, own, foreign int
	// management: tenants get 403 whatever tenant the path names
	management bool
	// list: a tenant sees exactly its own row
	list bool
	// text: the answer is not the JSON echo of the principal
	text bool
}

func routes(ta *testApp) []route {
	a := ta.a
	return []route{
		{name: "healthz", method: "GET", path: "/healthz", public: true},
		{name: "healthz case and slash", method: "GET", path: "/HEALTHZ/", public: true},
		{name: "readyz", method: "GET", path: "/readyz", public: true},
		{name: "metrics", method: "GET", path: "/metrics", admin: 200, management: true, text: true},
		{name: "swagger", method: "GET", path: "/swagger/index.html", public: true},
		{name: "create tenant", method: "POST", path: "/tenants", admin: 201, management: true},
		{name: "resize own tenant", method: "PUT", path: "/tenants/" + a + "/config/concurrency", admin: 200, management: true},
		{name: "delete own tenant", method: "DELETE", path: "/tenants/" + a, admin: 202, management: true},
		{name: "get tenant", method: "GET", path: "/tenants/" + a, admin: 200, own: 200, foreign: 404},
		{name: "get tenant upper-case id", method: "GET", path: "/tenants/" + strings.ToUpper(a), admin: 200, own: 200, foreign: 404},
		{name: "publish", method: "POST", path: "/tenants/" + a + "/messages", admin: 202, own: 202, foreign: 404},
		{name: "tenant messages", method: "GET", path: "/tenants/" + a + "/messages", admin: 200, own: 200, foreign: 404},
		{name: "messages by query", method: "GET", path: "/messages?tenant_id=" + a, admin: 200, own: 200, foreign: 404},
		{name: "list tenants", method: "GET", path: "/tenants", admin: 200, own: 200, foreign: 200, list: true},
		{name: "unknown tenant", method: "GET", path: "/tenants/" + uuid.NewString(), admin: 404, own: 404, foreign: 404},
		// uuid.Parse would take 32 bare hex digits; the services do not.
		{name: "malformed path id", method: "GET", path: "/tenants/" + strings.ReplaceAll(a, "-", ""), admin: 404, own: 404, foreign: 404},
		{name: "malformed tenant_id", method: "GET", path: "/messages?tenant_id=" + strings.ReplaceAll(a, "-", ""), admin: 400, own: 400, foreign: 400},
		{name: "nil UUID path id", method: "GET", path: "/tenants/" + uuid.Nil.String(), admin: 404, own: 404, foreign: 404},
		{name: "nil UUID tenant_id", method: "GET", path: "/messages?tenant_id=" + uuid.Nil.String(), admin: 400, own: 400, foreign: 400},
		{name: "unknown route", method: "GET", path: "/nope", admin: 404, own: 404, foreign: 404},
	}
}

// TestMatrix runs every token case against every route of a service-shaped app with
// authentication on, issuer and audience configured.
func TestMatrix(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, auth.Config{Secret: testSecret, Issuer: testIssuer, Audience: testAudience, MaxTTL: 24 * time.Hour})
	for _, tc := range tokenCases(t, ta) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, r := range routes(ta) {
				res := ta.do(t, r.method, r.path, tc.header)
				cell := tc.name + " × " + r.name
				switch {
				case r.public:
					assert.Equal(t, http.StatusOK, res.status, "%s: %s", cell, res.raw)
				case tc.want == rejected:
					assertUnauthorized(t, res, tc, cell)
				default:
					assertAuthorized(t, ta, res, tc.want, r, cell)
				}
			}
		})
	}
}

func assertUnauthorized(t *testing.T, res response, tc tokenCase, cell string) {
	t.Helper()
	assert.Equal(t, http.StatusUnauthorized, res.status, cell)
	assert.Equal(t, httpserver.ProblemContentType, res.ctype, cell)
	assert.Equal(t, float64(http.StatusUnauthorized), res.body["status"], cell)
	assert.Equal(t, tc.code, res.body["code"], cell)
	if tc.detail != "" {
		assert.Equal(t, tc.detail, res.body["detail"], cell)
	}
	assert.NotContains(t, res.raw, "tenant_ids", cell)
	require.True(t, strings.HasPrefix(res.wwwAuth, `Bearer realm="`+auth.Realm+`"`), "%s: WWW-Authenticate %q", cell, res.wwwAuth)
	if tc.bearerErr == "" {
		assert.NotContains(t, res.wwwAuth, "error=", cell)
	} else {
		assert.Contains(t, res.wwwAuth, `error="`+tc.bearerErr+`"`, cell)
	}
}

func assertAuthorized(t *testing.T, ta *testApp, res response, who outcome, r route, cell string) {
	t.Helper()
	own := ""
	switch who {
	case asTenantA:
		own = ta.a
	case asTenantB:
		own = ta.b
	}
	want := r.admin
	switch {
	case who == asAdmin:
	case r.management:
		want = http.StatusForbidden
	case who == asTenantA:
		want = r.own
	default:
		want = r.foreign
	}
	require.Equal(t, want, res.status, "%s: body %s", cell, res.raw)

	switch {
	case want == http.StatusForbidden:
		assert.Equal(t, auth.CodeForbidden, res.body["code"], cell)
		assert.Equal(t, httpserver.ProblemContentType, res.ctype, cell)
		assert.Contains(t, res.wwwAuth, `error="insufficient_scope"`, cell)
	case want == http.StatusNotFound && r.name != "unknown route":
		// A foreign tenant gets exactly the unknown tenant's problem.
		assert.Equal(t, auth.CodeTenantNotFound, res.body["code"], cell)
		assert.Equal(t, "no tenant with this id", res.body["detail"], cell)
		assert.Equal(t, httpserver.ProblemContentType, res.ctype, cell)
		assert.Empty(t, res.wwwAuth, cell)
	case want < 300 && r.text:
		assert.Empty(t, res.wwwAuth, cell)
	case want < 300:
		role := "admin"
		if who != asAdmin {
			role = "tenant"
		}
		assert.Equal(t, role, res.body["role"], cell)
		assert.Equal(t, own, res.body["principal_tenant"], cell)
		assert.Empty(t, res.wwwAuth, cell)
	}
	// No foreign row, ever: a tenant only sees its own id; an admin's list has both.
	if ids, ok := res.body["tenant_ids"].([]any); ok {
		if who == asAdmin {
			if r.list {
				assert.ElementsMatch(t, []any{ta.a, ta.b}, ids, cell)
			}
		} else {
			require.Len(t, ids, 1, cell)
			assert.Equal(t, own, ids[0], cell)
		}
	}
}

// TestForeignTenantIndistinguishable: the 404 a tenant gets for someone else's tenant is
// the 404 anyone gets for a tenant that does not exist.
func TestForeignTenantIndistinguishable(t *testing.T) {
	t.Parallel()
	cfg := auth.Config{Secret: testSecret}
	ta := newTestApp(t, cfg)
	tokA, err := auth.Mint(cfg, auth.RoleTenant, ta.a, time.Minute)
	require.NoError(t, err)
	tokAdmin, err := auth.Mint(cfg, auth.RoleAdmin, "", time.Minute)
	require.NoError(t, err)

	foreign := ta.do(t, "GET", "/tenants/"+ta.b, "Bearer "+tokA)
	// Same routes in a second app where tenant ta.b does not exist; an admin asks there.
	unknown := newTestApp(t, cfg).do(t, "GET", "/tenants/"+ta.b, "Bearer "+tokAdmin)
	require.Equal(t, http.StatusNotFound, foreign.status)
	assert.Equal(t, unknown.status, foreign.status)
	assert.Equal(t, unknown.ctype, foreign.ctype)
	assert.JSONEq(t, unknown.raw, foreign.raw)

	// And the admin still sees tenant b in the original app.
	assert.Equal(t, http.StatusOK, ta.do(t, "GET", "/tenants/"+ta.b, "Bearer "+tokAdmin).status)
}

// TestAuthOff: with no secret every request passes as admin, whatever it carries.
func TestAuthOff(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, auth.Config{})
	for _, header := range []string{"", "Bearer garbage", "Basic x"} {
		for _, r := range routes(ta) {
			res := ta.do(t, r.method, r.path, header)
			want := r.admin
			if r.public {
				want = http.StatusOK
			}
			assert.Equal(t, want, res.status, "%q × %s", header, r.name)
			assert.Empty(t, res.wwwAuth)
			if want < 300 && !r.public && !r.text {
				assert.Equal(t, "admin", res.body["role"], r.name)
			}
		}
	}
}

// TestNoIssuerAudienceConfigured: iss and aud are only checked when configured.
func TestNoIssuerAudienceConfigured(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, auth.Config{Secret: testSecret})
	tok := sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims("tenant", ta.a, map[string]any{"iss": nil, "aud": nil}))
	assert.Equal(t, http.StatusOK, ta.do(t, "GET", "/tenants/"+ta.a, "Bearer "+tok).status)
	tok = sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims("tenant", ta.a, map[string]any{"iss": "anyone", "aud": "anything"}))
	assert.Equal(t, http.StatusOK, ta.do(t, "GET", "/tenants/"+ta.a, "Bearer "+tok).status)
	// exp is still required.
	tok = sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims("tenant", ta.a, map[string]any{"exp": nil}))
	assert.Equal(t, http.StatusUnauthorized, ta.do(t, "GET", "/tenants/"+ta.a, "Bearer "+tok).status)
}

// TestWithoutMiddleware: a route that forgot the middleware fails closed.
func TestWithoutMiddleware(t *testing.T) {
	t.Parallel()
	app := httpserver.New(httpserver.Options{Service: "authtest", Addr: ":0", Log: slog.New(slog.NewTextHandler(io.Discard, nil))}).App
	app.Post("/tenants", auth.RequireAdmin(), func(c *fiber.Ctx) error { return c.SendStatus(http.StatusCreated) })
	app.Get("/tenants/:id", func(c *fiber.Ctx) error {
		if err := auth.TenantAccess(c, c.Params("id")); err != nil {
			return err
		}
		return c.SendStatus(http.StatusOK)
	})
	ta := &testApp{app: app}
	assert.Equal(t, http.StatusForbidden, ta.do(t, "POST", "/tenants", "").status)
	res := ta.do(t, "GET", "/tenants/"+uuid.NewString(), "")
	assert.Equal(t, http.StatusNotFound, res.status)
	assert.Equal(t, auth.CodeTenantNotFound, res.body["code"])
}

// MetricsOnly guards /metrics exactly as Middleware does and nothing else: a service
// with its own sign-in still keeps its metrics behind an admin token.
func TestMetricsOnlyGuardsOnlyMetrics(t *testing.T) {
	cfg := auth.Config{Secret: testSecret}
	srv := httpserver.New(httpserver.Options{
		Service:  "authtest",
		Addr:     ":0",
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registry: prometheus.NewRegistry(),
		Auth:     auth.MetricsOnly(auth.Middleware(cfg)),
	})
	srv.App.Get("/page", func(c *fiber.Ctx) error { return c.SendString("page") })
	get := func(path, token string) int {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := srv.App.Test(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	admin, err := auth.Mint(cfg, auth.RoleAdmin, "", time.Minute)
	require.NoError(t, err)
	tenant, err := auth.Mint(cfg, auth.RoleTenant, uuid.NewString(), time.Minute)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, get("/page", ""), "other routes are the service's own business")
	assert.Equal(t, http.StatusUnauthorized, get("/metrics", ""))
	assert.Equal(t, http.StatusUnauthorized, get("/METRICS/", ""), "matched as the router matches")
	assert.Equal(t, http.StatusForbidden, get("/metrics", tenant))
	assert.Equal(t, http.StatusOK, get("/metrics", admin))
	// The profiler shows every tenant's data in memory: admins only, like /metrics.
	assert.Equal(t, http.StatusUnauthorized, get("/debug/pprof/heap", ""))
	assert.Equal(t, http.StatusForbidden, get("/debug/pprof/heap", tenant))
	assert.Equal(t, http.StatusForbidden, get("/Debug/PProf/", tenant), "matched as the router matches")
	assert.Equal(t, http.StatusNotFound, get("/debug/pprof/heap", admin), "not mounted here: the admin passes")
}
