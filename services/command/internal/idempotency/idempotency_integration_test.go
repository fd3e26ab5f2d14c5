//go:build integration

package idempotency_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/pgtest"
	"github.com/multitenant/mtm/services/command/internal/idempotency"
)

func TestClaim(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	keys := idempotency.New(db.Pool, time.Hour)
	a, b := uuid.New(), uuid.New()

	require.NoError(t, keys.Claim(ctx, a, "order-1", []byte(`{"n":1}`)))
	require.NoError(t, keys.Claim(ctx, a, "order-1", []byte(`{"n":1}`)), "a retry with the same body")
	require.ErrorIs(t, keys.Claim(ctx, a, "order-1", []byte(`{"n":2}`)), idempotency.ErrReused)
	require.NoError(t, keys.Claim(ctx, b, "order-1", []byte(`{"n":2}`)), "keys are per tenant")
	require.NoError(t, keys.Claim(ctx, a, "order-2", []byte(`{"n":2}`)))

	// Past the window the key is free again, for whatever body comes next.
	_, err := db.Pool.Exec(ctx, `UPDATE idempotency_keys SET first_used_at = now() - interval '2 hours' WHERE tenant_id = $1 AND key = 'order-1'`, a)
	require.NoError(t, err)
	require.NoError(t, keys.Claim(ctx, a, "order-1", []byte(`{"n":3}`)))
	require.ErrorIs(t, keys.Claim(ctx, a, "order-1", []byte(`{"n":1}`)), idempotency.ErrReused, "the new first use counts")

	_, err = db.Pool.Exec(ctx, `UPDATE idempotency_keys SET first_used_at = now() - interval '2 hours' WHERE key = 'order-2'`)
	require.NoError(t, err)
	n, err := keys.Prune(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
	var left int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM idempotency_keys`).Scan(&left))
	require.Equal(t, 2, left)
}

// Concurrent first uses of one key with different bodies: exactly one body wins.
func TestClaimRace(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	keys := idempotency.New(db.Pool, time.Hour)
	tenant := uuid.New()
	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = keys.Claim(context.Background(), tenant, "k", []byte(fmt.Sprintf(`{"i":%d}`, i)))
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
			continue
		}
		require.ErrorIs(t, err, idempotency.ErrReused)
	}
	require.Equal(t, 1, won)
}
