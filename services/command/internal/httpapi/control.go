package httpapi

import (
	"context"
	"encoding/json"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/multitenant/mtm/events"
	"github.com/multitenant/mtm/platform/httpserver"
	"github.com/multitenant/mtm/services/command/internal/tenant"
)

// StatusResponse is a tenant's status and version after a pause, resume or drain.
type StatusResponse struct {
	ID      string `json:"id" example:"0190f2a4-7b7e-7c3a-9d4e-1a2b3c4d5e6f" format:"uuid"`
	Status  string `json:"status" example:"paused" enums:"active,paused,draining"`
	Version int    `json:"version" example:"4"`
}

// DeadLetterSelectorRequest is the body of the dead-letter redrive and purge: either
// ids, or a reason and/or max (oldest first). Only pending dead letters are picked.
type DeadLetterSelectorRequest struct {
	// Dead letter ids (as listed by the query service): 1..1000 canonical UUIDs. Not
	// with reason or max.
	IDs []string `json:"ids,omitempty" example:"0190f2a4-8000-7000-8000-0000000000aa"`
	// Reason code (invalid_json, too_large, rejected_by_database, delivery_limit,
	// expired, maxlen, rejected); absent with max: any reason.
	Reason string `json:"reason,omitempty" example:"rejected_by_database"`
	// How many of the oldest matching dead letters: 1..10000, default 1000.
	Max int `json:"max,omitempty" example:"1000" minimum:"1" maximum:"10000"`
	// Only count what would be picked; nothing changes and nothing is recorded.
	DryRun bool `json:"dry_run,omitempty" example:"false"`
}

// RedriveResponse answers a redrive: how many dead letters were picked and, for a real
// run, the tenant's version after it (the event recording it).
type RedriveResponse struct {
	Matched int `json:"matched" example:"12"`
	// Absent on a dry run.
	Version *int `json:"version,omitempty" example:"7"`
}

// PurgeResponse answers a purge (or its dry run): how many dead letters were (or would
// be) purged and the tenant's version after it.
type PurgeResponse struct {
	Purged  int `json:"purged" example:"12"`
	Version int `json:"version" example:"8"`
}

// pauseTenant godoc
//
//	@Summary		Pause a tenant
//	@Description	Records tenant.paused.v1: the consumer stops the tenant's workers after their in-flight messages commit; the queue keeps accepting messages (HTTP and AMQP) and GET shows status paused with workers.current 0. The desired worker count is kept (a resize while paused changes only it). Pausing a paused tenant records nothing and answers 200 with the current version.
//	@ID				pauseTenant
//	@Tags			tenants
//	@Security		BearerAuth
//	@Produce		json,application/problem+json
//	@Param			id					path		string				true	"Tenant id: a canonical 36-character UUID (any other form is 404)"
//	@Param			If-Match			header		string				false	"Expected version"
//	@Param			X-Correlation-ID	header		string				false	"Correlation id recorded on the event"
//	@Success		200					{object}	StatusResponse		"ETag: the version"
//	@Failure		404					{object}	httpserver.Problem	"Unknown or deleted tenant, or a malformed id"
//	@Failure		409					{object}	httpserver.Problem	"The tenant is draining (tenant_draining), or changed concurrently (concurrent_modification)"
//	@Failure		412					{object}	httpserver.Problem	"If-Match does not match the current version"
//	@Failure		401					{object}	httpserver.Problem	"No or an invalid bearer token (when JWT_SECRET is set); WWW-Authenticate says why"
//	@Failure		403					{object}	httpserver.Problem	"A tenant token: this command needs the admin role"
//	@Failure		500					{object}	httpserver.Problem	"Internal error; the detail quotes the request id"
//	@Header			200					{string}	ETag				"The tenant's version as a strong entity tag (\"3\"): send it back in If-Match"
//	@Header			401,403				{string}	WWW-Authenticate	"Bearer challenge (RFC 6750) naming the error"
//	@Header			all					{string}	X-Request-ID		"The request id (the caller's X-Request-ID when it is 1..200 printable ASCII characters, else a new UUID); logs quote it"
//	@Router			/tenants/{id}/pause [post]
func (a *API) pauseTenant(c *fiber.Ctx) error {
	return a.statusCommand(c, a.tenants.Pause)
}

// resumeTenant godoc
//
//	@Summary		Resume a paused tenant
//	@Description	Records tenant.resumed.v1: the consumer runs the tenant's desired workers again and works off what queued up while it was paused. Resuming an active tenant records nothing and answers 200 with the current version.
//	@ID				resumeTenant
//	@Tags			tenants
//	@Security		BearerAuth
//	@Produce		json,application/problem+json
//	@Param			id					path		string				true	"Tenant id: a canonical 36-character UUID (any other form is 404)"
//	@Param			If-Match			header		string				false	"Expected version"
//	@Param			X-Correlation-ID	header		string				false	"Correlation id recorded on the event"
//	@Success		200					{object}	StatusResponse		"ETag: the version"
//	@Failure		404					{object}	httpserver.Problem	"Unknown or deleted tenant, or a malformed id"
//	@Failure		409					{object}	httpserver.Problem	"The tenant is draining (tenant_draining), or changed concurrently (concurrent_modification)"
//	@Failure		412					{object}	httpserver.Problem	"If-Match does not match the current version"
//	@Failure		401					{object}	httpserver.Problem	"No or an invalid bearer token (when JWT_SECRET is set); WWW-Authenticate says why"
//	@Failure		403					{object}	httpserver.Problem	"A tenant token: this command needs the admin role"
//	@Failure		500					{object}	httpserver.Problem	"Internal error; the detail quotes the request id"
//	@Header			200					{string}	ETag				"The tenant's version as a strong entity tag (\"3\"): send it back in If-Match"
//	@Header			401,403				{string}	WWW-Authenticate	"Bearer challenge (RFC 6750) naming the error"
//	@Header			all					{string}	X-Request-ID		"The request id (the caller's X-Request-ID when it is 1..200 printable ASCII characters, else a new UUID); logs quote it"
//	@Router			/tenants/{id}/resume [post]
func (a *API) resumeTenant(c *fiber.Ctx) error {
	return a.statusCommand(c, a.tenants.Resume)
}

func (a *API) statusCommand(c *fiber.Ctx, cmd func(ctx context.Context, meta tenant.Meta, id string, expected *int) (tenant.State, error)) error {
	id, err := tenantID(c)
	if err != nil {
		return err
	}
	st, err := cmd(c.UserContext(), a.meta(c), id, parseIfMatch(c.Get(fiber.HeaderIfMatch)))
	if err != nil {
		return a.problem(c, err)
	}
	c.Set(fiber.HeaderETag, etag(st.Version))
	return c.JSON(StatusResponse{ID: st.ID, Status: string(st.Status), Version: st.Version})
}

// deleteTenant godoc
//
//	@Summary		Delete a tenant, at once or after draining it
//	@Description	Plain (no drain): records tenant.deleted.v1 and frees the name; the consumer stops the workers and removes the queues, and with them every message still queued, every stored message of the tenant and its dead letters. Nothing of the tenant's data is kept. Works on active, paused and draining tenants.
//	@Description
//	@Description	With drain=true: records tenant.deletion_requested.v1 and answers 202 with status draining. HTTP ingest then answers 409 tenant_draining; with per-tenant broker accounts on, the tenant's broker user loses its write permission and its connections, so AMQP producers cannot add either. The consumer keeps storing (also if the tenant was paused) until the queue is empty (ready and unacknowledged 0), and then the command service records tenant.deleted.v1 as for a plain delete. If that does not happen within drain_timeout, the tenant stays draining (GET shows drain.timed_out) until it is deleted plainly or asked to drain again, which re-arms the deadline.
//	@ID				deleteTenant
//	@Tags			tenants
//	@Security		BearerAuth
//	@Produce		json,application/problem+json
//	@Param			id					path		string				true	"Tenant id: a canonical 36-character UUID (any other form is 404)"
//	@Param			drain				query		bool				false	"true: delete only once the queue is empty"
//	@Param			drain_timeout		query		string				false	"With drain=true: how long to wait for the queue to empty, a duration 1s..24h (default 5m)"
//	@Param			If-Match			header		string				false	"Expected version"
//	@Param			X-Correlation-ID	header		string				false	"Correlation id recorded on the event (and, for a drain, on the final tenant.deleted.v1)"
//	@Success		202					{object}	DeleteResponse		"status deleting, or draining with drain=true; ETag: the version"
//	@Failure		400					{object}	httpserver.Problem	"drain is not true or false, or drain_timeout is not a duration in 1s..24h or given without drain=true (invalid_query)"
//	@Failure		404					{object}	httpserver.Problem	"Unknown or already deleted tenant, or a malformed id"
//	@Failure		409					{object}	httpserver.Problem	"Changed concurrently"
//	@Failure		412					{object}	httpserver.Problem	"If-Match does not match the current version"
//	@Failure		401					{object}	httpserver.Problem	"No or an invalid bearer token (when JWT_SECRET is set); WWW-Authenticate says why"
//	@Failure		403					{object}	httpserver.Problem	"A tenant token: this command needs the admin role"
//	@Failure		500					{object}	httpserver.Problem	"Internal error; the detail quotes the request id"
//	@Header			202					{string}	ETag				"The tenant's version as a strong entity tag (\"3\"): send it back in If-Match"
//	@Header			401,403				{string}	WWW-Authenticate	"Bearer challenge (RFC 6750) naming the error"
//	@Header			all					{string}	X-Request-ID		"The request id (the caller's X-Request-ID when it is 1..200 printable ASCII characters, else a new UUID); logs quote it"
//	@Router			/tenants/{id} [delete]
func (a *API) deleteTenant(c *fiber.Ctx) error {
	id, err := tenantID(c)
	if err != nil {
		return err
	}
	drain := false
	if raw := c.Query("drain"); raw != "" {
		if drain, err = strconv.ParseBool(raw); err != nil || (raw != "true" && raw != "false") {
			return httpserver.BadRequest("invalid_query", "drain must be true or false")
		}
	}
	rawTimeout := c.Query("drain_timeout")
	if rawTimeout != "" && !drain {
		return httpserver.BadRequest("invalid_query", "drain_timeout is only valid with drain=true")
	}
	expected := parseIfMatch(c.Get(fiber.HeaderIfMatch))
	if drain {
		timeout, err := tenant.ParseDrainTimeout(rawTimeout)
		if err != nil {
			return httpserver.BadRequest("invalid_query", "drain_timeout "+err.Error())
		}
		st, err := a.tenants.RequestDeletion(c.UserContext(), a.meta(c), id, timeout, expected)
		if err != nil {
			return a.problem(c, err)
		}
		c.Set(fiber.HeaderETag, etag(st.Version))
		return c.Status(fiber.StatusAccepted).JSON(DeleteResponse{ID: st.ID, Status: string(tenant.StatusDraining), Version: st.Version})
	}
	st, err := a.tenants.Delete(c.UserContext(), a.meta(c), id, expected)
	if err != nil {
		return a.problem(c, err)
	}
	c.Set(fiber.HeaderETag, etag(st.Version))
	return c.Status(fiber.StatusAccepted).JSON(DeleteResponse{ID: st.ID, Status: "deleting", Version: st.Version})
}

// redriveDeadLetters godoc
//
//	@Summary		Redrive dead letters
//	@Description	Picks the tenant's pending dead letters by ids, or by reason and/or max (oldest first). With dry_run only counts them (200). Otherwise records tenant.dead_letters_redriven.v1 (selector, count, correlation id), publishes each original body with its original message id into tenant_{id}_queue with publisher confirms, at most REDRIVE_RATE a second, marks them redriven and answers 202 once all are confirmed. The consumer stores a message id once, so a redriven message already stored is not stored again; one that fails again comes back as a pending dead letter with its death count raised. Running the same redrive again moves nothing twice (only pending dead letters are picked). Nothing picked records nothing (202, matched 0, the current version).
//	@Description
//	@Description	If the broker goes away part way the answer is 503 redrive_incomplete, saying how many moved: those are marked, the rest stay pending, and the same redrive run again moves only them.
//	@ID				redriveDeadLetters
//	@Tags			dead-letters
//	@Security		BearerAuth
//	@Accept			json
//	@Produce		json,application/problem+json
//	@Param			id					path		string						true	"Tenant id: a canonical 36-character UUID (any other form is 404)"
//	@Param			If-Match			header		string						false	"Expected version"
//	@Param			X-Correlation-ID	header		string						false	"Correlation id recorded on the event and on the republished messages"
//	@Param			body				body		DeadLetterSelectorRequest	true	"Selector"
//	@Success		200					{object}	RedriveResponse				"Dry run"
//	@Success		202					{object}	RedriveResponse				"Republished and marked; ETag: the version"
//	@Failure		400					{object}	httpserver.Problem			"Malformed JSON, or a selector that is empty, mixes ids with reason/max, has over 1000 ids or ones that are not canonical UUIDs, or a max outside 1..10000 (invalid_selector)"
//	@Failure		404					{object}	httpserver.Problem			"Unknown or deleted tenant, or a malformed id"
//	@Failure		409					{object}	httpserver.Problem			"The tenant is draining (tenant_draining), or changed concurrently (concurrent_modification)"
//	@Failure		412					{object}	httpserver.Problem			"If-Match does not match the current version"
//	@Failure		415					{object}	httpserver.Problem			"Not JSON"
//	@Failure		422					{object}	httpserver.Problem			"A field of the wrong type, or an unknown field"
//	@Failure		503					{object}	httpserver.Problem			"The broker did not take every message (redrive_incomplete: the detail says how many moved), or is unavailable"
//	@Failure		401					{object}	httpserver.Problem			"No or an invalid bearer token (when JWT_SECRET is set); WWW-Authenticate says why"
//	@Failure		403					{object}	httpserver.Problem			"A tenant token: this command needs the admin role"
//	@Failure		500					{object}	httpserver.Problem			"Internal error; the detail quotes the request id"
//	@Header			202					{string}	ETag						"The tenant's version as a strong entity tag (\"3\"): send it back in If-Match"
//	@Header			401,403				{string}	WWW-Authenticate			"Bearer challenge (RFC 6750) naming the error"
//	@Header			503					{integer}	Retry-After					"Seconds to wait before retrying"
//	@Header			all					{string}	X-Request-ID				"The request id (the caller's X-Request-ID when it is 1..200 printable ASCII characters, else a new UUID); logs quote it"
//	@Router			/tenants/{id}/dead-letters/redrive [post]
func (a *API) redriveDeadLetters(c *fiber.Ctx) error {
	id, sel, dryRun, err := a.selectorRequest(c)
	if err != nil {
		return err
	}
	res, err := a.tenants.RedriveDeadLetters(c.UserContext(), a.meta(c), id, sel, dryRun, parseIfMatch(c.Get(fiber.HeaderIfMatch)))
	if err != nil {
		return a.problem(c, err)
	}
	if dryRun {
		return c.JSON(RedriveResponse{Matched: res.Matched})
	}
	c.Set(fiber.HeaderETag, etag(res.Version))
	return c.Status(fiber.StatusAccepted).JSON(RedriveResponse{Matched: res.Matched, Version: &res.Version})
}

// purgeDeadLetters godoc
//
//	@Summary		Purge dead letters
//	@Description	Marks the tenant's pending dead letters picked by the selector (ids, or reason and/or max, oldest first) purged and records tenant.dead_letters_purged.v1 with their count, in one transaction. Purged dead letters stay listed (status purged) and are never redriven. With dry_run only counts them. Works on any live tenant, draining included. Nothing picked records nothing.
//	@ID				purgeDeadLetters
//	@Tags			dead-letters
//	@Security		BearerAuth
//	@Accept			json
//	@Produce		json,application/problem+json
//	@Param			id					path		string						true	"Tenant id: a canonical 36-character UUID (any other form is 404)"
//	@Param			If-Match			header		string						false	"Expected version"
//	@Param			X-Correlation-ID	header		string						false	"Correlation id recorded on the event"
//	@Param			body				body		DeadLetterSelectorRequest	true	"Selector"
//	@Success		200					{object}	PurgeResponse				"ETag: the version"
//	@Failure		400					{object}	httpserver.Problem			"Malformed JSON or an invalid selector (invalid_selector)"
//	@Failure		404					{object}	httpserver.Problem			"Unknown or deleted tenant, or a malformed id"
//	@Failure		409					{object}	httpserver.Problem			"Changed concurrently (concurrent_modification)"
//	@Failure		412					{object}	httpserver.Problem			"If-Match does not match the current version"
//	@Failure		415					{object}	httpserver.Problem			"Not JSON"
//	@Failure		422					{object}	httpserver.Problem			"A field of the wrong type, or an unknown field"
//	@Failure		401					{object}	httpserver.Problem			"No or an invalid bearer token (when JWT_SECRET is set); WWW-Authenticate says why"
//	@Failure		403					{object}	httpserver.Problem			"A tenant token: this command needs the admin role"
//	@Failure		500					{object}	httpserver.Problem			"Internal error; the detail quotes the request id"
//	@Header			200					{string}	ETag						"The tenant's version as a strong entity tag (\"3\"): send it back in If-Match"
//	@Header			401,403				{string}	WWW-Authenticate			"Bearer challenge (RFC 6750) naming the error"
//	@Header			all					{string}	X-Request-ID				"The request id (the caller's X-Request-ID when it is 1..200 printable ASCII characters, else a new UUID); logs quote it"
//	@Router			/tenants/{id}/dead-letters [delete]
func (a *API) purgeDeadLetters(c *fiber.Ctx) error {
	id, sel, dryRun, err := a.selectorRequest(c)
	if err != nil {
		return err
	}
	res, err := a.tenants.PurgeDeadLetters(c.UserContext(), a.meta(c), id, sel, dryRun, parseIfMatch(c.Get(fiber.HeaderIfMatch)))
	if err != nil {
		return a.problem(c, err)
	}
	c.Set(fiber.HeaderETag, etag(res.Version))
	return c.JSON(PurgeResponse{Purged: res.Matched, Version: res.Version})
}

type selectorBody struct {
	IDs    []string        `json:"ids"`
	Reason string          `json:"reason"`
	Max    json.RawMessage `json:"max"`
	DryRun bool            `json:"dry_run"`
}

// selectorRequest reads the tenant id and the selector body of a redrive or purge.
func (a *API) selectorRequest(c *fiber.Ctx) (string, events.DeadLetterSelector, bool, error) {
	id, err := tenantID(c)
	if err != nil {
		return "", events.DeadLetterSelector{}, false, err
	}
	var body selectorBody
	if err := decodeBody(c, &body); err != nil {
		return "", events.DeadLetterSelector{}, false, err
	}
	sel := events.DeadLetterSelector{IDs: body.IDs, Reason: body.Reason}
	if body.Max != nil {
		n, ok := parseInt(body.Max)
		if !ok {
			return "", sel, false, httpserver.BadRequest("invalid_selector", "max must be an integer between 1 and 10000")
		}
		if n == 0 {
			// 0 would read as "absent" and take the default: refuse it instead.
			return "", sel, false, httpserver.BadRequest("invalid_selector", "max must be an integer between 1 and 10000")
		}
		sel.Max = n
	}
	return id, sel, body.DryRun, nil
}
