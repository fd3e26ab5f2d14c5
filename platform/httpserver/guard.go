package httpserver

import (
	"bytes"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
)

// MaxIDLength bounds a client-chosen id (request or correlation id). Such ids travel
// into AMQP short strings (at most 255 bytes) and event metadata, so they are kept well
// below that.
const MaxIDLength = 200

// ValidID reports whether a client-chosen id may be used as is: 1..MaxIDLength bytes of
// printable ASCII. Anything else is replaced (request id) or ignored (correlation id),
// never passed on to the broker or the event store.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > MaxIDLength {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r > 0x7e }) < 0
}

// requestID keeps the caller's X-Request-ID when it is a valid id and assigns a UUID
// otherwise, so no header value reaches a log line, a broker property or an event
// unchecked.
func requestID(c *fiber.Ctx) error {
	// c.Get aliases a pooled buffer; the id outlives the handler (logs, publishes).
	rid := strings.Clone(c.Get(fiber.HeaderXRequestID))
	if !ValidID(rid) {
		rid = uuid.NewString()
	}
	c.Set(fiber.HeaderXRequestID, rid)
	c.Locals("requestid", rid)
	return c.Next()
}

// swaggerCSP lets Swagger UI run its own inline bootstrap and nothing from elsewhere.
const swaggerCSP = "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"

// secureHeaders stops browsers from sniffing API answers into something executable and
// proxies from caching one tenant's answer for another; the docs UI gets a CSP.
func secureHeaders(c *fiber.Ctx) error {
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderCacheControl, "no-store")
	if strings.HasPrefix(c.Path(), "/swagger") {
		c.Set(fiber.HeaderContentSecurityPolicy, swaggerCSP)
	}
	return c.Next()
}

// refuseAmbiguousLength rejects a request that carries both Content-Length and
// Transfer-Encoding: a proxy in front may frame it differently from this server
// (request smuggling). fasthttp silently lets Transfer-Encoding win, so the raw
// header block is checked.
func refuseAmbiguousLength(c *fiber.Ctx) error {
	raw := c.Request().Header.RawHeaders()
	if hasHeader(raw, "content-length") && hasHeader(raw, "transfer-encoding") {
		return NewProblem(fiber.StatusBadRequest, "ambiguous_length", "a request must not carry both Content-Length and Transfer-Encoding")
	}
	return c.Next()
}

// hasHeader reports whether the raw header block has a header named name (lower case).
func hasHeader(raw []byte, name string) bool {
	for line := range bytes.SplitSeq(raw, []byte("\n")) {
		k, _, ok := bytes.Cut(line, []byte(":"))
		if ok && strings.EqualFold(string(bytes.TrimSpace(k)), name) {
			return true
		}
	}
	return false
}
