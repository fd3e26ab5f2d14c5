// Package web serves the console's pages: server-rendered html/template pages plus one
// small script for live refresh and form helpers, all embedded in the binary. Every page
// is built from calls to the command and query services made with the operator's own
// token, so the console can show and do only what that token may.
package web

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/filesystem"

	"github.com/multitenant/mtm/client"
	"github.com/multitenant/mtm/platform/auth"
	"github.com/multitenant/mtm/platform/httpserver"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options configure a Server.
type Options struct {
	// Client calls the services; it carries no token of its own (each request adds the
	// operator's).
	Client *client.Client
	// Auth verifies the pasted tokens exactly as the services do; an empty Secret runs
	// the console open, as an implicit admin.
	Auth auth.Config
	// Key signs CSRF tokens and flash cookies.
	Key []byte
	Log *slog.Logger
}

// Server is the console's pages.
type Server struct {
	client *client.Client
	auth   auth.Config
	key    []byte
	log    *slog.Logger
	pages  map[string]*template.Template
}

// pageNames are the templates that render a whole page (each with layout.html).
var pageNames = []string{"signin", "tenants", "created", "overview", "messages", "deadletters", "events", "error"}

// New parses the templates; an error is a bug in them.
func New(opts Options) (*Server, error) {
	if opts.Client == nil || len(opts.Key) == 0 || opts.Log == nil {
		return nil, errors.New("web.New: Client, Key and Log are required")
	}
	s := &Server{client: opts.Client, auth: opts.Auth, key: opts.Key, log: opts.Log, pages: map[string]*template.Template{}}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("parse template %s: %w", name, err)
		}
		s.pages[name] = t
	}
	return s, nil
}

// Register adds the console's routes to app (after the platform's probes and metrics,
// which keep their own rules).
func (s *Server) Register(app *fiber.App) {
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		// The embed pattern above guarantees the directory.
		panic(err)
	}
	app.Use(securityHeaders)
	app.Use("/static", filesystem.New(filesystem.Config{Root: http.FS(static)}))
	app.Get("/signin", s.signinPage)
	app.Post("/signin", s.checkCSRF, s.signin)
	app.Post("/signout", s.checkCSRF, s.signout)

	app.Get("/", s.authenticate, func(c *fiber.Ctx) error { return c.Redirect("/tenants", http.StatusSeeOther) })
	app.Get("/tenants", s.authenticate, s.tenants)
	app.Post("/tenants", s.authenticate, s.checkCSRF, s.requireAdmin, s.createTenant)
	app.Get("/tenants/:id", s.authenticate, s.overview)
	app.Get("/tenants/:id/messages", s.authenticate, s.messages)
	app.Get("/tenants/:id/dead-letters", s.authenticate, s.deadLetters)
	app.Get("/tenants/:id/events", s.authenticate, s.events)
	app.Post("/tenants/:id/resize", s.authenticate, s.checkCSRF, s.requireAdmin, s.resize)
	app.Post("/tenants/:id/pause", s.authenticate, s.checkCSRF, s.requireAdmin, s.pause)
	app.Post("/tenants/:id/resume", s.authenticate, s.checkCSRF, s.requireAdmin, s.resume)
	app.Post("/tenants/:id/delete", s.authenticate, s.checkCSRF, s.requireAdmin, s.deleteTenant)
	app.Post("/tenants/:id/dead-letters", s.authenticate, s.checkCSRF, s.requireAdmin, s.deadLetterAction)
	// Anything else is a console 404 page rather than the APIs' problem+json.
	app.Use(func(c *fiber.Ctx) error {
		return s.fail(c, http.StatusNotFound, "Not found", "There is no such page.")
	})
}

// view is what every page template gets.
type view struct {
	Title  string
	Nav    string // tenants, signin
	AuthOn bool
	Who    auth.Principal
	CSRF   string
	Flash  *flash
	Data   any
}

// Admin reports whether the operator may use the admin-only actions (templates hide them
// otherwise).
func (v view) Admin() bool { return v.Who.IsAdmin() }

// render writes page name (or only its block named fragment, for live refresh).
func (s *Server) render(c *fiber.Ctx, status int, name, fragment string, v view) error {
	t, ok := s.pages[name]
	if !ok {
		return fmt.Errorf("no page %q", name)
	}
	v.AuthOn = s.auth.Enabled()
	if v.Who.Role == "" {
		v.Who = principal(c)
	}
	if v.CSRF == "" {
		v.CSRF = s.csrfToken(c)
	}
	if fragment == "" && v.Flash == nil {
		v.Flash = s.takeFlash(c)
	}
	exec := "layout"
	if fragment != "" {
		exec = fragment
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, exec, v); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Status(status).Send(buf.Bytes())
}

// fail renders the error page.
func (s *Server) fail(c *fiber.Ctx, status int, title, detail string) error {
	if c.Get(fragmentHeader) != "" {
		return c.Status(status).SendString(detail)
	}
	return s.render(c, status, "error", "", view{Title: title, Data: errorData{Status: status, Title: title, Detail: detail}})
}

type errorData struct {
	Status        int
	Title, Detail string
}

// upstreamFail renders an API error as a page: the problem's own status and detail, or
// 502 when the service did not answer at all.
func (s *Server) upstreamFail(c *fiber.Ctx, err error) error {
	status, detail := problemOf(err)
	if status == http.StatusBadGateway {
		s.log.Warn("upstream call failed", "err", err, "request_id", httpserver.RequestID(c))
	}
	return s.fail(c, status, http.StatusText(status), detail)
}

// problemOf is the status and operator-facing text of an API error: the problem+json
// detail (with its field errors), or for a transport error 502 and a short sentence.
func problemOf(err error) (int, string) {
	var p *client.Problem
	if errors.As(err, &p) {
		return p.Status, p.Error()
	}
	return http.StatusBadGateway, "The command or query service did not answer: " + err.Error()
}

// api is the client for this request: the operator's token, and the console request id
// as correlation id, which the command service records on the events a call causes.
func (s *Server) api(c *fiber.Ctx) *client.Client {
	tok, _ := c.Locals(localToken).(string)
	return s.client.WithToken(tok).WithCorrelationID("console-" + httpserver.RequestID(c))
}

// isFragment reports whether the request asks for one block of a page (live refresh).
func isFragment(c *fiber.Ctx, name string) bool {
	return c.Query("fragment") == name
}

// tenantID is the :id path parameter, copied (Fiber reuses its buffer after the handler).
func tenantID(c *fiber.Ctx) string { return strings.Clone(c.Params("id")) }
