package auth

import (
	"errors"
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/multitenant/mtm/platform/httpserver"
)

// Realm names the protection space in WWW-Authenticate challenges.
const Realm = "multi-tenant-messaging"

// Problem codes this package answers with.
const (
	CodeUnauthorized   = "unauthorized"     // 401: no usable Authorization header
	CodeInvalidToken   = "invalid_token"    // 401: a bearer token that does not verify
	CodeForbidden      = "forbidden"        // 403: a tenant asking for a management command
	CodeTenantNotFound = "tenant_not_found" // 404: unknown, or someone else's, tenant
)

type localsKey struct{}

// implicitAdmin is every caller when authentication is off.
var implicitAdmin = Principal{Role: RoleAdmin, Subject: "anonymous"}

// Middleware authenticates every request except the public probes and docs, and stores
// the principal for PrincipalFrom and FromContext. With an empty Secret every request
// passes as an implicit admin. Install it with app.Use once, before the routes.
func Middleware(cfg Config) fiber.Handler {
	if !cfg.Enabled() {
		return func(c *fiber.Ctx) error {
			setPrincipal(c, implicitAdmin)
			return c.Next()
		}
	}
	return func(c *fiber.Ctx) error {
		if IsPublicPath(c) {
			return c.Next()
		}
		raw, err := bearerToken(c.Get(fiber.HeaderAuthorization))
		if err != nil {
			return err
		}
		p, err := Verify(cfg, raw)
		if err != nil {
			return invalidToken(err)
		}
		// Metrics carry every tenant's id and profiles every tenant's data in memory:
		// only an admin (or a scraper on the separate METRICS_ADDR listener, which this
		// middleware never sees) may read them.
		if isAdminOnlyPath(c) && !p.IsAdmin() {
			return Forbidden()
		}
		setPrincipal(c, p)
		return c.Next()
	}
}

// MetricsOnly runs authn (Middleware) for /metrics only and lets every other request
// through untouched: for a service that authenticates its own routes some other way
// (the console's session cookie), so its metrics stay as guarded as the other services'.
// It stores no principal for the other routes.
func MetricsOnly(authn fiber.Handler) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if isAdminOnlyPath(c) {
			return authn(c)
		}
		return c.Next()
	}
}

// IsPublicPath reports whether the request is for /healthz, /readyz, /openapi.json or
// /swagger/*: the documents describe the API, not any tenant's data.
// It normalises the path the way Fiber's router does (case and trailing slash, per the
// app's config), so a path is public exactly when it routes to a public handler.
func IsPublicPath(c *fiber.Ctx) bool {
	path := routedPath(c)
	switch path {
	case "/healthz", "/readyz", "/openapi.json", "/swagger":
		return true
	}
	return strings.HasPrefix(path, "/swagger/")
}

// isAdminOnlyPath: /metrics and the profiler (/debug/pprof/*, where mounted).
func isAdminOnlyPath(c *fiber.Ctx) bool {
	path := routedPath(c)
	return path == "/metrics" || path == "/debug/pprof" || strings.HasPrefix(path, "/debug/pprof/")
}

// routedPath is the request path as Fiber's router matches it.
func routedPath(c *fiber.Ctx) string {
	path := c.Path()
	cfg := c.App().Config()
	if !cfg.CaseSensitive {
		path = strings.ToLower(path)
	}
	if !cfg.StrictRouting && len(path) > 1 {
		path = strings.TrimRight(path, "/")
		if path == "" {
			path = "/"
		}
	}
	return path
}

// bearerToken extracts the token of an "Authorization: Bearer <token>" header; the
// error is the 401 problem to answer with.
func bearerToken(header string) (string, error) {
	if header == "" {
		// RFC 6750 3.1: no error code when the request carried no credentials.
		return "", challenge(http.StatusUnauthorized, CodeUnauthorized,
			"this endpoint requires Authorization: Bearer <token>", "", "")
	}
	scheme, token, _ := strings.Cut(strings.TrimSpace(header), " ")
	token = strings.TrimSpace(token)
	if !strings.EqualFold(scheme, "Bearer") || token == "" || strings.ContainsAny(token, " \t") {
		return "", challenge(http.StatusUnauthorized, CodeUnauthorized,
			"the Authorization header must be Bearer <token>", "invalid_request", "expected Bearer <token>")
	}
	return token, nil
}

// invalidToken is the 401 for a token Verify rejected; the detail is this package's own
// reason text, never the library's.
func invalidToken(err error) *httpserver.Problem {
	reason := ErrInvalid
	for _, r := range []error{ErrNoToken, ErrMalformed, ErrAlgorithm, ErrSignature, ErrExpired, ErrMissingExp,
		ErrNotYetValid, ErrFutureIat, ErrLifetime, ErrIssuer, ErrAudience, ErrRole, ErrTenantID} {
		if errors.Is(err, r) {
			reason = r
			break
		}
	}
	return challenge(http.StatusUnauthorized, CodeInvalidToken, reason.Error(), "invalid_token", reason.Error())
}

// challenge builds a problem carrying an RFC 6750 WWW-Authenticate header.
func challenge(status int, code, detail, bearerErr, bearerDesc string) *httpserver.Problem {
	h := `Bearer realm="` + Realm + `"`
	if bearerErr != "" {
		h += `, error="` + bearerErr + `"`
	}
	if bearerDesc != "" {
		h += `, error_description="` + bearerDesc + `"`
	}
	return httpserver.NewProblem(status, code, detail).WithHeader(fiber.HeaderWWWAuthenticate, h)
}

func setPrincipal(c *fiber.Ctx, p Principal) {
	c.Locals(localsKey{}, p)
	c.SetUserContext(NewContext(c.UserContext(), p))
}

// PrincipalFrom returns the request's principal. A request Middleware did not see has
// the zero Principal, which may do nothing (fail closed).
func PrincipalFrom(c *fiber.Ctx) Principal {
	p, _ := c.Locals(localsKey{}).(Principal)
	return p
}

// RequireAdmin guards management commands: anyone but an admin gets 403.
func RequireAdmin() fiber.Handler {
	return func(c *fiber.Ctx) error {
		if !PrincipalFrom(c).IsAdmin() {
			return Forbidden()
		}
		return c.Next()
	}
}

// Forbidden is the 403 for a tenant principal asking for an admin-only action.
func Forbidden() *httpserver.Problem {
	return challenge(http.StatusForbidden, CodeForbidden,
		"this action needs the admin role", "insufficient_scope", "admin role required")
}

// TenantAccess returns nil when the request may touch tenantID, otherwise the same 404
// an unknown tenant gets, so a tenant cannot learn that another tenant exists.
func TenantAccess(c *fiber.Ctx, tenantID string) error {
	if PrincipalFrom(c).CanAccessTenant(tenantID) {
		return nil
	}
	return TenantNotFound()
}

// PathTenantID parses the tenant id of a URL path (/tenants/{id}...). A malformed id
// names no tenant, so it gets TenantNotFound like any other id that names none; a
// malformed query parameter is a bad request instead, which the caller answers.
func PathTenantID(raw string) (uuid.UUID, error) {
	id, err := ParseTenantID(raw)
	if err != nil {
		return uuid.Nil, TenantNotFound()
	}
	return id, nil
}

// TenantNotFound is the 404 for an unknown tenant. Services answer unknown tenants with
// it too, so a foreign tenant's 404 cannot be told apart from a missing one.
func TenantNotFound() *httpserver.Problem {
	return httpserver.NotFound(CodeTenantNotFound, "no tenant with this id")
}
