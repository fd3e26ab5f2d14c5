package cursor

import (
	"encoding/base64"
	"testing"
	"time"

	"github.com/google/uuid"
)

// FuzzDecode feeds Decode arbitrary strings for arbitrary lists and scopes. Decode must
// never panic, and it may accept only the exact string Encode gives for the position it
// returns: any other spelling (padding, line breaks, non-canonical trailing bits, a
// flipped bit anywhere) is refused. Each run also checks that every position, including
// extreme timestamps, survives Encode then Decode.
func FuzzDecode(f *testing.F) {
	c, err := NewCodec([]byte("fuzz-secret"))
	if err != nil {
		f.Fatal(err)
	}
	scope := uuid.MustParse("0190f2a4-7b7e-7c3a-9d4e-1a2b3c4d5e6f")
	id := uuid.MustParse("0190f2a4-7b80-7000-8000-000000000001")
	good := c.Encode(KindMessages, scope, Position{CreatedAt: time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC), ID: id})
	raw, _ := base64.RawURLEncoding.DecodeString(good)
	f.Add(good, byte(KindMessages), scope[:], int64(0), id[:])
	f.Add(good, byte(KindTenants), uuid.Nil[:], int64(-1), id[:])
	f.Add(c.Encode(KindTenants, uuid.Nil, Position{ID: id}), byte(KindTenants), uuid.Nil[:], int64(1<<62), uuid.Nil[:])
	f.Add(base64.URLEncoding.EncodeToString(raw), byte(KindMessages), scope[:], int64(-1<<63), id[:])
	f.Add(good[:20]+"\n"+good[20:], byte(KindMessages), scope[:], int64(1<<63-1), id[:])
	f.Add(good[:len(good)-1]+"B", byte(KindMessages), scope[:], int64(42), id[:])
	f.Add("", byte(0), []byte{}, int64(0), []byte{})
	f.Add("not a cursor!", byte(KindEvents), scope[:], int64(7), uuid.Nil[:])

	f.Fuzz(func(t *testing.T, s string, kind byte, scopeBytes []byte, nanos int64, idBytes []byte) {
		var sc, pid uuid.UUID
		copy(sc[:], scopeBytes)
		copy(pid[:], idBytes)

		p := Position{CreatedAt: time.Unix(0, nanos), ID: pid}
		enc := c.Encode(Kind(kind), sc, p)
		back, err := c.Decode(enc, Kind(kind), sc)
		if err != nil {
			t.Fatalf("Decode(Encode(%v)) = %v", p, err)
		}
		if !back.CreatedAt.Equal(p.CreatedAt) || back.ID != p.ID {
			t.Fatalf("round trip: got %v, want %v", back, p)
		}

		got, err := c.Decode(s, Kind(kind), sc)
		if err != nil {
			return
		}
		if again := c.Encode(Kind(kind), sc, got); again != s {
			t.Fatalf("Decode accepted %q, which Encode spells %q", s, again)
		}
	})
}
