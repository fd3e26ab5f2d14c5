// Package payload owns the rule for what a tenant message body must be to be stored:
// the command service checks it before publishing and the consumer before inserting,
// so nothing accepted upstream is refused by the database later.
package payload

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// Problems of a body; a body with any of them can never be stored in the jsonb column.
var (
	ErrNotJSON     = errors.New("body is not valid JSON")
	ErrInvalidUTF8 = errors.New("body is not valid UTF-8")
	ErrNulChar     = errors.New(`body contains \u0000, which jsonb cannot store`)
)

// Check reports why a message body cannot be stored as jsonb, or nil. encoding/json
// accepts invalid UTF-8 and \u0000; jsonb accepts neither, hence the extra checks.
func Check(b []byte) error {
	if !utf8.Valid(b) {
		return ErrInvalidUTF8
	}
	if !json.Valid(b) {
		return ErrNotJSON
	}
	if hasNulEscape(b) {
		return ErrNulChar
	}
	return nil
}

// hasNulEscape finds a \u0000 escape in valid JSON. A backslash only occurs inside
// strings and always starts a two-character escape, so skipping the character after
// each backslash keeps "\\u0000" (an escaped backslash, then text) from matching.
func hasNulEscape(b []byte) bool {
	for i := bytes.IndexByte(b, '\\'); i >= 0 && i+1 < len(b); {
		if b[i+1] == 'u' && bytes.HasPrefix(b[i+2:], []byte("0000")) {
			return true
		}
		next := bytes.IndexByte(b[i+2:], '\\')
		if next < 0 {
			return false
		}
		i += 2 + next
	}
	return false
}
