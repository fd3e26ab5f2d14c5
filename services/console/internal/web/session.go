package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/multitenant/mtm/platform/auth"
)

// Cookies. The session holds the operator's JWT as pasted; the binding cookie is a
// random value every CSRF token is tied to (it exists before sign-in, so the sign-in
// form is protected too, and also when authentication is off).
const (
	sessionCookie = "mtm_session"
	bindingCookie = "mtm_csrf"
	flashCookie   = "mtm_flash"
	csrfField     = "_csrf"
	csrfHeader    = "X-CSRF-Token"
	// fragmentHeader marks the live-refresh requests of console.js: they get a 401
	// instead of a redirect to the sign-in page when the session is gone.
	fragmentHeader = "X-Console-Fragment"
)

// Locals keys.
const (
	localPrincipal = "console.principal"
	localToken     = "console.token"
	localBinding   = "console.binding"
	// localFlashTaken marks a request whose flash was read (and cleared) already.
	localFlashTaken = "console.flash"
)

// implicitAdmin is the operator when authentication is off, as on the other services.
var implicitAdmin = auth.Principal{Role: auth.RoleAdmin, Subject: "anonymous"}

// setCookie writes an HttpOnly, SameSite=Strict cookie for the whole console; Secure when
// the request came over TLS, so a cookie set over https never travels over http.
func setCookie(c *fiber.Ctx, name, value string, maxAge int) {
	c.Cookie(&fiber.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		MaxAge:   maxAge,
		HTTPOnly: true,
		Secure:   c.Secure(),
		SameSite: fiber.CookieSameSiteStrictMode,
	})
}

func clearCookie(c *fiber.Ctx, name string) { setCookie(c, name, "", -1) }

// randomValue is 32 random bytes, base64url.
func randomValue() string {
	b := make([]byte, 32)
	// crypto/rand.Read never fails on supported platforms (it panics instead).
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// mac is HMAC-SHA256 of the parts under the console key, with a purpose label so a
// CSRF token can never pass for a flash signature or the other way round.
func (s *Server) mac(purpose string, parts ...string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(purpose))
	for _, p := range parts {
		m.Write([]byte{0})
		m.Write([]byte(p))
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// binding returns the request's CSRF binding value, creating the cookie on first use.
func (s *Server) binding(c *fiber.Ctx) string {
	if v, ok := c.Locals(localBinding).(string); ok {
		return v
	}
	v := strings.Clone(c.Cookies(bindingCookie))
	if v == "" {
		v = randomValue()
		setCookie(c, bindingCookie, v, 0)
	}
	c.Locals(localBinding, v)
	return v
}

// csrfToken is the synchronizer token of this browser and session: HMAC of the binding
// cookie and the session cookie, so signing in or out invalidates the forms of before.
func (s *Server) csrfToken(c *fiber.Ctx) string {
	return s.mac("csrf", s.binding(c), c.Cookies(sessionCookie))
}

// checkCSRF refuses a state-changing request that does not come from a console page:
// it must be same-origin by its Origin (or, without one, Referer) header and carry the
// synchronizer token of this browser's cookies.
func (s *Server) checkCSRF(c *fiber.Ctx) error {
	if !sameOrigin(c) {
		return s.fail(c, http.StatusForbidden, "Request refused", "This request did not come from a page of this console (its Origin or Referer is another site, or missing).")
	}
	got := c.FormValue(csrfField)
	if got == "" {
		got = c.Get(csrfHeader)
	}
	binding := c.Cookies(bindingCookie)
	want := s.mac("csrf", binding, c.Cookies(sessionCookie))
	if binding == "" || got == "" || !hmac.Equal([]byte(got), []byte(want)) {
		return s.fail(c, http.StatusForbidden, "Request refused", "The form was stale or did not come from this console (missing or wrong CSRF token). Reload the page and try again.")
	}
	return c.Next()
}

// sameOrigin compares the Origin header, else the Referer, with the console's own
// origin. A request carrying neither is refused: every browser that submits a form
// sends one of them (the pages set Referrer-Policy: same-origin).
func sameOrigin(c *fiber.Ctx) bool {
	self := c.BaseURL()
	if o := c.Get(fiber.HeaderOrigin); o != "" {
		return o == self
	}
	ref := c.Get(fiber.HeaderReferer)
	if ref == "" {
		return false
	}
	u, err := url.Parse(ref)
	if err != nil {
		return false
	}
	return u.Scheme+"://"+u.Host == self
}

// authenticate makes the request's principal and token available: the implicit admin
// when authentication is off, else the verified token of the session cookie. Without a
// valid one, pages redirect to the sign-in page and live-refresh requests get 401.
func (s *Server) authenticate(c *fiber.Ctx) error {
	if !s.auth.Enabled() {
		c.Locals(localPrincipal, implicitAdmin)
		c.Locals(localToken, "")
		return c.Next()
	}
	raw := strings.Clone(c.Cookies(sessionCookie))
	p, err := auth.Verify(s.auth, raw)
	if err != nil {
		if raw != "" {
			clearCookie(c, sessionCookie)
		}
		if c.Get(fragmentHeader) != "" {
			return c.Status(http.StatusUnauthorized).SendString("signed out")
		}
		q := url.Values{}
		if c.Method() == http.MethodGet {
			// The path and query only: an absolute-form request line must not make
			// next point anywhere but here.
			q.Set("next", string(c.Request().URI().RequestURI()))
		}
		if raw != "" {
			q.Set("ended", "1")
		}
		target := "/signin"
		if len(q) > 0 {
			target += "?" + q.Encode()
		}
		return c.Redirect(target, http.StatusSeeOther)
	}
	c.Locals(localPrincipal, p)
	c.Locals(localToken, raw)
	return c.Next()
}

func principal(c *fiber.Ctx) auth.Principal {
	p, _ := c.Locals(localPrincipal).(auth.Principal)
	return p
}

// requireAdmin refuses the admin-only actions to a tenant token with a 403 page. The
// pages hide them already, and the APIs refuse them too: this is the console's own check.
func (s *Server) requireAdmin(c *fiber.Ctx) error {
	if !principal(c).IsAdmin() {
		return s.fail(c, http.StatusForbidden, "Forbidden", "This action needs an admin token; you are signed in with a tenant token.")
	}
	return c.Next()
}

// localPath accepts a redirect target only when it stays on this console: a path, not
// //host or /\host (which browsers treat as another host).
func localPath(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return ""
	}
	return next
}

// flash is a one-time notice shown by the next page, carried in a signed cookie so
// nobody can craft one through a link.
type flash struct {
	Kind string `json:"k"` // ok, error, dryrun
	Text string `json:"t"`
	// Sel identifies the dead-letter selection a dry run counted (kind dryrun).
	Sel string `json:"s,omitempty"`
}

func (s *Server) setFlash(c *fiber.Ctx, f flash) {
	raw, err := json.Marshal(f)
	if err != nil {
		return
	}
	v := base64.RawURLEncoding.EncodeToString(raw)
	setCookie(c, flashCookie, v+"."+s.mac("flash", v), 0)
}

// takeFlash reads and clears the flash cookie; a missing or forged one is no flash.
func (s *Server) takeFlash(c *fiber.Ctx) *flash {
	// The request still carries the cookie after it was cleared: once per request.
	if c.Locals(localFlashTaken) != nil {
		return nil
	}
	c.Locals(localFlashTaken, true)
	raw := c.Cookies(flashCookie)
	if raw == "" {
		return nil
	}
	clearCookie(c, flashCookie)
	v, sig, ok := strings.Cut(raw, ".")
	if !ok || !hmac.Equal([]byte(sig), []byte(s.mac("flash", v))) {
		return nil
	}
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return nil
	}
	var f flash
	if json.Unmarshal(b, &f) != nil {
		return nil
	}
	return &f
}

// contentSecurityPolicy allows this console's own files and nothing else: no inline
// script or style, no framing, forms post only here.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// securityHeaders complete the platform's (nosniff, no-store) for HTML pages.
func securityHeaders(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentSecurityPolicy, contentSecurityPolicy)
	c.Set(fiber.HeaderXFrameOptions, "DENY")
	c.Set(fiber.HeaderReferrerPolicy, "same-origin")
	c.Set("Cross-Origin-Opener-Policy", "same-origin")
	return c.Next()
}
