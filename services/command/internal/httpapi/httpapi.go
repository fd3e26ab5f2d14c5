// Package httpapi is the command service's REST edge: it decodes and checks requests,
// calls the tenant command handlers and the publisher, and maps domain errors to
// problem+json in one place.
package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	swagger "github.com/gofiber/swagger"
	"github.com/google/uuid"

	"github.com/multitenant/mtm/services/command/docs" // also registers the Swagger 2 spec for Swagger UI

	"github.com/multitenant/mtm/platform/auth"
	"github.com/multitenant/mtm/platform/httpserver"
	"github.com/multitenant/mtm/platform/msgid"
	"github.com/multitenant/mtm/platform/payload"
	"github.com/multitenant/mtm/platform/rabbit"
	"github.com/multitenant/mtm/services/command/internal/broker"
	"github.com/multitenant/mtm/services/command/internal/idempotency"
	"github.com/multitenant/mtm/services/command/internal/ratelimit"
	"github.com/multitenant/mtm/services/command/internal/tenant"
)

// Header names of the API.
const (
	HeaderCorrelationID  = "X-Correlation-ID"
	HeaderIdempotencyKey = "Idempotency-Key"
)

// Publisher publishes a tenant message and returns after the broker confirmed it.
type Publisher interface {
	Publish(ctx context.Context, m broker.Message) error
}

// Guards are the authorization hooks main installs (platform/auth); the query service's
// api.Guards are the same idea. The zero value lets everything through.
type Guards struct {
	// Admin runs before the tenant lifecycle routes (create, resize, delete, rotate
	// credentials).
	Admin fiber.Handler
	// TenantAccess runs first in POST /tenants/{id}/messages, before the body is
	// read, with the raw path id; its error is returned as is.
	TenantAccess func(c *fiber.Ctx, tenantID string) error
}

// API holds the handlers' dependencies.
type API struct {
	tenants *tenant.Service
	pub     Publisher
	log     *slog.Logger
	guards  Guards
	keys    *idempotency.Keys
	limiter *ratelimit.Limiters
}

// New builds the API. Message ingest is limited per tenant by token buckets held in
// this process (see WithLimiter).
func New(tenants *tenant.Service, pub Publisher, log *slog.Logger) *API {
	return &API{tenants: tenants, pub: pub, log: log, limiter: ratelimit.New(ratelimit.DefaultCapacity, time.Now)}
}

// WithIdempotencyKeys makes a reused Idempotency-Key with another body a 409 (within
// the keys' window) instead of a message silently deduplicated away.
func (a *API) WithIdempotencyKeys(k *idempotency.Keys) *API {
	a.keys = k
	return a
}

// WithGuards installs authorization hooks.
func (a *API) WithGuards(g Guards) *API {
	a.guards = g
	return a
}

// WithLimiter replaces the per-tenant ingest buckets (tests pass a fake clock).
func (a *API) WithLimiter(l *ratelimit.Limiters) *API {
	a.limiter = l
	return a
}

// Register adds the command routes to r. main passes a router so that middleware
// (authentication) can be put in front of them.
func Register(r fiber.Router, api *API) {
	admin := func(h fiber.Handler) []fiber.Handler {
		if api.guards.Admin == nil {
			return []fiber.Handler{h}
		}
		return []fiber.Handler{api.guards.Admin, h}
	}
	r.Post("/tenants", admin(api.createTenant)...)
	r.Put("/tenants/:id/config/concurrency", admin(api.changeConcurrency)...)
	r.Put("/tenants/:id/config/rate-limit", admin(api.changeRateLimit)...)
	r.Delete("/tenants/:id", admin(api.deleteTenant)...)
	r.Post("/tenants/:id/credentials", admin(api.rotateCredentials)...)
	r.Post("/tenants/:id/pause", admin(api.pauseTenant)...)
	r.Post("/tenants/:id/resume", admin(api.resumeTenant)...)
	r.Post("/tenants/:id/dead-letters/redrive", admin(api.redriveDeadLetters)...)
	r.Delete("/tenants/:id/dead-letters", admin(api.purgeDeadLetters)...)
	r.Post("/tenants/:id/messages", api.publishMessage)
}

// RegisterDocs serves the generated Swagger UI at /swagger/index.html and the OpenAPI 3
// document at /openapi.json.
func RegisterDocs(r fiber.Router) {
	r.Get("/swagger/*", swagger.HandlerDefault)
	httpserver.ServeOpenAPI(r, docs.OpenAPI)
}

// CreateTenantRequest is the body of POST /tenants.
type CreateTenantRequest struct {
	// Trimmed; 1..200 characters; no control characters; unique ignoring case.
	Name string `json:"name" example:"acme" validate:"required" minLength:"1" maxLength:"200"`
	// Optional; defaults to WORKERS. An integer in 1..MAX_WORKERS (default 64).
	Workers int `json:"workers,omitempty" example:"3" minimum:"1"`
}

type createTenantBody struct {
	Name    json.RawMessage `json:"name"`
	Workers json.RawMessage `json:"workers"`
}

// TenantResponse is a tenant after a successful create.
type TenantResponse struct {
	ID      string `json:"id" example:"0190f2a4-7b7e-7c3a-9d4e-1a2b3c4d5e6f" format:"uuid"`
	Name    string `json:"name" example:"acme"`
	Workers int    `json:"workers" example:"3"`
	Status  string `json:"status" example:"active"`
	Version int    `json:"version" example:"1"`
	// The tenant's own broker account; absent when per-tenant broker accounts are off.
	AMQP *AMQPCredentials `json:"amqp,omitempty"`
}

// AMQPCredentials are a tenant's own RabbitMQ account. The password is shown only in
// this answer and stored nowhere (the broker keeps a salted hash).
type AMQPCredentials struct {
	Username string `json:"username" example:"tenant_0190f2a4-7b7e-7c3a-9d4e-1a2b3c4d5e6f"`
	Password string `json:"password" example:"shown-once-43-url-safe-random-characters"`
	VHost    string `json:"vhost" example:"/"`
	// The one exchange the account may publish to (fanout to the tenant's queue).
	Exchange string `json:"exchange" example:"tenant_0190f2a4-7b7e-7c3a-9d4e-1a2b3c4d5e6f_queue"`
}

// CredentialsResponse carries a tenant's new broker credentials.
type CredentialsResponse struct {
	ID   string          `json:"id" example:"0190f2a4-7b7e-7c3a-9d4e-1a2b3c4d5e6f" format:"uuid"`
	AMQP AMQPCredentials `json:"amqp"`
}

func amqpCredentials(tenantID string, c tenant.Credentials) AMQPCredentials {
	return AMQPCredentials{Username: c.Username, Password: c.Password, VHost: c.VHost, Exchange: rabbit.ExchangeName(tenantID)}
}

// ConcurrencyRequest is the body of PUT /tenants/{id}/config/concurrency.
type ConcurrencyRequest struct {
	// An integer in 1..MAX_WORKERS (default 64).
	Workers int `json:"workers" example:"5" validate:"required" minimum:"1"`
}

type concurrencyBody struct {
	Workers json.RawMessage `json:"workers"`
}

// ConcurrencyResponse is the tenant's worker count and version after a resize.
type ConcurrencyResponse struct {
	ID      string `json:"id" example:"0190f2a4-7b7e-7c3a-9d4e-1a2b3c4d5e6f" format:"uuid"`
	Workers int    `json:"workers" example:"5"`
	Version int    `json:"version" example:"2"`
}

// RateLimitRequest is the body of PUT /tenants/{id}/config/rate-limit.
type RateLimitRequest struct {
	// Messages per second the tenant may publish over HTTP, per command replica: an
	// integer in 0..1000000; 0 means unlimited.
	PerSecond int `json:"per_second" example:"100" validate:"required" minimum:"0" maximum:"1000000"`
	// The bucket size, how many messages may arrive at once after a quiet spell: an
	// integer in 1..1000000; 0 or absent when per_second is 0.
	Burst int `json:"burst" example:"200" minimum:"0" maximum:"1000000" validate:"optional"`
}

type rateLimitBody struct {
	PerSecond json.RawMessage `json:"per_second"`
	Burst     json.RawMessage `json:"burst"`
}

// RateLimitResponse is the tenant's own ingest limit and version after a change.
type RateLimitResponse struct {
	ID        string `json:"id" example:"0190f2a4-7b7e-7c3a-9d4e-1a2b3c4d5e6f" format:"uuid"`
	PerSecond int    `json:"per_second" example:"100"`
	Burst     int    `json:"burst" example:"200"`
	Version   int    `json:"version" example:"3"`
}

// DeleteResponse acknowledges a delete: "deleting" (the consumer removes queues and
// data) or, with drain=true, "draining" (deleted once the queue is empty).
type DeleteResponse struct {
	ID      string `json:"id" example:"0190f2a4-7b7e-7c3a-9d4e-1a2b3c4d5e6f" format:"uuid"`
	Status  string `json:"status" example:"deleting" enums:"deleting,draining"`
	Version int    `json:"version" example:"3"`
}

// MessageAccepted is the id a confirmed message is stored under.
type MessageAccepted struct {
	ID       string `json:"id" example:"0190f2a4-8000-7000-8000-0000000000aa" format:"uuid"`
	TenantID string `json:"tenant_id" example:"0190f2a4-7b7e-7c3a-9d4e-1a2b3c4d5e6f" format:"uuid"`
}

// createTenant godoc
//
//	@Summary		Create a tenant
//	@Description	Declares the tenant's queue and dead-letter queue and, when per-tenant broker accounts are on (RABBITMQ_MANAGEMENT_URL set), creates the tenant's own RabbitMQ user, then records tenant.created.v1. When this answers 201 the queue tenant_{id}_queue exists, so a message published right after is never lost, and the credentials in "amqp" (shown only here) work.
//	@ID				createTenant
//	@Tags			tenants
//	@Security		BearerAuth
//	@Accept			json
//	@Produce		json,application/problem+json
//	@Param			X-Correlation-ID	header		string				false	"Correlation id recorded on the event (default: the request id)"
//	@Param			body				body		CreateTenantRequest	true	"Tenant"
//	@Success		201					{object}	TenantResponse		"Created; Location: /tenants/{id}; ETag: the version"
//	@Failure		400					{object}	httpserver.Problem	"Malformed JSON"
//	@Failure		409					{object}	httpserver.Problem	"Duplicate name (duplicate_name), or MAX_TENANTS tenants are live or the workers would take all tenants past MAX_TOTAL_WORKERS (tenant_capacity_reached)"
//	@Failure		413					{object}	httpserver.Problem	"Body too large"
//	@Failure		415					{object}	httpserver.Problem	"Not JSON"
//	@Failure		422					{object}	httpserver.Problem	"Invalid or unknown field"
//	@Failure		503					{object}	httpserver.Problem	"Broker (or its management API) unavailable; nothing recorded"
//	@Failure		401					{object}	httpserver.Problem	"No or an invalid bearer token (when JWT_SECRET is set); WWW-Authenticate says why"
//	@Failure		403					{object}	httpserver.Problem	"A tenant token: this command needs the admin role"
//	@Failure		500					{object}	httpserver.Problem	"Internal error; the detail quotes the request id"
//	@Header			201					{string}	Location			"/tenants/{id} of the new tenant"
//	@Header			201					{string}	ETag				"The tenant's version as a strong entity tag (\"3\"): send it back in If-Match"
//	@Header			401,403				{string}	WWW-Authenticate	"Bearer challenge (RFC 6750) naming the error"
//	@Header			503					{integer}	Retry-After			"Seconds to wait before retrying"
//	@Header			all					{string}	X-Request-ID		"The request id (the caller's X-Request-ID when it is 1..200 printable ASCII characters, else a new UUID); logs quote it"
//	@Router			/tenants [post]
func (a *API) createTenant(c *fiber.Ctx) error {
	var body createTenantBody
	if err := decodeBody(c, &body); err != nil {
		return err
	}
	var fields []httpserver.FieldError
	name, detail := parseString(body.Name)
	if detail != "" {
		fields = append(fields, httpserver.FieldError{Field: "name", Detail: detail})
	} else if _, err := tenant.NormalizeName(name); err != nil {
		fields = append(fields, httpserver.FieldError{Field: "name", Detail: err.Error()})
	}
	var workers *int
	if body.Workers != nil {
		n, ok := parseInt(body.Workers)
		if !ok {
			fields = append(fields, a.workersError())
		}
		workers = &n
	}
	if len(fields) > 0 {
		return httpserver.Unprocessable("invalid tenant", fields...)
	}
	st, creds, err := a.tenants.Create(c.UserContext(), a.meta(c), name, workers)
	if err != nil {
		return a.problem(c, err)
	}
	resp := TenantResponse{ID: st.ID, Name: st.Name, Workers: st.Workers, Status: string(st.Status), Version: st.Version}
	if creds != nil {
		ac := amqpCredentials(st.ID, *creds)
		resp.AMQP = &ac
	}
	c.Location("/tenants/" + st.ID)
	c.Set(fiber.HeaderETag, etag(st.Version))
	return c.Status(fiber.StatusCreated).JSON(resp)
}

// changeConcurrency godoc
//
//	@Summary		Set a tenant's worker count
//	@Description	Records tenant.concurrency_changed.v1; the consumer resizes the tenant's worker pool. Setting the current count again records nothing and answers 200 with the current version.
//	@ID				setTenantConcurrency
//	@Tags			tenants
//	@Security		BearerAuth
//	@Accept			json
//	@Produce		json,application/problem+json
//	@Param			id					path		string				true	"Tenant id: a canonical 36-character UUID (any other form is 404)"
//	@Param			If-Match			header		string				false	"Expected version as one strong entity tag: \"3\" (or 3); weak tags never match"
//	@Param			X-Correlation-ID	header		string				false	"Correlation id recorded on the event"
//	@Param			body				body		ConcurrencyRequest	true	"Worker count"
//	@Success		200					{object}	ConcurrencyResponse	"ETag: the new version"
//	@Failure		400					{object}	httpserver.Problem	"Malformed JSON"
//	@Failure		404					{object}	httpserver.Problem	"Unknown or deleted tenant, or a malformed id"
//	@Failure		409					{object}	httpserver.Problem	"Changed concurrently, no If-Match sent (concurrent_modification), or more workers would take all tenants past MAX_TOTAL_WORKERS (tenant_capacity_reached)"
//	@Failure		412					{object}	httpserver.Problem	"If-Match does not match the current version"
//	@Failure		415					{object}	httpserver.Problem	"Not JSON"
//	@Failure		422					{object}	httpserver.Problem	"workers is not an integer in 1..MAX_WORKERS"
//	@Failure		401					{object}	httpserver.Problem	"No or an invalid bearer token (when JWT_SECRET is set); WWW-Authenticate says why"
//	@Failure		403					{object}	httpserver.Problem	"A tenant token: this command needs the admin role"
//	@Failure		500					{object}	httpserver.Problem	"Internal error; the detail quotes the request id"
//	@Header			200					{string}	ETag				"The tenant's version as a strong entity tag (\"3\"): send it back in If-Match"
//	@Header			401,403				{string}	WWW-Authenticate	"Bearer challenge (RFC 6750) naming the error"
//	@Header			all					{string}	X-Request-ID		"The request id (the caller's X-Request-ID when it is 1..200 printable ASCII characters, else a new UUID); logs quote it"
//	@Router			/tenants/{id}/config/concurrency [put]
func (a *API) changeConcurrency(c *fiber.Ctx) error {
	id, err := tenantID(c)
	if err != nil {
		return err
	}
	var body concurrencyBody
	if err := decodeBody(c, &body); err != nil {
		return err
	}
	if body.Workers == nil {
		return httpserver.Unprocessable("invalid concurrency", httpserver.FieldError{Field: "workers", Detail: "is required"})
	}
	n, ok := parseInt(body.Workers)
	if !ok {
		return httpserver.Unprocessable("invalid concurrency", a.workersError())
	}
	expected := parseIfMatch(c.Get(fiber.HeaderIfMatch))
	st, err := a.tenants.ChangeConcurrency(c.UserContext(), a.meta(c), id, n, expected)
	if err != nil {
		return a.problem(c, err)
	}
	c.Set(fiber.HeaderETag, etag(st.Version))
	return c.JSON(ConcurrencyResponse{ID: st.ID, Workers: st.Workers, Version: st.Version})
}

// changeRateLimit godoc
//
//	@Summary		Set a tenant's message ingest limit
//	@Description	Records tenant.rate_limit_changed.v1: from then on POST /tenants/{id}/messages admits per_second messages a second with bursts of up to burst (token bucket), instead of TENANT_RATE_LIMIT / TENANT_RATE_BURST; per_second 0 means unlimited. Each command replica counts on its own, so N replicas admit up to N times the rate. Setting the tenant's current limit again records nothing and answers 200 with the current version.
//	@ID				setTenantRateLimit
//	@Tags			tenants
//	@Security		BearerAuth
//	@Accept			json
//	@Produce		json,application/problem+json
//	@Param			id					path		string				true	"Tenant id: a canonical 36-character UUID (any other form is 404)"
//	@Param			If-Match			header		string				false	"Expected version: the ETag of the last answer; weak tags never match"
//	@Param			X-Correlation-ID	header		string				false	"Correlation id recorded on the event"
//	@Param			body				body		RateLimitRequest	true	"Limit"
//	@Success		200					{object}	RateLimitResponse	"ETag: the new version"
//	@Failure		400					{object}	httpserver.Problem	"Malformed JSON"
//	@Failure		404					{object}	httpserver.Problem	"Unknown or deleted tenant, or a malformed id"
//	@Failure		409					{object}	httpserver.Problem	"Changed concurrently (no If-Match sent)"
//	@Failure		412					{object}	httpserver.Problem	"If-Match does not match the current version"
//	@Failure		415					{object}	httpserver.Problem	"Not JSON"
//	@Failure		422					{object}	httpserver.Problem	"per_second not an integer in 0..1000000, or burst not one in 1..1000000 (0 or absent when per_second is 0)"
//	@Failure		401					{object}	httpserver.Problem	"No or an invalid bearer token (when JWT_SECRET is set); WWW-Authenticate says why"
//	@Failure		403					{object}	httpserver.Problem	"A tenant token: this command needs the admin role"
//	@Failure		500					{object}	httpserver.Problem	"Internal error; the detail quotes the request id"
//	@Header			200					{string}	ETag				"The tenant's version as a strong entity tag (\"3\"): send it back in If-Match"
//	@Header			401,403				{string}	WWW-Authenticate	"Bearer challenge (RFC 6750) naming the error"
//	@Header			all					{string}	X-Request-ID		"The request id (the caller's X-Request-ID when it is 1..200 printable ASCII characters, else a new UUID); logs quote it"
//	@Router			/tenants/{id}/config/rate-limit [put]
func (a *API) changeRateLimit(c *fiber.Ctx) error {
	id, err := tenantID(c)
	if err != nil {
		return err
	}
	var body rateLimitBody
	if err := decodeBody(c, &body); err != nil {
		return err
	}
	var limit tenant.RateLimit
	var fields []httpserver.FieldError
	if body.PerSecond == nil {
		fields = append(fields, httpserver.FieldError{Field: "per_second", Detail: "is required"})
	} else if n, ok := parseInt(body.PerSecond); ok {
		limit.PerSecond = n
	} else {
		fields = append(fields, httpserver.FieldError{Field: "per_second", Detail: tenant.PerSecondRule})
	}
	if body.Burst != nil {
		if n, ok := parseInt(body.Burst); ok {
			limit.Burst = n
		} else {
			fields = append(fields, httpserver.FieldError{Field: "burst", Detail: tenant.BurstRule})
		}
	}
	if len(fields) > 0 {
		return httpserver.Unprocessable("invalid rate limit", fields...)
	}
	expected := parseIfMatch(c.Get(fiber.HeaderIfMatch))
	st, err := a.tenants.ChangeRateLimit(c.UserContext(), a.meta(c), id, limit, expected)
	if err != nil {
		return a.problem(c, err)
	}
	c.Set(fiber.HeaderETag, etag(st.Version))
	applied := a.tenants.Limits().RateFor(st)
	return c.JSON(RateLimitResponse{ID: st.ID, PerSecond: applied.PerSecond, Burst: applied.Burst, Version: st.Version})
}

// rotateCredentials godoc
//
//	@Summary		Rotate a tenant's broker credentials
//	@Description	Gives the tenant's own RabbitMQ user a new password (creating the user if the tenant has none, e.g. it was created while accounts were off) and closes the connections opened with the old one, which stops working. The new password is shown only in this answer. No body.
//	@ID				rotateTenantCredentials
//	@Tags			tenants
//	@Security		BearerAuth
//	@Produce		json,application/problem+json
//	@Param			id					path		string	true	"Tenant id: a canonical 36-character UUID (any other form is 404)"
//	@Param			X-Correlation-ID	header		string	false	"Correlation id logged with the rotation"
//	@Success		200					{object}	CredentialsResponse
//	@Failure		404					{object}	httpserver.Problem	"Unknown or deleted tenant, or a malformed id"
//	@Failure		501					{object}	httpserver.Problem	"Per-tenant broker accounts are off (RABBITMQ_MANAGEMENT_URL not set)"
//	@Failure		503					{object}	httpserver.Problem	"Broker management API unavailable; the old password may already have stopped working: retry"
//	@Failure		401					{object}	httpserver.Problem	"No or an invalid bearer token (when JWT_SECRET is set); WWW-Authenticate says why"
//	@Failure		403					{object}	httpserver.Problem	"A tenant token: this command needs the admin role"
//	@Failure		500					{object}	httpserver.Problem	"Internal error; the detail quotes the request id"
//	@Header			401,403				{string}	WWW-Authenticate	"Bearer challenge (RFC 6750) naming the error"
//	@Header			503					{integer}	Retry-After			"Seconds to wait before retrying"
//	@Header			all					{string}	X-Request-ID		"The request id (the caller's X-Request-ID when it is 1..200 printable ASCII characters, else a new UUID); logs quote it"
//	@Router			/tenants/{id}/credentials [post]
func (a *API) rotateCredentials(c *fiber.Ctx) error {
	id, err := tenantID(c)
	if err != nil {
		return err
	}
	creds, err := a.tenants.RotateCredentials(c.UserContext(), a.meta(c), id)
	if err != nil {
		return a.problem(c, err)
	}
	return c.JSON(CredentialsResponse{ID: id, AMQP: amqpCredentials(id, creds)})
}

// publishMessage godoc
//
//	@Summary		Publish a message to a tenant
//	@Description	Publishes the JSON object to tenant_{id}_queue and answers 202 only after the broker confirmed it. With an Idempotency-Key the message id is UUIDv5 of the key in the tenant's Idempotency-Key namespace (not the AMQP message_id namespace), so a retry is stored once; the key is bound to its first body for IDEMPOTENCY_KEY_TTL (another body is 409). Without a key, a fresh UUIDv7. Each tenant's messages are rate limited (token bucket per tenant and command replica: its own limit, else TENANT_RATE_LIMIT / TENANT_RATE_BURST); over it the answer is 429 with Retry-After and nothing is published.
//	@ID				publishMessage
//	@Tags			messages
//	@Security		BearerAuth
//	@Accept			json
//	@Produce		json,application/problem+json
//	@Param			id				path		string	true	"Tenant id: a canonical 36-character UUID (any other form is 404)"
//	@Param			Idempotency-Key	header		string	false	"Client key (1..200 printable ASCII characters)"
//	@Param			body			body		object	true	"Any JSON object"
//	@Success		202				{object}	MessageAccepted
//	@Failure		400				{object}	httpserver.Problem	"Malformed JSON or bad Idempotency-Key"
//	@Failure		404				{object}	httpserver.Problem	"Unknown or deleted tenant, or a malformed id"
//	@Failure		409				{object}	httpserver.Problem	"Idempotency-Key already used with another body within IDEMPOTENCY_KEY_TTL (idempotency_key_reused)"
//	@Failure		413				{object}	httpserver.Problem	"Body over MAX_MESSAGE_BYTES"
//	@Failure		415				{object}	httpserver.Problem	"Not JSON"
//	@Failure		422				{object}	httpserver.Problem	"Body is JSON but not an object, or cannot be stored (\\u0000, a lone surrogate escape, a number beyond PostgreSQL numeric, numbers that print over 256 KiB larger)"
//	@Failure		429				{object}	httpserver.Problem	"Over the tenant's rate limit (rate_limited); Retry-After: seconds until a message would be admitted"
//	@Failure		503				{object}	httpserver.Problem	"Broker unavailable, nothing published (broker_unavailable); or no confirm in time, the message may be stored: retry with the same Idempotency-Key (publish_unconfirmed)"
//	@Failure		401				{object}	httpserver.Problem	"No or an invalid bearer token (when JWT_SECRET is set); WWW-Authenticate says why"
//	@Failure		500				{object}	httpserver.Problem	"Internal error; the detail quotes the request id"
//	@Header			401				{string}	WWW-Authenticate	"Bearer challenge (RFC 6750) naming the error"
//	@Header			429,503			{integer}	Retry-After			"Seconds to wait before retrying"
//	@Header			all				{string}	X-Request-ID		"The request id (the caller's X-Request-ID when it is 1..200 printable ASCII characters, else a new UUID); logs quote it"
//	@Router			/tenants/{id}/messages [post]
func (a *API) publishMessage(c *fiber.Ctx) error {
	if a.guards.TenantAccess != nil {
		if err := a.guards.TenantAccess(c, c.Params("id")); err != nil {
			return err
		}
	}
	id, err := tenantID(c)
	if err != nil {
		return err
	}
	if err := requireJSON(c); err != nil {
		return err
	}
	key := c.Get(HeaderIdempotencyKey)
	if key != "" && !httpserver.ValidID(key) {
		return httpserver.BadRequest("invalid_idempotency_key", "Idempotency-Key must be 1..200 printable ASCII characters")
	}
	body := c.Body()
	// The same rule the consumer applies: a body the jsonb column would refuse is
	// rejected here rather than acknowledged and dead-lettered later.
	switch err := payload.Check(body); {
	case errors.Is(err, payload.ErrNulChar):
		return httpserver.Unprocessable(`request body contains \u0000, which cannot be stored`)
	case errors.Is(err, payload.ErrSurrogate), errors.Is(err, payload.ErrNumber), errors.Is(err, payload.ErrExpansion):
		// Valid JSON, but not storable (or not readable back at a sane size).
		return httpserver.Unprocessable("request body cannot be stored: " + err.Error())
	case err != nil:
		return httpserver.BadRequest("malformed_json", "request body is not valid JSON ("+err.Error()+")")
	}
	if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
		return httpserver.Unprocessable("request body must be a JSON object")
	}
	ctx := c.UserContext()
	st, err := a.tenants.Load(ctx, id)
	if err != nil {
		return err
	}
	if !st.Exists() {
		return a.problem(c, tenant.ErrNotFound)
	}
	if st.Status == tenant.StatusDraining {
		return a.problem(c, tenant.ErrDraining)
	}
	// Only now, so bad requests and unknown tenants take no token and hold no bucket.
	if err := a.admit(id, a.tenants.Limits().RateFor(st)); err != nil {
		return err
	}
	tenantUUID := uuid.MustParse(id) // canonical: tenantID parsed it
	if key != "" && a.keys != nil {
		switch err := a.keys.Claim(ctx, tenantUUID, key, body); {
		case errors.Is(err, idempotency.ErrReused):
			return httpserver.NewProblem(http.StatusConflict, "idempotency_key_reused",
				"this Idempotency-Key was used with a different body in the last "+a.keys.Window().String()+"; use a new key for a new message")
		case err != nil:
			return err
		}
	}
	msgID := uuid.Must(uuid.NewV7())
	if key != "" {
		msgID = msgid.FromIdempotencyKey(tenantUUID, key)
	}
	err = a.pub.Publish(ctx, broker.Message{ID: msgID.String(), TenantID: id, Body: body, CorrelationID: a.correlationID(c)})
	if errors.Is(err, broker.ErrNoQueue) {
		// The queue is gone: usually the tenant was deleted meanwhile.
		if st, lerr := a.tenants.Load(ctx, id); lerr == nil && !st.Exists() {
			return a.problem(c, tenant.ErrNotFound)
		}
		a.log.Error("tenant queue missing", "tenant_id", id, "request_id", httpserver.RequestID(c))
		return httpserver.NewProblem(http.StatusServiceUnavailable, "queue_unavailable", "the tenant's queue is not available; retry later").WithHeader(fiber.HeaderRetryAfter, "1")
	}
	if err != nil {
		return a.problem(c, err)
	}
	return c.Status(fiber.StatusAccepted).JSON(MessageAccepted{ID: msgID.String(), TenantID: id})
}

// admit takes a token from the tenant's bucket, or answers 429 with the whole seconds
// (at least 1) until one would be there: Retry-After has no finer unit.
func (a *API) admit(tenantID string, limit tenant.RateLimit) error {
	ok, wait := a.limiter.Allow(tenantID, limit.PerSecond, limit.Burst)
	if ok {
		return nil
	}
	secs := max(1, int((wait+time.Second-1)/time.Second))
	return httpserver.NewProblem(http.StatusTooManyRequests, "rate_limited",
		fmt.Sprintf("the tenant is over its message rate limit (%d per second, bursts of %d); retry in %d s", limit.PerSecond, limit.Burst, secs)).
		WithHeader(fiber.HeaderRetryAfter, strconv.Itoa(secs))
}

// tenantID parses the path id the way the query service does: a malformed id names no
// tenant, so it is the unknown tenant's 404.
func tenantID(c *fiber.Ctx) (string, error) {
	id, err := auth.PathTenantID(c.Params("id"))
	if err != nil {
		return "", err
	}
	return id.String(), nil
}

// workersError is the field problem for a workers value that is not an integer; it
// states the same bound the tenant limits enforce on integers.
func (a *API) workersError() httpserver.FieldError {
	return httpserver.FieldError{Field: "workers", Detail: a.tenants.Limits().WorkersRule()}
}

func (a *API) meta(c *fiber.Ctx) tenant.Meta {
	return tenant.Meta{CorrelationID: a.correlationID(c)}
}

// correlationID is the caller's X-Correlation-ID when it is sane, else the request id.
func (a *API) correlationID(c *fiber.Ctx) string {
	if v := c.Get(HeaderCorrelationID); httpserver.ValidID(v) {
		// c.Get aliases a pooled buffer; the id outlives the request in the event store.
		return strings.Clone(v)
	}
	return httpserver.RequestID(c)
}

// problem maps domain errors to HTTP problems; anything else is a 500 (logged by
// the server's error handler, never shown).
func (a *API) problem(c *fiber.Ctx, err error) error {
	var verr *tenant.ValidationError
	var serr *tenant.SelectorError
	var rerr *tenant.RedriveError
	switch {
	case errors.As(err, &verr):
		fields := make([]httpserver.FieldError, len(verr.Fields))
		for i, f := range verr.Fields {
			fields[i] = httpserver.FieldError{Field: f.Field, Detail: f.Detail}
		}
		return httpserver.Unprocessable("invalid command", fields...)
	case errors.Is(err, tenant.ErrNotFound):
		return auth.TenantNotFound()
	case errors.Is(err, tenant.ErrVersionMismatch):
		return httpserver.NewProblem(http.StatusPreconditionFailed, "version_mismatch", "If-Match does not match the tenant's current version")
	case errors.Is(err, tenant.ErrConflict):
		return httpserver.NewProblem(http.StatusConflict, "concurrent_modification", "the tenant was changed concurrently; reload and retry")
	case errors.Is(err, tenant.ErrDraining):
		return httpserver.NewProblem(http.StatusConflict, "tenant_draining", "the tenant is draining: it is deleted once its queue is empty and takes no more messages or changes to how it runs")
	case errors.As(err, &serr):
		return httpserver.BadRequest("invalid_selector", serr.Error())
	case errors.As(err, &rerr):
		a.log.Warn("dead-letter redrive stopped part way", "err", err, "moved", rerr.Moved, "matched", rerr.Matched, "request_id", httpserver.RequestID(c), "path", c.Path())
		return httpserver.NewProblem(http.StatusServiceUnavailable, "redrive_incomplete",
			fmt.Sprintf("the redrive stopped after %d of %d dead letters (the broker did not take the rest); they stay pending: run the same redrive again to move only them", rerr.Moved, rerr.Matched)).
			WithHeader(fiber.HeaderRetryAfter, "1")
	case errors.Is(err, tenant.ErrDuplicateName):
		return httpserver.NewProblem(http.StatusConflict, "duplicate_name", "a tenant with this name already exists")
	case errors.Is(err, tenant.ErrCapacity):
		detail := "the service cannot run that many more workers (MAX_TOTAL_WORKERS)"
		var cerr *tenant.CapacityError
		var lerr *tenant.TenantLimitError
		switch {
		case errors.As(err, &cerr):
			detail = fmt.Sprintf("other tenants already claim %d of the %d workers this service runs (MAX_TOTAL_WORKERS); %d more do not fit. Shrink or delete a tenant first", cerr.Others, cerr.Max, cerr.Requested)
		case errors.As(err, &lerr):
			detail = fmt.Sprintf("this service holds at most %d tenants (MAX_TENANTS) and %d are live; nothing was created. Delete a tenant first, or raise MAX_TENANTS once the broker's file limit allows it", lerr.Max, lerr.Live)
		}
		return httpserver.NewProblem(http.StatusConflict, "tenant_capacity_reached", detail)
	case errors.Is(err, broker.ErrUnconfirmed):
		// Sent, but no confirm: "nothing was published" would invite a duplicate.
		a.log.Warn("publish unconfirmed", "err", err, "request_id", httpserver.RequestID(c), "path", c.Path())
		return httpserver.NewProblem(http.StatusServiceUnavailable, "publish_unconfirmed", "the broker did not confirm the message in time: it may have been stored. Retrying with the same Idempotency-Key is safe (the message is stored once); a retry without one may store it twice").WithHeader(fiber.HeaderRetryAfter, "1")
	case errors.Is(err, tenant.ErrAccountsDisabled):
		return httpserver.NewProblem(http.StatusNotImplemented, "broker_accounts_disabled", "per-tenant broker accounts are off on this server (RABBITMQ_MANAGEMENT_URL is not set): producers share the services' broker account")
	case errors.Is(err, tenant.ErrNotRotated):
		a.log.Warn("broker credentials not rotated", "err", err, "request_id", httpserver.RequestID(c), "path", c.Path())
		return httpserver.NewProblem(http.StatusServiceUnavailable, "broker_unavailable", "the broker did not take the new credentials; the previous password may already have stopped working: retry").WithHeader(fiber.HeaderRetryAfter, "1")
	case errors.Is(err, broker.ErrInvalidMessage):
		return httpserver.BadRequest("invalid_message", "the message cannot be published: "+err.Error())
	case errors.Is(err, tenant.ErrUnavailable), errors.Is(err, broker.ErrUnavailable):
		a.log.Warn("broker unavailable", "err", err, "request_id", httpserver.RequestID(c), "path", c.Path())
		return httpserver.NewProblem(http.StatusServiceUnavailable, "broker_unavailable", "the message broker is unavailable; nothing was recorded or published, retry later").WithHeader(fiber.HeaderRetryAfter, "1")
	}
	return err
}
