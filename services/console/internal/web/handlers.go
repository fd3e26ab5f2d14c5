package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/multitenant/mtm/client"
	"github.com/multitenant/mtm/platform/auth"
)

// Page sizes: tenants fit one screen of an operator's fleet; messages and events are
// long rows.
const (
	tenantsPageSize     = 100
	messagesPageSize    = 20
	eventsPageSize      = 50
	deadLetterPageSize  = 50
	redriveByFilterMax  = 1000
	maxTokenFieldLength = 8 << 10
)

// deadLetterReasons are the reasons the archive records (README "Operating").
var deadLetterReasons = []string{"invalid_json", "too_large", "rejected_by_database", "delivery_limit", "expired", "maxlen", "rejected"}

// deadLetterStatuses are the archive's statuses; "" shows all.
var deadLetterStatuses = []string{"pending", "redriven", "purged"}

// --- sign-in ---

type signinData struct {
	Next  string
	Ended bool
	Error string
}

func (s *Server) signinPage(c *fiber.Ctx) error {
	if !s.auth.Enabled() {
		return c.Redirect("/tenants", http.StatusSeeOther)
	}
	return s.render(c, http.StatusOK, "signin", "", view{Title: "Sign in", Nav: "signin", Who: auth.Principal{},
		Data: signinData{Next: localPath(c.Query("next")), Ended: c.Query("ended") != ""}})
}

// signin verifies the pasted token with the services' own rules and keeps it in the
// session cookie; the CSRF binding is renewed, so a value planted before sign-in is
// worth nothing after it.
func (s *Server) signin(c *fiber.Ctx) error {
	if !s.auth.Enabled() {
		return c.Redirect("/tenants", http.StatusSeeOther)
	}
	next := localPath(c.FormValue("next"))
	raw := strings.TrimSpace(c.FormValue("token"))
	if scheme, rest, ok := strings.Cut(raw, " "); ok && strings.EqualFold(scheme, "Bearer") {
		raw = strings.TrimSpace(rest)
	}
	var p auth.Principal
	err := errors.New("the token is too long")
	if len(raw) <= maxTokenFieldLength {
		p, err = auth.Verify(s.auth, raw)
	}
	if err != nil {
		// auth's reasons are its own fixed sentences, never library text or the token.
		return s.render(c, http.StatusUnauthorized, "signin", "", view{Title: "Sign in", Nav: "signin", Who: auth.Principal{},
			Data: signinData{Next: next, Error: "This token cannot sign in: " + err.Error() + "."}})
	}
	setCookie(c, sessionCookie, raw, 0)
	setCookie(c, bindingCookie, randomValue(), 0)
	s.log.Info("operator signed in", "role", p.Role, "subject", p.Subject)
	if next == "" {
		next = "/tenants"
	}
	return c.Redirect(next, http.StatusSeeOther)
}

func (s *Server) signout(c *fiber.Ctx) error {
	clearCookie(c, sessionCookie)
	setCookie(c, bindingCookie, randomValue(), 0)
	if !s.auth.Enabled() {
		return c.Redirect("/tenants", http.StatusSeeOther)
	}
	return c.Redirect("/signin", http.StatusSeeOther)
}

// --- tenants ---

type tenantsData struct {
	Tenants      []client.Tenant
	Cursor, Next string
}

func (s *Server) tenants(c *fiber.Ctx) error {
	cursor := c.Query("cursor")
	page, err := s.api(c).ListTenants(c.UserContext(), cursor, tenantsPageSize)
	if err != nil {
		return s.upstreamFail(c, err)
	}
	v := view{Title: "Tenants", Nav: "tenants", Data: tenantsData{Tenants: page.Data, Cursor: cursor, Next: page.NextCursor}}
	if isFragment(c, "rows") {
		return s.render(c, http.StatusOK, "tenants", "tenant-rows", v)
	}
	return s.render(c, http.StatusOK, "tenants", "", v)
}

func (s *Server) createTenant(c *fiber.Ctx) error {
	name := strings.TrimSpace(c.FormValue("name"))
	workers := 0
	if w := strings.TrimSpace(c.FormValue("workers")); w != "" {
		n, err := strconv.Atoi(w)
		if err != nil {
			s.setFlash(c, flash{Kind: "error", Text: "Workers must be a whole number."})
			return c.Redirect("/tenants", http.StatusSeeOther)
		}
		workers = n
	}
	created, err := s.api(c).CreateTenant(c.UserContext(), name, workers)
	if err != nil {
		return s.actionFailed(c, err, "/tenants")
	}
	// Rendered, not redirected: the broker password (when broker accounts are on) is
	// shown this once and must not travel in a cookie or a URL.
	return s.render(c, http.StatusCreated, "created", "", view{Title: "Tenant created", Nav: "tenants", Data: created})
}

// --- one tenant ---

// tenantPage is what the tenant pages share: the tenant and which tab is open.
type tenantPage struct {
	Tenant client.Tenant
	Tab    string
}

func (s *Server) loadTenant(c *fiber.Ctx, id string) (client.Tenant, error) {
	return s.api(c).GetTenant(c.UserContext(), id)
}

func (s *Server) overview(c *fiber.Ctx) error {
	t, err := s.loadTenant(c, tenantID(c))
	if err != nil {
		return s.upstreamFail(c, err)
	}
	v := view{Title: t.Name, Nav: "tenants", Data: tenantPage{Tenant: t, Tab: "overview"}}
	if isFragment(c, "summary") {
		return s.render(c, http.StatusOK, "overview", "summary", v)
	}
	return s.render(c, http.StatusOK, "overview", "", v)
}

type messagesData struct {
	tenantPage
	Messages     []client.Message
	Cursor, Next string
}

func (s *Server) messages(c *fiber.Ctx) error {
	id := tenantID(c)
	t, err := s.loadTenant(c, id)
	if err != nil {
		return s.upstreamFail(c, err)
	}
	cursor := c.Query("cursor")
	page, err := s.api(c).Messages(c.UserContext(), id, cursor, messagesPageSize)
	if err != nil {
		return s.upstreamFail(c, err)
	}
	v := view{Title: t.Name + " · messages", Nav: "tenants", Data: messagesData{
		tenantPage: tenantPage{Tenant: t, Tab: "messages"}, Messages: page.Data, Cursor: cursor, Next: page.NextCursor,
	}}
	if isFragment(c, "rows") {
		return s.render(c, http.StatusOK, "messages", "message-rows", v)
	}
	return s.render(c, http.StatusOK, "messages", "", v)
}

type eventsData struct {
	tenantPage
	Events       []client.Event
	Cursor, Next string
}

func (s *Server) events(c *fiber.Ctx) error {
	id := tenantID(c)
	t, err := s.loadTenant(c, id)
	if err != nil {
		return s.upstreamFail(c, err)
	}
	cursor := c.Query("cursor")
	page, err := s.api(c).Events(c.UserContext(), id, cursor, eventsPageSize)
	if err != nil {
		return s.upstreamFail(c, err)
	}
	return s.render(c, http.StatusOK, "events", "", view{Title: t.Name + " · events", Nav: "tenants", Data: eventsData{
		tenantPage: tenantPage{Tenant: t, Tab: "events"}, Events: page.Data, Cursor: cursor, Next: page.NextCursor,
	}})
}

type deadLettersData struct {
	tenantPage
	Rows                   []client.DeadLetter
	Reason, Status         string
	Cursor, Next           string
	Reasons, Statuses      []string
	Selected               map[string]bool
	SelectionKey           string
	DryRun                 *flash // the dry run of exactly this selection, if one just ran
	Selectable, AnyPending bool
}

func (s *Server) deadLetters(c *fiber.Ctx) error {
	id := tenantID(c)
	t, err := s.loadTenant(c, id)
	if err != nil {
		return s.upstreamFail(c, err)
	}
	reason, status, cursor := c.Query("reason"), c.Query("status", "pending"), c.Query("cursor")
	if status == "any" {
		status = ""
	}
	page, err := s.api(c).DeadLetters(c.UserContext(), id, client.DeadLetterQuery{Cursor: cursor, Limit: deadLetterPageSize, Reason: reason, Status: status})
	if err != nil {
		return s.upstreamFail(c, err)
	}
	sel := selection(strings.Split(c.Query("sel"), ","))
	d := deadLettersData{
		tenantPage: tenantPage{Tenant: t, Tab: "dead-letters"},
		Rows:       page.Data, Reason: reason, Status: status, Cursor: cursor, Next: page.NextCursor,
		Reasons: deadLetterReasons, Statuses: deadLetterStatuses,
		Selected: map[string]bool{}, SelectionKey: selectionKey(sel, reason),
	}
	for _, x := range sel {
		d.Selected[x] = true
	}
	for _, r := range page.Data {
		if r.Status == "pending" {
			d.AnyPending = true
		}
	}
	v := view{Title: t.Name + " · dead letters", Nav: "tenants"}
	v.Flash = s.takeFlash(c)
	if v.Flash != nil && v.Flash.Kind == "dryrun" {
		if v.Flash.Sel == d.SelectionKey {
			d.DryRun = v.Flash
		}
		v.Flash = nil
	}
	v.Data = d
	return s.render(c, http.StatusOK, "deadletters", "", v)
}

// selection is the distinct non-empty ids, sorted: one spelling per selection.
func selection(ids []string) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if id = strings.TrimSpace(id); id != "" {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// selectionKey names what a redrive or purge acts on: the chosen rows, or with none
// chosen every pending dead letter of the reason filter.
func selectionKey(ids []string, reason string) string {
	if len(ids) > 0 {
		return "ids:" + strings.Join(ids, ",")
	}
	return "reason:" + reason
}

// deadLetterAction runs a dry run, a redrive or a purge of the selected pending dead
// letters (or, with no row selected, of every pending one of the reason filter, up to
// redriveByFilterMax) and goes back to the list. A dry run keeps the selection and
// enables Redrive and Purge for it.
func (s *Server) deadLetterAction(c *fiber.Ctx) error {
	id := tenantID(c)
	reason := c.FormValue("reason")
	status := c.FormValue("status")
	var ids []string
	for _, v := range c.Request().PostArgs().PeekMulti("ids") {
		ids = append(ids, string(v))
	}
	ids = selection(ids)
	sel := client.Selector{IDs: ids}
	if len(ids) == 0 {
		sel = client.Selector{Reason: reason, Max: redriveByFilterMax}
	}
	back := func(keep bool) string {
		kv := []string{"reason", reason, "status", status}
		if status == "" {
			kv[3] = "any"
		}
		if keep {
			kv = append(kv, "sel", strings.Join(ids, ","))
		}
		return pathWithQuery("/tenants/"+url.PathEscape(id)+"/dead-letters", kv...)
	}
	what := describeSelection(ids, reason)
	ctx := c.UserContext()
	switch op := c.FormValue("op"); op {
	case "dry-run":
		sel.DryRun = true
		res, err := s.api(c).Redrive(ctx, id, sel, 0)
		if err != nil {
			return s.actionFailed(c, err, back(true))
		}
		s.setFlash(c, flash{Kind: "dryrun", Sel: selectionKey(ids, reason),
			Text: fmt.Sprintf("Dry run: redrive or purge would act on %d pending dead letter%s (%s). Nothing was changed.", res.Matched, plural(res.Matched), what)})
		return c.Redirect(back(true), http.StatusSeeOther)
	case "redrive":
		res, err := s.api(c).Redrive(ctx, id, sel, 0)
		if err != nil {
			return s.actionFailed(c, err, back(true))
		}
		s.setFlash(c, flash{Kind: "ok", Text: fmt.Sprintf("Redrove %d dead letter%s into the tenant's queue.", res.Matched, plural(res.Matched))})
	case "purge":
		res, err := s.api(c).Purge(ctx, id, sel, 0)
		if err != nil {
			return s.actionFailed(c, err, back(true))
		}
		s.setFlash(c, flash{Kind: "ok", Text: fmt.Sprintf("Purged %d dead letter%s; they are kept, marked purged, and never redriven.", res.Purged, plural(res.Purged))})
	default:
		return s.fail(c, http.StatusBadRequest, "Bad request", "Unknown dead-letter action.")
	}
	return c.Redirect(back(false), http.StatusSeeOther)
}

func describeSelection(ids []string, reason string) string {
	switch {
	case len(ids) > 0:
		return fmt.Sprintf("the %d selected row%s", len(ids), plural(len(ids)))
	case reason != "":
		return fmt.Sprintf("all pending %s dead letters, up to %d", reason, redriveByFilterMax)
	default:
		return fmt.Sprintf("all pending dead letters, up to %d", redriveByFilterMax)
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// --- tenant commands ---

// tenantPath is the overview page of tenant id.
func tenantPath(id string) string { return "/tenants/" + url.PathEscape(id) }

// ifMatch is the version the operator's page showed: a command on a tenant that changed
// since is refused by the service (412) instead of acting on what the operator did not see.
func ifMatch(c *fiber.Ctx) int {
	v, err := strconv.Atoi(c.FormValue("version"))
	if err != nil || v < 0 {
		return 0
	}
	return v
}

func (s *Server) resize(c *fiber.Ctx) error {
	id := tenantID(c)
	n, err := strconv.Atoi(strings.TrimSpace(c.FormValue("workers")))
	if err != nil {
		s.setFlash(c, flash{Kind: "error", Text: "Workers must be a whole number."})
		return c.Redirect(tenantPath(id), http.StatusSeeOther)
	}
	res, err := s.api(c).Resize(c.UserContext(), id, n, ifMatch(c))
	if err != nil {
		return s.actionFailed(c, err, tenantPath(id))
	}
	s.awaitVersion(c, id, res.Version)
	s.setFlash(c, flash{Kind: "ok", Text: fmt.Sprintf("Desired workers set to %d.", res.Workers)})
	return c.Redirect(tenantPath(id), http.StatusSeeOther)
}

func (s *Server) pause(c *fiber.Ctx) error {
	return s.statusCommand(c, "Paused: the workers stop after their in-flight messages; the queue keeps accepting.", s.api(c).Pause)
}

func (s *Server) resume(c *fiber.Ctx) error {
	return s.statusCommand(c, "Resumed: the desired workers start again and drain the backlog.", s.api(c).Resume)
}

func (s *Server) statusCommand(c *fiber.Ctx, done string, call func(ctx context.Context, id string, ifMatch int) (client.StatusChange, error)) error {
	id := tenantID(c)
	res, err := call(c.UserContext(), id, ifMatch(c))
	if err != nil {
		return s.actionFailed(c, err, tenantPath(id))
	}
	s.awaitVersion(c, id, res.Version)
	s.setFlash(c, flash{Kind: "ok", Text: done})
	return c.Redirect(tenantPath(id), http.StatusSeeOther)
}

// deleteTenant drains then deletes, or with drain off destroys the tenant at once; the
// destructive form needs the tenant's name typed in, checked against the service's own
// record of it.
func (s *Server) deleteTenant(c *fiber.Ctx) error {
	id := tenantID(c)
	opts := client.DeleteOptions{Drain: c.FormValue("drain") != "", IfMatch: ifMatch(c)}
	if raw := strings.TrimSpace(c.FormValue("drain_timeout")); opts.Drain && raw != "" {
		d, err := time.ParseDuration(raw)
		if err != nil {
			s.setFlash(c, flash{Kind: "error", Text: "Drain timeout must be a duration such as 5m or 90s."})
			return c.Redirect(tenantPath(id), http.StatusSeeOther)
		}
		opts.DrainTimeout = d
	}
	if !opts.Drain {
		t, err := s.loadTenant(c, id)
		if err != nil {
			return s.actionFailed(c, err, tenantPath(id))
		}
		if c.FormValue("confirm") != t.Name {
			s.setFlash(c, flash{Kind: "error", Text: "Not deleted: type the tenant's name exactly to confirm a delete without draining."})
			return c.Redirect(tenantPath(id), http.StatusSeeOther)
		}
	}
	res, err := s.api(c).Delete(c.UserContext(), id, opts)
	if err != nil {
		return s.actionFailed(c, err, tenantPath(id))
	}
	if opts.Drain {
		s.awaitVersion(c, id, res.Version)
		s.setFlash(c, flash{Kind: "ok", Text: "Draining: new messages are refused and the tenant is deleted once its queue is empty."})
		return c.Redirect(tenantPath(id), http.StatusSeeOther)
	}
	s.setFlash(c, flash{Kind: "ok", Text: "Tenant deleted with its queue, stored messages and dead letters."})
	return c.Redirect("/tenants", http.StatusSeeOther)
}

// Read-your-writes: the query side applies a command's event shortly after the command
// service answered. Before redirecting to a page built from the query side, the console
// waits (briefly) until it shows the version the command produced, so the operator sees
// the tenant they just changed, not the state before.
const (
	awaitVersionFor   = 3 * time.Second
	awaitVersionEvery = 50 * time.Millisecond
)

// awaitVersion polls the tenant until the query side shows version v or later; past
// awaitVersionFor it gives up silently (the page's live refresh catches up).
func (s *Server) awaitVersion(c *fiber.Ctx, id string, v int) {
	ctx, cancel := context.WithTimeout(c.UserContext(), awaitVersionFor)
	defer cancel()
	api := s.api(c)
	tick := time.NewTicker(awaitVersionEvery)
	defer tick.Stop()
	for {
		t, err := api.GetTenant(ctx, id)
		if err == nil && t.Version >= v {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// actionFailed shows the API's problem detail on the page the action came from. A
// transport failure is logged too: the operator cannot see the service's side.
func (s *Server) actionFailed(c *fiber.Ctx, err error, back string) error {
	status, detail := problemOf(err)
	if status == http.StatusBadGateway {
		s.log.Warn("upstream call failed", "err", err, "path", c.Path())
	}
	s.setFlash(c, flash{Kind: "error", Text: detail})
	return c.Redirect(back, http.StatusSeeOther)
}
