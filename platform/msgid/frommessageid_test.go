package msgid

import (
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

func TestFromMessageID(t *testing.T) {
	t.Parallel()
	tenantA, tenantB := uuid.New(), uuid.New()
	given := uuid.New()

	got, err := FromMessageID(tenantA, given.String())
	require.NoError(t, err)
	require.Equal(t, given, got, "a UUID message_id is kept")

	// Only the canonical form is kept: other spellings uuid.Parse accepts are other
	// message ids, so they get their own v5 ids (and never collide with the canonical one).
	for _, alt := range []string{
		"urn:uuid:" + given.String(),
		"{" + given.String() + "}",
		strings.ReplaceAll(given.String(), "-", ""),
	} {
		got, err := FromMessageID(tenantA, alt)
		require.NoError(t, err)
		require.Equal(t, uuid.NewSHA1(tenantA, []byte(alt)), got, alt)
		require.NotEqual(t, given, got, alt)
	}

	k1, err := FromMessageID(tenantA, "order-42")
	require.NoError(t, err)
	k2, err := FromMessageID(tenantA, "order-42")
	require.NoError(t, err)
	require.Equal(t, k1, k2, "the same key gives the same id")
	require.Equal(t, uuid.Version(5), k1.Version())
	require.Equal(t, uuid.NewSHA1(tenantA, []byte("order-42")), k1)
	other, err := FromMessageID(tenantB, "order-42")
	require.NoError(t, err)
	require.NotEqual(t, k1, other, "namespaced by tenant")
	// An HTTP Idempotency-Key of the same string names another message: neither path
	// can pre-empt the other's ids.
	require.NotEqual(t, FromIdempotencyKey(tenantA, "order-42"), k1)

	f1, err := FromMessageID(tenantA, "")
	require.NoError(t, err)
	f2, err := FromMessageID(tenantA, "")
	require.NoError(t, err)
	require.NotEqual(t, f1, f2)
	require.Equal(t, uuid.Version(7), f1.Version())
}
