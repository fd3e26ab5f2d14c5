package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/multitenant/mtm/platform/auth"
	"github.com/multitenant/mtm/platform/httpserver"
	"github.com/multitenant/mtm/projections/cursor"
	"github.com/multitenant/mtm/projections/deadletters"
	"github.com/multitenant/mtm/projections/tenants"
)

// PayloadEncodingBase64 marks a dead letter whose body is not valid JSON: it is in
// payload_base64 instead of payload.
const PayloadEncodingBase64 = "base64"

// DeadLetter is one archived dead letter of a tenant.
type DeadLetter struct {
	// ID is the id the message would have been stored under (derived from its
	// message_id, as for stored messages).
	ID        string `json:"id" example:"01890a5d-ac96-774b-bcce-b302099a8057" format:"uuid"`
	MessageID string `json:"message_id" example:"order-4711"`
	// Reason is a code: invalid_json, too_large, rejected_by_database (the consumer's
	// own), or the broker's delivery_limit, expired, maxlen, rejected.
	Reason       string `json:"reason" example:"invalid_json"`
	ReasonDetail string `json:"reason_detail" example:"unexpected end of JSON input"`
	// Status: pending (not acted on; the only status redrive and purge pick), redriven, purged.
	Status string `json:"status" example:"pending" enums:"pending,redriven,purged"`
	// Deaths counts how often the message was dead-lettered (again after a redrive).
	Deaths              int       `json:"deaths" example:"1"`
	FirstDeadLetteredAt time.Time `json:"first_dead_lettered_at" format:"date-time"`
	LastDeadLetteredAt  time.Time `json:"last_dead_lettered_at" format:"date-time"`
	// Headers are the AMQP headers of the dead-lettered delivery.
	Headers json.RawMessage `json:"headers" swaggertype:"object"`
	// Size is the body's size in bytes.
	Size int `json:"size" example:"17"`
	// Payload is the body, byte for byte, when it is valid JSON (absent otherwise).
	Payload json.RawMessage `json:"payload,omitempty" swaggertype:"object" extensions:"x-any-json"`
	// PayloadBase64 is the body in standard base64 when it is not valid JSON (absent otherwise).
	PayloadBase64 *string `json:"payload_base64,omitempty" example:"eyJicm9rZW4i"`
	// PayloadEncoding is "base64" exactly when PayloadBase64 is set.
	PayloadEncoding string `json:"payload_encoding,omitempty" example:"base64" enums:"base64"`
}

// DeadLetterPage is one page of a tenant's dead letters, oldest first.
type DeadLetterPage struct {
	Data []DeadLetter `json:"data"`
	// NextCursor fetches the next page; null on the last page.
	NextCursor *string `json:"next_cursor" example:"AQMAAAAAAAAAAAAAAAAAAAAAGDk..." extensions:"x-nullable"`
}

// tenantDeadLetters godoc
//
//	@Summary		List a tenant's dead letters
//	@Description	The tenant's archived dead letters (every message its DLQ received), oldest first (by first_dead_lettered_at, then id), optionally only those with one reason code and/or one status. Pages are keyset pages like the messages list: pass next_cursor back as cursor with the same filters; it is null on the last page. A page also ends early rather than exceed PAGE_MAX_BYTES of bodies. A body that is valid JSON is in payload exactly as received; any other body is in payload_base64 with payload_encoding "base64".
//	@ID				listTenantDeadLetters
//	@Tags			dead-letters
//	@Security		BearerAuth
//	@Produce		json,application/problem+json
//	@Param			id		path		string	true	"tenant id: a canonical 36-character UUID (any other form is 404)"
//	@Param			cursor	query		string	false	"opaque cursor from a previous page's next_cursor (bound to this tenant)"
//	@Param			limit	query		int		false	"page size, 1..100 (default 20); anything else is 400"	minimum(1)	maximum(100)	default(20)
//	@Param			reason	query		string	false	"only this reason code (exact match), e.g. invalid_json, delivery_limit, expired"
//	@Param			status	query		string	false	"only this status"	Enums(pending, redriven, purged)
//	@Success		200		{object}	DeadLetterPage
//	@Failure		400		{object}	httpserver.Problem	"invalid limit or status, or a malformed, tampered or foreign cursor"
//	@Failure		401		{object}	httpserver.Problem	"missing or invalid token (when JWT_SECRET is set)"
//	@Failure		404		{object}	httpserver.Problem	"unknown or deleted tenant, a malformed id, or another tenant's (for a tenant token)"
//	@Failure		500		{object}	httpserver.Problem
//	@Header			401		{string}	WWW-Authenticate	"Bearer challenge (RFC 6750) naming the error"
//	@Header			all		{string}	X-Request-ID		"The request id (the caller's X-Request-ID when it is 1..200 printable ASCII characters, else a new UUID); logs quote it"
//	@Router			/tenants/{id}/dead-letters [get]
func (h *Handler) tenantDeadLetters(c *fiber.Ctx) error {
	tenantID, err := auth.PathTenantID(c.Params("id"))
	if err != nil {
		return err
	}
	// Access first, as for messages: a foreign tenant gets the unknown tenant's 404.
	if err := h.checkTenant(c, tenantID); err != nil {
		return err
	}
	limit, err := parseLimit(c)
	if err != nil {
		return err
	}
	f := deadletters.Filter{Reason: c.Query("reason"), Status: c.Query("status")}
	if f.Status != "" && !deadletters.ValidStatus(f.Status) {
		detail := fmt.Sprintf("status must be one of %s, %s, %s", deadletters.StatusPending, deadletters.StatusRedriven, deadletters.StatusPurged)
		return httpserver.BadRequest("invalid_status", detail).
			WithErrors(httpserver.FieldError{Field: "status", Detail: detail})
	}
	after, err := h.parseCursor(c, cursor.KindDeadLetters, tenantID)
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
	page, more, err := deadletters.Page(ctx, h.db, tenantID, f, after, limit, h.pageBytes)
	if err != nil {
		return err
	}
	var next *string
	if more {
		s := h.codec.Encode(cursor.KindDeadLetters, tenantID, page[len(page)-1].Position())
		next = &s
	}
	body, err := encodeDeadLetters(page, next)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(body)
}

// encodeDeadLetters writes a DeadLetterPage by hand because encoding/json re-encodes a
// json.RawMessage (compacts it, escapes <, > and &): a JSON body goes out byte for byte
// as the producer sent it, spliced in as the item's last member.
func encodeDeadLetters(page []deadletters.DeadLetter, next *string) ([]byte, error) {
	size := 64
	for _, d := range page {
		size += 320 + len(d.Headers) + len(d.ReasonDetail) + base64.StdEncoding.EncodedLen(len(d.Body))
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	buf.WriteString(`{"data":[`)
	for i, d := range page {
		if i > 0 {
			buf.WriteByte(',')
		}
		item := DeadLetter{
			ID: d.ID.String(), MessageID: d.MessageID, Reason: d.Reason, ReasonDetail: d.ReasonDetail,
			Status: d.Status, Deaths: d.Deaths, FirstDeadLetteredAt: d.FirstDeadLetteredAt,
			LastDeadLetteredAt: d.LastDeadLetteredAt, Headers: d.Headers, Size: d.Size,
		}
		if len(item.Headers) == 0 {
			item.Headers = json.RawMessage(`{}`)
		}
		// encoding/json accepts invalid UTF-8 inside strings; such a body would make the
		// whole answer invalid, so it goes out as base64 like any other non-JSON body.
		asJSON := utf8.Valid(d.Body) && json.Valid(d.Body)
		if !asJSON {
			b64 := base64.StdEncoding.EncodeToString(d.Body)
			item.PayloadBase64, item.PayloadEncoding = &b64, PayloadEncodingBase64
		}
		b, err := json.Marshal(item)
		if err != nil {
			return nil, fmt.Errorf("encode dead letter %s: %w", d.ID, err)
		}
		if !asJSON {
			buf.Write(b)
			continue
		}
		buf.Write(b[:len(b)-1]) // without the closing brace
		buf.WriteString(`,"payload":`)
		buf.Write(d.Body)
		buf.WriteByte('}')
	}
	buf.WriteString(`],"next_cursor":`)
	n, err := json.Marshal(next)
	if err != nil {
		return nil, fmt.Errorf("encode next cursor: %w", err)
	}
	buf.Write(n)
	buf.WriteByte('}')
	return buf.Bytes(), nil
}
