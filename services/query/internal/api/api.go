// Package api serves the query service's REST reads from the read models, with opaque
// signed cursors. Tenant ids follow platform/auth's one rule: the canonical UUID form
// only; a malformed id in a path is the unknown tenant's 404, a malformed tenant_id
// query parameter is 400.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/multitenant/mtm/platform/auth"
	"github.com/multitenant/mtm/platform/httpserver"
	"github.com/multitenant/mtm/platform/rabbit"
	"github.com/multitenant/mtm/projections/cursor"
	"github.com/multitenant/mtm/projections/deadletters"
	"github.com/multitenant/mtm/projections/messages"
	"github.com/multitenant/mtm/projections/tenants"
)

// Page sizes. A limit outside 1..MaxLimit is rejected with 400 rather
// than clamped, so a client learns its request was not served as asked.
const (
	DefaultLimit = 20
	MaxLimit     = 100
)

// DB is what the handlers read through: *pgxpool.Pool satisfies it.
type DB interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Handler serves the read endpoints. Failures other than bad input are returned as
// plain errors: httpserver logs them with the request id and answers a generic 500,
// so no SQL or driver text reaches a client.
type Handler struct {
	db        DB
	codec     *cursor.Codec
	guards    Guards
	pageBytes int
	now       func() time.Time // for drain.timed_out
}

// Guards are the authorization hooks main installs (platform/auth); the command
// service's httpapi.Guards are the same idea. The zero value allows everything, for
// tests and authentication-off deployments.
type Guards struct {
	// TenantAccess returns nil when the request may read tenantID, otherwise the error
	// to answer (the same 404 as an unknown tenant, so existence does not leak).
	TenantAccess func(c *fiber.Ctx, tenantID string) error
	// TenantScope returns the only tenant the request may list; ok false means all.
	TenantScope func(c *fiber.Ctx) (tenantID string, ok bool)
}

// New builds the handlers.
func New(db DB, codec *cursor.Codec) *Handler {
	return &Handler{db: db, codec: codec, pageBytes: messages.DefaultPageBytes, now: time.Now}
}

// WithPageBytes caps the payload bytes of one page (PAGE_MAX_BYTES) of messages, dead
// letters (bodies and headers) and events (their data).
func (h *Handler) WithPageBytes(n int) *Handler {
	h.pageBytes = n
	return h
}

// WithGuards installs authorization hooks.
func (h *Handler) WithGuards(g Guards) *Handler {
	h.guards = g
	return h
}

func (h *Handler) checkTenant(c *fiber.Ctx, id uuid.UUID) error {
	if h.guards.TenantAccess == nil {
		return nil
	}
	return h.guards.TenantAccess(c, id.String())
}

// Register adds the routes to r. Taking a fiber.Router lets main put middleware
// (authentication) in front of them with a group.
func (h *Handler) Register(r fiber.Router) {
	r.Get("/tenants", h.listTenants)
	r.Get("/tenants/:id", h.getTenant)
	r.Get("/tenants/:id/messages", h.tenantMessages)
	r.Get("/tenants/:id/dead-letters", h.tenantDeadLetters)
	r.Get("/tenants/:id/events", h.tenantEvents)
	r.Get("/messages", h.messages)
}

// Workers are a tenant's desired and running worker counts.
type Workers struct {
	// Desired is the count the last command asked for.
	Desired int `json:"desired" example:"3"`
	// Current is the number of consumers on the tenant's queue, summed over what the
	// consumer replicas report they run (0 before the first report).
	Current int `json:"current" example:"3"`
	// Owner is the consumer replica that runs the tenant; null before its first report,
	// while an owner that left is being replaced, and for a tenant's own token (replica
	// names are the deployment's host names: admins only).
	Owner *string `json:"owner" extensions:"x-nullable" example:"consumer-7d9f8c6b5-x2k4q-1a2b3c4d"`
	// Replicas are the consumer replicas running the tenant's consumers now: the owner,
	// and during a hand-over briefly the previous owner too. Empty for a tenant's own
	// token.
	Replicas []string `json:"replicas" example:"consumer-7d9f8c6b5-x2k4q-1a2b3c4d"`
}

// Backlog is the tenant's queue backlog as the consumer last sampled it (every
// RECONCILE_INTERVAL; written when a value changed, and at least every 30 s).
type Backlog struct {
	// Ready is the number of messages waiting in the tenant's queue, not yet delivered.
	Ready int64 `json:"ready" example:"120"`
	// Unacked is the number of deliveries the consumer holds in flight (received, not
	// yet stored and acknowledged).
	Unacked int64 `json:"unacked" example:"64"`
	// LagSeconds is the delivery lag of the latest delivery that carried an AMQP
	// timestamp (delivery time minus publish time, whole-second timestamps), 0 when the
	// queue is empty. It does not grow while nothing is delivered (a paused tenant):
	// read it with ready.
	LagSeconds float64 `json:"lag_seconds" example:"1.5"`
	// SampledAt is when the consumer took the sample. Much older than 30 s plus
	// RECONCILE_INTERVAL means the consumer is not sampling (stopped, or the broker is
	// away): the values are stale.
	SampledAt time.Time `json:"sampled_at" format:"date-time" example:"2025-05-06T07:08:09.123456Z"`
}

// RateLimit is a tenant's own message ingest limit, set with
// PUT /tenants/{id}/config/rate-limit on the command service.
type RateLimit struct {
	// PerSecond is the sustained rate in messages per second; 0 means unlimited.
	PerSecond int `json:"per_second" example:"100"`
	// Burst is the bucket size: how many messages may arrive at once after a quiet
	// spell (0 when unlimited).
	Burst int `json:"burst" example:"200"`
}

// Drain is a draining tenant's drain-then-delete.
type Drain struct {
	// RequestedAt is when the (last) DELETE ?drain=true was recorded.
	RequestedAt time.Time `json:"requested_at" format:"date-time"`
	// Deadline is when the command service stops waiting for the queue to empty.
	Deadline time.Time `json:"deadline" format:"date-time"`
	// TimedOut: the deadline has passed. The tenant stays draining until it is deleted
	// plainly or asked to drain again.
	TimedOut bool `json:"timed_out" example:"false"`
}

// Tenant is a tenant as the API shows it.
type Tenant struct {
	ID   string `json:"id" example:"0b7e3f5c-8d0a-4a7e-9c61-3f1c2b9d4e10" format:"uuid"`
	Name string `json:"name" example:"acme"`
	// Status: active; paused (nothing consumed, the queue keeps accepting); draining
	// (deletion requested: HTTP ingest refused, the queue is being emptied).
	Status  string  `json:"status" example:"active" enums:"active,paused,draining"`
	Workers Workers `json:"workers"`
	// Backlog is the consumer's latest sample of the tenant's queue; null before the
	// consumer's first sample of it.
	Backlog *Backlog `json:"backlog" extensions:"x-nullable"`
	// Drain is present only while the tenant is draining.
	Drain *Drain `json:"drain,omitempty"`
	// DeadLettersPending counts its dead letters with status pending.
	DeadLettersPending int `json:"dead_letters_pending" example:"0"`
	// RateLimit is the tenant's own ingest limit; null means the command service's
	// default (TENANT_RATE_LIMIT / TENANT_RATE_BURST) applies.
	RateLimit *RateLimit `json:"rate_limit" extensions:"x-nullable"`
	Queue     string     `json:"queue" example:"tenant_0b7e3f5c-8d0a-4a7e-9c61-3f1c2b9d4e10_queue"`
	CreatedAt time.Time  `json:"created_at" format:"date-time"`
	UpdatedAt time.Time  `json:"updated_at" format:"date-time"`
	Version   int        `json:"version" example:"2"`
}

// TenantPage is one page of tenants.
type TenantPage struct {
	Data []Tenant `json:"data"`
	// NextCursor fetches the next page; null on the last page.
	NextCursor *string `json:"next_cursor" example:"AQIAAAAAAAAAAAAAAAAAAAAAGDk..." extensions:"x-nullable"`
}

// Message is one stored message.
type Message struct {
	ID        string          `json:"id" example:"01890a5d-ac96-774b-bcce-b302099a8057" format:"uuid"`
	TenantID  string          `json:"tenant_id" example:"0b7e3f5c-8d0a-4a7e-9c61-3f1c2b9d4e10" format:"uuid"`
	Payload   json.RawMessage `json:"payload" swaggertype:"object" extensions:"x-any-json"`
	CreatedAt time.Time       `json:"created_at" format:"date-time"`
}

// MessagePage is one page of a tenant's messages, oldest first.
type MessagePage struct {
	Data []Message `json:"data"`
	// NextCursor fetches the next page; null on the last page.
	NextCursor *string `json:"next_cursor" example:"AQIL...." extensions:"x-nullable"`
}

// listTenants godoc
//
//	@Summary		List tenants
//	@Description	Live tenants (active, paused or draining, shown as GET /tenants/{id} shows them), oldest first (by created_at, then id). Deleted tenants are not listed. Pages are keyset pages: pass next_cursor back as cursor; it is null on the last page.
//	@ID				listTenants
//	@Tags			tenants
//	@Security		BearerAuth
//	@Produce		json,application/problem+json
//	@Param			cursor	query		string	false	"opaque cursor from a previous page's next_cursor"
//	@Param			limit	query		int		false	"page size, 1..100 (default 20); anything else is 400"	minimum(1)	maximum(100)	default(20)
//	@Success		200		{object}	TenantPage
//	@Failure		400		{object}	httpserver.Problem	"invalid limit or cursor"
//	@Failure		401		{object}	httpserver.Problem	"missing or invalid token (when JWT_SECRET is set)"
//	@Failure		500		{object}	httpserver.Problem
//	@Header			401		{string}	WWW-Authenticate	"Bearer challenge (RFC 6750) naming the error"
//	@Header			all		{string}	X-Request-ID		"The request id (the caller's X-Request-ID when it is 1..200 printable ASCII characters, else a new UUID); logs quote it"
//	@Router			/tenants [get]
func (h *Handler) listTenants(c *fiber.Ctx) error {
	limit, err := parseLimit(c)
	if err != nil {
		return err
	}
	after, err := h.parseCursor(c, cursor.KindTenants, uuid.Nil)
	if err != nil {
		return err
	}
	scope := tenants.AllTenants()
	if h.guards.TenantScope != nil {
		if raw, ok := h.guards.TenantScope(c); ok {
			// A principal scoped to nothing (or to a non-UUID, or the nil UUID) sees an
			// empty list: the zero scope.
			scope = tenants.Scope{}
			if id, err := auth.ParseTenantID(raw); err == nil {
				scope = tenants.OnlyTenant(id)
			}
		}
	}
	list, more, err := tenants.List(c.UserContext(), h.db, after, limit, scope)
	if err != nil {
		return err
	}
	ids := make([]uuid.UUID, 0, len(list))
	for _, t := range list {
		ids = append(ids, t.ID)
	}
	pending, err := deadletters.PendingCounts(c.UserContext(), h.db, ids)
	if err != nil {
		return err
	}
	out := TenantPage{Data: make([]Tenant, 0, len(list))}
	for _, t := range list {
		out.Data = append(out.Data, h.toTenant(t, pending[t.ID], h.showsReplicas(c)))
	}
	if more {
		next := h.codec.Encode(cursor.KindTenants, uuid.Nil, list[len(list)-1].Position())
		out.NextCursor = &next
	}
	return c.JSON(out)
}

// getTenant godoc
//
//	@Summary		Get a tenant
//	@Description	A tenant with its desired worker count (from the last command) and the current one (reported by the consumer), its status (active, paused, draining), its drain while draining (drain.timed_out once the deadline has passed: the tenant then stays draining), its number of pending dead letters and its queue backlog as the consumer last sampled it (backlog: ready and unacked messages, delivery lag, sampled_at; null before the consumer's first sample).
//	@ID				getTenant
//	@Tags			tenants
//	@Security		BearerAuth
//	@Produce		json,application/problem+json
//	@Param			id	path		string	true	"tenant id: a canonical 36-character UUID (any other form is 404)"
//	@Success		200	{object}	Tenant
//	@Failure		401	{object}	httpserver.Problem	"missing or invalid token (when JWT_SECRET is set)"
//	@Failure		404	{object}	httpserver.Problem	"unknown or deleted tenant, or a malformed id"
//	@Failure		500	{object}	httpserver.Problem
//	@Header			401	{string}	WWW-Authenticate	"Bearer challenge (RFC 6750) naming the error"
//	@Header			all	{string}	X-Request-ID		"The request id (the caller's X-Request-ID when it is 1..200 printable ASCII characters, else a new UUID); logs quote it"
//	@Router			/tenants/{id} [get]
func (h *Handler) getTenant(c *fiber.Ctx) error {
	id, err := auth.PathTenantID(c.Params("id"))
	if err != nil {
		return err
	}
	if err := h.checkTenant(c, id); err != nil {
		return err
	}
	t, err := tenants.Get(c.UserContext(), h.db, id)
	if errors.Is(err, tenants.ErrNotFound) {
		return auth.TenantNotFound()
	}
	if err != nil {
		return err
	}
	pending, err := deadletters.PendingCounts(c.UserContext(), h.db, []uuid.UUID{id})
	if err != nil {
		return err
	}
	return c.JSON(h.toTenant(t, pending[id], h.showsReplicas(c)))
}

// messages godoc
//
//	@Summary		List a tenant's messages
//	@Description	Stored messages of one tenant, oldest first (by created_at, then id). Pages are keyset pages: pass next_cursor back as cursor, with the same tenant_id; it is null on the last page. A walk returns every message that existed when it began exactly once.
//	@ID				listMessages
//	@Tags			messages
//	@Security		BearerAuth
//	@Produce		json,application/problem+json
//	@Param			tenant_id	query		string	true	"tenant id: a canonical 36-character UUID (any other form is 400)"
//	@Param			cursor		query		string	false	"opaque cursor from a previous page's next_cursor (bound to this tenant)"
//	@Param			limit		query		int		false	"page size, 1..100 (default 20); anything else is 400"	minimum(1)	maximum(100)	default(20)
//	@Success		200			{object}	MessagePage
//	@Failure		400			{object}	httpserver.Problem	"tenant_id missing or not a UUID, invalid limit, or a malformed, tampered or foreign cursor"
//	@Failure		401			{object}	httpserver.Problem	"missing or invalid token (when JWT_SECRET is set)"
//	@Failure		404			{object}	httpserver.Problem	"unknown or deleted tenant"
//	@Failure		500			{object}	httpserver.Problem
//	@Header			401			{string}	WWW-Authenticate	"Bearer challenge (RFC 6750) naming the error"
//	@Header			all			{string}	X-Request-ID		"The request id (the caller's X-Request-ID when it is 1..200 printable ASCII characters, else a new UUID); logs quote it"
//	@Router			/messages [get]
func (h *Handler) messages(c *fiber.Ctx) error {
	raw := c.Query("tenant_id")
	if raw == "" {
		return httpserver.BadRequest("missing_tenant_id", "query parameter tenant_id is required").
			WithErrors(httpserver.FieldError{Field: "tenant_id", Detail: "required"})
	}
	id, err := auth.ParseTenantID(raw)
	if err != nil {
		return httpserver.BadRequest("invalid_tenant_id", "tenant_id must be a UUID").
			WithErrors(httpserver.FieldError{Field: "tenant_id", Detail: "not a UUID"})
	}
	return h.messagePage(c, id)
}

// tenantMessages godoc
//
//	@Summary		List a tenant's messages
//	@Description	Same as GET /messages?tenant_id={id}, except that a malformed id names no tenant here: 404, where the query parameter is 400.
//	@ID				listTenantMessages
//	@Tags			messages
//	@Security		BearerAuth
//	@Produce		json,application/problem+json
//	@Param			id		path		string	true	"tenant id: a canonical 36-character UUID (any other form is 404)"
//	@Param			cursor	query		string	false	"opaque cursor from a previous page's next_cursor (bound to this tenant)"
//	@Param			limit	query		int		false	"page size, 1..100 (default 20); anything else is 400"	minimum(1)	maximum(100)	default(20)
//	@Success		200		{object}	MessagePage
//	@Failure		400		{object}	httpserver.Problem	"invalid limit, or a malformed, tampered or foreign cursor"
//	@Failure		401		{object}	httpserver.Problem	"missing or invalid token (when JWT_SECRET is set)"
//	@Failure		404		{object}	httpserver.Problem	"unknown or deleted tenant, or a malformed id"
//	@Failure		500		{object}	httpserver.Problem
//	@Header			401		{string}	WWW-Authenticate	"Bearer challenge (RFC 6750) naming the error"
//	@Header			all		{string}	X-Request-ID		"The request id (the caller's X-Request-ID when it is 1..200 printable ASCII characters, else a new UUID); logs quote it"
//	@Router			/tenants/{id}/messages [get]
func (h *Handler) tenantMessages(c *fiber.Ctx) error {
	id, err := auth.PathTenantID(c.Params("id"))
	if err != nil {
		return err
	}
	return h.messagePage(c, id)
}

func (h *Handler) messagePage(c *fiber.Ctx, tenantID uuid.UUID) error {
	// Access before anything else about the tenant: a foreign tenant gets the unknown
	// tenant's 404, and its cursors are then never even looked at.
	if err := h.checkTenant(c, tenantID); err != nil {
		return err
	}
	limit, err := parseLimit(c)
	if err != nil {
		return err
	}
	after, err := h.parseCursor(c, cursor.KindMessages, tenantID)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	ok, err := tenants.Exists(ctx, h.db, tenantID)
	if err != nil {
		return err
	}
	if !ok {
		return auth.TenantNotFound()
	}
	page, more, err := messages.Page(ctx, h.db, tenantID, after, limit, h.pageBytes)
	if err != nil {
		return err
	}
	out := MessagePage{Data: make([]Message, 0, len(page))}
	for _, m := range page {
		out.Data = append(out.Data, Message{ID: m.ID.String(), TenantID: m.TenantID.String(), Payload: m.Payload, CreatedAt: m.CreatedAt.UTC()})
	}
	if more {
		next := h.codec.Encode(cursor.KindMessages, tenantID, page[len(page)-1].Position())
		out.NextCursor = &next
	}
	return c.JSON(out)
}

// showsReplicas: the consumer replicas running a tenant (host names of the
// deployment) are shown to admins only; a tenant's own token sees null and [].
func (h *Handler) showsReplicas(c *fiber.Ctx) bool {
	if h.guards.TenantScope == nil {
		return true
	}
	_, scoped := h.guards.TenantScope(c)
	return !scoped
}

func workersOf(t tenants.Tenant, replicas bool) Workers {
	w := Workers{Desired: t.WorkersDesired, Current: t.WorkersCurrent, Replicas: []string{}}
	if replicas {
		if t.Owner != "" {
			w.Owner = &t.Owner
		}
		if t.Replicas != nil {
			w.Replicas = t.Replicas
		}
	}
	return w
}

func (h *Handler) toTenant(t tenants.Tenant, deadLettersPending int, replicas bool) Tenant {
	id := t.ID.String()
	var limit *RateLimit
	if t.RateLimit != nil {
		limit = &RateLimit{PerSecond: t.RateLimit.PerSecond, Burst: t.RateLimit.Burst}
	}
	var backlog *Backlog
	if t.Backlog != nil {
		backlog = &Backlog{Ready: t.Backlog.Ready, Unacked: t.Backlog.Unacked, LagSeconds: t.Backlog.LagSeconds, SampledAt: t.Backlog.SampledAt}
	}
	var drain *Drain
	if t.Drain != nil {
		drain = &Drain{RequestedAt: t.Drain.RequestedAt, Deadline: t.Drain.Deadline, TimedOut: h.now().After(t.Drain.Deadline)}
	}
	return Tenant{
		ID:                 id,
		Name:               t.Name,
		Status:             t.Status,
		Workers:            workersOf(t, replicas),
		Backlog:            backlog,
		Drain:              drain,
		DeadLettersPending: deadLettersPending,
		RateLimit:          limit,
		Queue:              rabbit.QueueName(id),
		CreatedAt:          t.CreatedAt,
		UpdatedAt:          t.UpdatedAt,
		Version:            t.Version,
	}
}

func parseLimit(c *fiber.Ctx) (int, error) {
	raw := c.Query("limit")
	if raw == "" {
		return DefaultLimit, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 || n > MaxLimit {
		detail := fmt.Sprintf("limit must be an integer between 1 and %d", MaxLimit)
		return 0, httpserver.BadRequest("invalid_limit", detail).
			WithErrors(httpserver.FieldError{Field: "limit", Detail: detail})
	}
	return n, nil
}

func (h *Handler) parseCursor(c *fiber.Ctx, kind cursor.Kind, scope uuid.UUID) (*cursor.Position, error) {
	raw := c.Query("cursor")
	if raw == "" {
		return nil, nil
	}
	p, err := h.codec.Decode(raw, kind, scope)
	if err != nil {
		// The reason (malformed, signature, other tenant) is safe to tell: it names no secret.
		return nil, httpserver.BadRequest("invalid_cursor", "cursor is not valid for this list: "+reason(err)).
			WithErrors(httpserver.FieldError{Field: "cursor", Detail: reason(err)})
	}
	return &p, nil
}

func reason(err error) string {
	s := err.Error()
	prefix := cursor.ErrInvalid.Error() + ": "
	if len(s) > len(prefix) && s[:len(prefix)] == prefix {
		return s[len(prefix):]
	}
	return s
}
