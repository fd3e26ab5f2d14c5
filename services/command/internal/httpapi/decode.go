package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/multitenant/mtm/platform/httpserver"
)

// requireJSON rejects bodies that are not declared as JSON (415). Parameters such
// as charset are allowed, and so are structured +json types.
func requireJSON(c *fiber.Ctx) error {
	mt, _, err := mime.ParseMediaType(c.Get(fiber.HeaderContentType))
	if err == nil && (mt == fiber.MIMEApplicationJSON || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))) {
		return nil
	}
	return httpserver.NewProblem(fiber.StatusUnsupportedMediaType, "unsupported_media_type", "request body must be application/json")
}

// decodeBody decodes a JSON object into dst strictly: malformed JSON or trailing
// data is 400, a body that is not an object or has unknown fields is 422. Numbers
// stay json.Number so integers can be told from 3.5 and 1e9.
func decodeBody(c *fiber.Ctx, dst any) error {
	if err := requireJSON(c); err != nil {
		return err
	}
	// encoding/json would silently turn invalid UTF-8 into U+FFFD (a tenant name the
	// client never sent); RFC 8259 JSON is UTF-8, so such a body is malformed.
	if !utf8.Valid(c.Body()) {
		return httpserver.BadRequest("malformed_json", "request body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(c.Body()))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(dst); err != nil {
		return decodeProblem(err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return httpserver.BadRequest("malformed_json", "request body must hold exactly one JSON value")
	}
	return nil
}

func decodeProblem(err error) error {
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntaxErr):
		return httpserver.BadRequest("malformed_json", fmt.Sprintf("request body is not valid JSON (at byte %d)", syntaxErr.Offset))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return httpserver.BadRequest("malformed_json", "request body is empty or truncated JSON")
	case errors.As(err, &typeErr) && typeErr.Field == "":
		return httpserver.Unprocessable("request body must be a JSON object")
	case errors.As(err, &typeErr):
		return httpserver.Unprocessable("invalid field", httpserver.FieldError{Field: typeErr.Field, Detail: "has the wrong type"})
	}
	// encoding/json reports unknown fields only through its message text.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		field, _ := strconv.Unquote(name)
		return httpserver.Unprocessable("request body has an unknown field", httpserver.FieldError{Field: field, Detail: "unknown field"})
	}
	return httpserver.BadRequest("malformed_json", "request body is not valid JSON")
}

// parseString reads a required JSON string field.
func parseString(raw json.RawMessage) (string, string) {
	if raw == nil {
		return "", "is required"
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", "must be a string"
	}
	return s, ""
}

// parseInt reads a JSON integer literal: 3.5, 1e9, "5", true and null are refused,
// whatever their value, because a client sending them has a bug worth reporting.
func parseInt(raw json.RawMessage) (int, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return 0, false
	}
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	i, err := strconv.ParseInt(n.String(), 10, 64)
	if err != nil || i < math.MinInt32 || i > math.MaxInt32 {
		return 0, false
	}
	return int(i), true
}

// parseIfMatch returns the version an If-Match header requires, or nil without one.
// It takes one strong entity tag ("3", or bare 3); "*" matches any version. If-Match
// uses strong comparison (RFC 9110 13.1.1), so a weak tag (W/"3"), a list, or a value
// that is not a version matches nothing: it is returned as -1 and yields 412.
func parseIfMatch(h string) *int {
	h = strings.TrimSpace(h)
	if h == "" || h == "*" {
		return nil
	}
	v, err := strconv.Atoi(strings.Trim(h, `"`))
	if err != nil || v < 1 || strings.HasPrefix(h, "W/") {
		v = -1
	}
	return &v
}

// etag renders a version as a strong entity tag.
func etag(version int) string { return `"` + strconv.Itoa(version) + `"` }
