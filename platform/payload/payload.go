// Package payload owns the rule for what a tenant message body must be to be stored:
// the command service checks it before publishing and the consumer before inserting,
// so nothing accepted upstream is refused by the database later, and nothing stored
// grows without bound when it is read back.
package payload

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Problems of a body; a body with any of them is never stored.
var (
	ErrNotJSON     = errors.New("body is not valid JSON")
	ErrInvalidUTF8 = errors.New("body is not valid UTF-8")
	ErrNulChar     = errors.New(`body contains \u0000, which jsonb cannot store`)
	ErrSurrogate   = errors.New(`body contains a \u escape of a lone UTF-16 surrogate, which jsonb cannot store`)
	ErrNumber      = errors.New("body contains a number outside what jsonb can store")
	ErrExpansion   = errors.New("body's numbers would grow beyond the read-back bound when printed in full")
)

// Limits of PostgreSQL's numeric type, which jsonb stores numbers as: at most 131072
// digits before the decimal point and 16383 after it (the latter counts the literal's
// trailing zeros, as numeric keeps them), and an exponent below 2^30.
const (
	maxIntegerDigits = 131072
	maxScale         = 16383
	maxExponent      = 1<<30 - 1
)

// MaxNumberGrowth bounds the bytes a body's numbers may gain when read back: jsonb
// prints a number in full, so 1e131071 (8 bytes sent) reads back as 131072 digits, and a
// 9 KB body could cost every reader 131 MB. Growth beyond this is refused at ingest.
const MaxNumberGrowth = 256 << 10

// Check reports why a message body cannot be stored as jsonb or would grow beyond
// MaxNumberGrowth when read back, or nil. encoding/json accepts invalid UTF-8, \u0000,
// lone surrogates and numbers of any size; jsonb accepts none of them.
func Check(b []byte) error {
	if !utf8.Valid(b) {
		return ErrInvalidUTF8
	}
	if !json.Valid(b) {
		return ErrNotJSON
	}
	return scan(b)
}

// scan walks valid JSON once, checking every string's escapes and every number.
func scan(b []byte) error {
	growth := 0
	for i := 0; i < len(b); {
		switch c := b[i]; {
		case c == '"':
			end, err := checkString(b, i+1)
			if err != nil {
				return err
			}
			i = end + 1
		case c == '-' || (c >= '0' && c <= '9'):
			end := i + 1
			for end < len(b) && isNumberByte(b[end]) {
				end++
			}
			rendered, err := renderedLength(b[i:end])
			if err != nil {
				return err
			}
			growth += max(0, rendered-(end-i))
			if growth > MaxNumberGrowth {
				return fmt.Errorf("%w (%d bytes)", ErrExpansion, MaxNumberGrowth)
			}
			i = end
		default:
			i++
		}
	}
	return nil
}

func isNumberByte(c byte) bool {
	return (c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-'
}

// checkString checks the escapes of the string starting at b[start] (after its opening
// quote) and returns the index of its closing quote. PostgreSQL refuses \u0000 and any
// surrogate escape that is not a high surrogate followed at once by a low one.
func checkString(b []byte, start int) (int, error) {
	for i := start; i < len(b); i++ {
		switch b[i] {
		case '"':
			return i, nil
		case '\\':
			if b[i+1] != 'u' {
				i++
				continue
			}
			r := hex4(b[i+2 : i+6])
			switch {
			case r == 0:
				return 0, ErrNulChar
			case r >= 0xDC00 && r <= 0xDFFF:
				return 0, ErrSurrogate
			case r >= 0xD800 && r <= 0xDBFF:
				if i+12 > len(b) || b[i+6] != '\\' || b[i+7] != 'u' {
					return 0, ErrSurrogate
				}
				if lo := hex4(b[i+8 : i+12]); lo < 0xDC00 || lo > 0xDFFF {
					return 0, ErrSurrogate
				}
				i += 11
			default:
				i += 5
			}
		}
	}
	return len(b), nil // unreachable for valid JSON
}

// hex4 decodes four hex digits (valid JSON guarantees they are).
func hex4(h []byte) rune {
	var r rune
	for _, c := range h {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		default:
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}

// renderedLength is how many bytes jsonb prints for the JSON number lit, or an error if
// numeric cannot hold it. numeric prints every integer digit and as many fraction digits
// as its scale: the literal's fraction digits minus the exponent.
func renderedLength(lit []byte) (int, error) {
	neg := lit[0] == '-'
	if neg {
		lit = lit[1:]
	}
	mant, exp := lit, 0
	if k := bytes.IndexAny(lit, "eE"); k >= 0 {
		mant = lit[:k]
		e, ok := parseExponent(lit[k+1:])
		if !ok {
			return 0, fmt.Errorf("%w: exponent of %s is too large", ErrNumber, lit)
		}
		exp = e
	}
	intPart, frac, _ := bytes.Cut(mant, []byte("."))
	scale := max(0, len(frac)-exp)
	if scale > maxScale {
		return 0, fmt.Errorf("%w: more than %d digits after the decimal point", ErrNumber, maxScale)
	}
	// Significant integer digits: the position of the first non-zero digit, shifted by
	// the exponent (zero has none).
	digits := append(append([]byte{}, intPart...), frac...)
	first := bytes.IndexFunc(digits, func(r rune) bool { return r != '0' })
	intDigits := 0
	if first >= 0 {
		intDigits = max(0, len(intPart)-first+exp)
	}
	if intDigits > maxIntegerDigits {
		return 0, fmt.Errorf("%w: more than %d digits before the decimal point", ErrNumber, maxIntegerDigits)
	}
	n := max(1, intDigits)
	if scale > 0 {
		n += 1 + scale
	}
	if neg && first >= 0 { // numeric has no negative zero
		n++
	}
	return n, nil
}

// parseExponent parses a JSON exponent ([+-]digits); ok is false at or beyond numeric's
// limit, which also keeps the arithmetic above from overflowing.
func parseExponent(s []byte) (int, bool) {
	neg := false
	if len(s) > 0 && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	e := 0
	for _, c := range s {
		e = e*10 + int(c-'0')
		if e >= maxExponent {
			return 0, false
		}
	}
	if neg {
		e = -e
	}
	return e, true
}
