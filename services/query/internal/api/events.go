package api

import (
	"encoding/json"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/multitenant/mtm/platform/auth"
	"github.com/multitenant/mtm/projections/cursor"
	"github.com/multitenant/mtm/projections/tenants"
	"github.com/multitenant/mtm/services/query/internal/history"
)

// Event is one event of a tenant's history.
type Event struct {
	// Type is the event's stable wire name, e.g. tenant.created.v1, tenant.paused.v1,
	// tenant.dead_letters_redriven.v1.
	Type string `json:"type" example:"tenant.concurrency_changed.v1"`
	// Version is the event's position in the tenant's stream (1, 2, ...), the number
	// ETags and If-Match carry.
	Version    int       `json:"version" example:"2"`
	OccurredAt time.Time `json:"occurred_at" format:"date-time"`
	// CorrelationID ties the event to the request that caused it (empty when none).
	CorrelationID string `json:"correlation_id" example:"6f1c2b9d-4e10-4a7e-9c61-0b7e3f5c8d0a"`
	// Data is the event's payload, as recorded.
	Data json.RawMessage `json:"data" swaggertype:"object"`
}

// EventPage is one page of a tenant's history, oldest first.
type EventPage struct {
	Data []Event `json:"data"`
	// NextCursor fetches the next page; null on the last page.
	NextCursor *string `json:"next_cursor" example:"AQQAAAAAAAAAAAAAAAAAAAAAAAA..." extensions:"x-nullable"`
}

// tenantEvents godoc
//
//	@Summary		A tenant's event history
//	@Description	Every event recorded for the tenant, oldest first (by version): creation, resizes, rate limits, pauses and resumes, drains, redrives and purges. Pages are keyset pages: pass next_cursor back as cursor; it is null on the last page. A deleted tenant's history is not served (404).
//	@ID				listTenantEvents
//	@Tags			tenants
//	@Security		BearerAuth
//	@Produce		json,application/problem+json
//	@Param			id		path		string	true	"tenant id: a canonical 36-character UUID (any other form is 404)"
//	@Param			cursor	query		string	false	"opaque cursor from a previous page's next_cursor (bound to this tenant)"
//	@Param			limit	query		int		false	"page size, 1..100 (default 20); anything else is 400"	minimum(1)	maximum(100)	default(20)
//	@Success		200		{object}	EventPage
//	@Failure		400		{object}	httpserver.Problem	"invalid limit, or a malformed, tampered or foreign cursor"
//	@Failure		401		{object}	httpserver.Problem	"missing or invalid token (when JWT_SECRET is set)"
//	@Failure		404		{object}	httpserver.Problem	"unknown or deleted tenant, a malformed id, or another tenant's (for a tenant token)"
//	@Failure		500		{object}	httpserver.Problem
//	@Header			401		{string}	WWW-Authenticate	"Bearer challenge (RFC 6750) naming the error"
//	@Header			all		{string}	X-Request-ID		"The request id (the caller's X-Request-ID when it is 1..200 printable ASCII characters, else a new UUID); logs quote it"
//	@Router			/tenants/{id}/events [get]
func (h *Handler) tenantEvents(c *fiber.Ctx) error {
	tenantID, err := auth.PathTenantID(c.Params("id"))
	if err != nil {
		return err
	}
	if err := h.checkTenant(c, tenantID); err != nil {
		return err
	}
	limit, err := parseLimit(c)
	if err != nil {
		return err
	}
	after, err := h.parseCursor(c, cursor.KindEvents, tenantID)
	if err != nil {
		return err
	}
	afterVersion := 0
	if after != nil {
		afterVersion = history.AfterVersion(*after)
	}
	ctx := c.UserContext()
	ok, err := tenants.Exists(ctx, h.db, tenantID)
	if err != nil {
		return err
	}
	if !ok {
		return auth.TenantNotFound()
	}
	page, more, err := history.Page(ctx, h.db, tenantID, afterVersion, limit, h.pageBytes)
	if err != nil {
		return err
	}
	out := EventPage{Data: make([]Event, 0, len(page))}
	for _, e := range page {
		out.Data = append(out.Data, Event{Type: e.Type, Version: e.Version, OccurredAt: e.OccurredAt, CorrelationID: e.CorrelationID, Data: e.Data})
	}
	if more {
		next := h.codec.Encode(cursor.KindEvents, tenantID, page[len(page)-1].Position())
		out.NextCursor = &next
	}
	return c.JSON(out)
}
