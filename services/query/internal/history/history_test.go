package history_test

import (
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/projections/cursor"
	"github.com/multitenant/mtm/services/query/internal/history"
)

// A version survives the trip through a signed cursor, up to the largest the store holds.
func TestPositionRoundTrip(t *testing.T) {
	t.Parallel()
	codec, err := cursor.NewCodec([]byte("test"))
	require.NoError(t, err)
	tenant := uuid.New()
	for _, v := range []int{1, 2, 1000, 1<<31 - 1} {
		s := codec.Encode(cursor.KindEvents, tenant, history.Event{Version: v}.Position())
		p, err := codec.Decode(s, cursor.KindEvents, tenant)
		require.NoError(t, err)
		require.Equal(t, v, history.AfterVersion(p))
		require.Equal(t, uuid.Nil, p.ID)
	}
}
