// Package cursor encodes keyset pagination positions as opaque, tamper-evident
// strings bound to one list (kind) and one scope (tenant).
//
// Layout before base64url (no padding), 58 bytes:
//
//	version(1) kind(1) scope(16) created_at unix nanos(8, big endian) id(16) tag(16)
//
// tag is HMAC-SHA256 over the first 42 bytes, truncated to 16 bytes. Binding kind and
// scope into the signed bytes makes a cursor useless for another list or tenant, and
// the tag makes any edit (truncation, bit flip, re-encoding) detectable.
package cursor

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Kind names the list a cursor pages through.
type Kind byte

// Kinds of lists. Never renumber: cursors handed out carry these bytes.
const (
	KindTenants  Kind = 1
	KindMessages Kind = 2
	// KindDeadLetters pages a tenant's dead letters by (first_dead_lettered_at, id).
	KindDeadLetters Kind = 3
	// KindEvents pages a tenant's event history; the position holds the stream version
	// in CreatedAt's nanoseconds (time.Unix(0, version)) and uuid.Nil as id.
	KindEvents Kind = 4
)

// formatVersion lets the layout change later without misreading old cursors.
const formatVersion byte = 1

const (
	tagLen     = 16
	payloadLen = 1 + 1 + 16 + 8 + 16
	rawLen     = payloadLen + tagLen
)

// ErrInvalid is wrapped by every Decode failure; callers map it to 400.
var ErrInvalid = errors.New("invalid cursor")

// Position is a keyset position: the (created_at, id) of the last row of a page.
type Position struct {
	CreatedAt time.Time
	ID        uuid.UUID
}

// Codec signs and verifies cursors with one key.
type Codec struct {
	key []byte
}

// keyLabel separates the cursor key from other uses of the same secret (JWT_SECRET
// may sign tokens too): the HMAC key is derived, never the secret itself.
const keyLabel = "mtm/cursor/v1"

// NewCodec derives the signing key from secret, which must not be empty.
func NewCodec(secret []byte) (*Codec, error) {
	if len(secret) == 0 {
		return nil, errors.New("cursor secret is empty")
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(keyLabel))
	return &Codec{key: m.Sum(nil)}, nil
}

// NewRandomCodec uses a random per-process key: cursors then do not survive a restart
// and are not accepted by other replicas.
func NewRandomCodec() (*Codec, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("random cursor key: %w", err)
	}
	return NewCodec(secret)
}

// Encode returns the opaque cursor for p in list kind of scope (uuid.Nil for lists
// that span tenants).
func (c *Codec) Encode(kind Kind, scope uuid.UUID, p Position) string {
	buf := make([]byte, rawLen)
	buf[0] = formatVersion
	buf[1] = byte(kind)
	copy(buf[2:18], scope[:])
	binary.BigEndian.PutUint64(buf[18:26], uint64(p.CreatedAt.UnixNano()))
	copy(buf[26:42], p.ID[:])
	copy(buf[payloadLen:], c.tag(buf[:payloadLen]))
	return base64.RawURLEncoding.EncodeToString(buf)
}

// Decode verifies s and returns its position. It fails (wrapping ErrInvalid) unless s
// is exactly a cursor this codec issued for the same kind and scope.
func (c *Codec) Decode(s string, kind Kind, scope uuid.UUID) (Position, error) {
	raw, err := base64.RawURLEncoding.Strict().DecodeString(s)
	// The decoder skips CR/LF; requiring the canonical encoding rejects every
	// alternative spelling of the same bytes.
	if err != nil || len(raw) != rawLen || base64.RawURLEncoding.EncodeToString(raw) != s {
		return Position{}, fmt.Errorf("%w: malformed", ErrInvalid)
	}
	if subtle.ConstantTimeCompare(c.tag(raw[:payloadLen]), raw[payloadLen:]) != 1 {
		return Position{}, fmt.Errorf("%w: signature mismatch", ErrInvalid)
	}
	if raw[0] != formatVersion {
		return Position{}, fmt.Errorf("%w: unsupported version %d", ErrInvalid, raw[0])
	}
	if Kind(raw[1]) != kind {
		return Position{}, fmt.Errorf("%w: issued for another list", ErrInvalid)
	}
	if subtle.ConstantTimeCompare(raw[2:18], scope[:]) != 1 {
		return Position{}, fmt.Errorf("%w: issued for another tenant", ErrInvalid)
	}
	var id uuid.UUID
	copy(id[:], raw[26:42])
	nanos := int64(binary.BigEndian.Uint64(raw[18:26]))
	return Position{CreatedAt: time.Unix(0, nanos).UTC(), ID: id}, nil
}

func (c *Codec) tag(payload []byte) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write(payload)
	return m.Sum(nil)[:tagLen]
}
