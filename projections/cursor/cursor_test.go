package cursor

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

func testCodec(t *testing.T, secret string) *Codec {
	t.Helper()
	c, err := NewCodec([]byte(secret))
	require.NoError(t, err)
	return c
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	c := testCodec(t, "s3cret")
	tenant := uuid.New()
	// Microsecond precision is what Postgres stores; nanoseconds must survive too.
	for _, at := range []time.Time{
		time.Date(2025, 3, 4, 5, 6, 7, 123456000, time.UTC),
		time.Date(1999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Unix(0, 0).UTC(),
	} {
		p := Position{CreatedAt: at, ID: uuid.New()}
		s := c.Encode(KindMessages, tenant, p)
		require.NotContains(t, s, "=", "no padding")
		got, err := c.Decode(s, KindMessages, tenant)
		require.NoError(t, err)
		require.True(t, at.Equal(got.CreatedAt), "created_at %s != %s", got.CreatedAt, at)
		require.Equal(t, p.ID, got.ID)
	}
	// Tenants list: scope is uuid.Nil.
	p := Position{CreatedAt: time.Now().UTC(), ID: uuid.New()}
	got, err := c.Decode(c.Encode(KindTenants, uuid.Nil, p), KindTenants, uuid.Nil)
	require.NoError(t, err)
	require.Equal(t, p.ID, got.ID)
}

func TestRejects(t *testing.T) {
	t.Parallel()
	c := testCodec(t, "s3cret")
	tenant := uuid.New()
	p := Position{CreatedAt: time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC), ID: uuid.New()}
	good := c.Encode(KindMessages, tenant, p)
	raw, err := base64.RawURLEncoding.DecodeString(good)
	require.NoError(t, err)

	flip := func(i int, bit byte) string {
		b := append([]byte(nil), raw...)
		b[i] ^= bit
		return base64.RawURLEncoding.EncodeToString(b)
	}
	cases := map[string]struct {
		cursor string
		kind   Kind
		scope  uuid.UUID
		codec  *Codec
	}{
		"empty":               {cursor: "", kind: KindMessages, scope: tenant},
		"garbage":             {cursor: "not a cursor!", kind: KindMessages, scope: tenant},
		"truncated by 1 char": {cursor: good[:len(good)-1], kind: KindMessages, scope: tenant},
		"truncated to half":   {cursor: good[:len(good)/2], kind: KindMessages, scope: tenant},
		"extended":            {cursor: good + "AA", kind: KindMessages, scope: tenant},
		"std base64 padded":   {cursor: base64.StdEncoding.EncodeToString(raw), kind: KindMessages, scope: tenant},
		"url base64 padded":   {cursor: base64.URLEncoding.EncodeToString(raw), kind: KindMessages, scope: tenant},
		"with newline":        {cursor: good[:10] + "\n" + good[10:], kind: KindMessages, scope: tenant},
		"bit flip in version": {cursor: flip(0, 0x01), kind: KindMessages, scope: tenant},
		"bit flip in kind":    {cursor: flip(1, 0x03), kind: KindMessages, scope: tenant},
		"bit flip in tenant":  {cursor: flip(5, 0x10), kind: KindMessages, scope: tenant},
		"bit flip in time":    {cursor: flip(25, 0x01), kind: KindMessages, scope: tenant},
		"bit flip in id":      {cursor: flip(40, 0x80), kind: KindMessages, scope: tenant},
		"bit flip in tag":     {cursor: flip(rawLen-1, 0x01), kind: KindMessages, scope: tenant},
		"foreign tenant":      {cursor: good, kind: KindMessages, scope: uuid.New()},
		"wrong kind":          {cursor: good, kind: KindTenants, scope: tenant},
		"tenants list scope":  {cursor: good, kind: KindTenants, scope: uuid.Nil},
		"other key":           {cursor: good, kind: KindMessages, scope: tenant, codec: testCodec(t, "other")},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			codec := c
			if tc.codec != nil {
				codec = tc.codec
			}
			_, err := codec.Decode(tc.cursor, tc.kind, tc.scope)
			require.Error(t, err)
			require.True(t, errors.Is(err, ErrInvalid), "error %v must wrap ErrInvalid", err)
		})
	}
	// The untouched cursor still decodes: the cases above failed for their edit.
	_, err = c.Decode(good, KindMessages, tenant)
	require.NoError(t, err)
}

func TestEveryBitFlipRejected(t *testing.T) {
	t.Parallel()
	c := testCodec(t, "k")
	tenant := uuid.New()
	raw, err := base64.RawURLEncoding.DecodeString(c.Encode(KindMessages, tenant, Position{CreatedAt: time.Now(), ID: uuid.New()}))
	require.NoError(t, err)
	for i := range raw {
		for bit := 0; bit < 8; bit++ {
			b := append([]byte(nil), raw...)
			b[i] ^= 1 << bit
			_, err := c.Decode(base64.RawURLEncoding.EncodeToString(b), KindMessages, tenant)
			require.ErrorIs(t, err, ErrInvalid, "byte %d bit %d", i, bit)
		}
	}
}

func TestForeignTenantWithSameKey(t *testing.T) {
	t.Parallel()
	// Two services with the same secret: a cursor for tenant A is still refused for B.
	a, b := uuid.New(), uuid.New()
	s := testCodec(t, "shared").Encode(KindMessages, a, Position{CreatedAt: time.Now(), ID: uuid.New()})
	_, err := testCodec(t, "shared").Decode(s, KindMessages, b)
	require.ErrorIs(t, err, ErrInvalid)
	require.True(t, strings.Contains(err.Error(), "another tenant"), err.Error())
}

func TestKeys(t *testing.T) {
	t.Parallel()
	_, err := NewCodec(nil)
	require.Error(t, err)
	r1, err := NewRandomCodec()
	require.NoError(t, err)
	r2, err := NewRandomCodec()
	require.NoError(t, err)
	p := Position{CreatedAt: time.Now(), ID: uuid.New()}
	_, err = r2.Decode(r1.Encode(KindTenants, uuid.Nil, p), KindTenants, uuid.Nil)
	require.ErrorIs(t, err, ErrInvalid, "random keys differ per process")
}
