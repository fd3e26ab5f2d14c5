//go:build integration

package history_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/pgtest"
	"github.com/multitenant/mtm/services/query/internal/history"
)

// A deep page of a long stream is a range scan of the (stream_id, version) key that
// reads limit+1 entries, and the pages of a walk are exactly the stream in order.
func TestPageWalkAndPlan(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	tenant, other := uuid.New(), uuid.New()
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, id := range []uuid.UUID{tenant, other} {
		_, err := db.Pool.Exec(ctx, `
			INSERT INTO event_store (stream_id, version, event_id, event_type, payload, occurred_at)
			SELECT $1, g, gen_random_uuid(), 'tenant.concurrency_changed.v1',
				jsonb_build_object('type', 'tenant.concurrency_changed.v1', 'version', g,
					'metadata', jsonb_build_object('correlation_id', 'c' || g), 'data', jsonb_build_object('workers', g)),
				$2::timestamptz + g * interval '1 s'
			FROM generate_series(1, 5000) g`, id, t0)
		require.NoError(t, err)
	}
	_, err := db.Pool.Exec(ctx, `ANALYZE event_store`)
	require.NoError(t, err)

	next, version := 0, 0
	for {
		page, more, err := history.Page(ctx, db.Pool, tenant, next, 100, 0)
		require.NoError(t, err)
		for _, e := range page {
			version++
			require.Equal(t, version, e.Version)
			require.Equal(t, "c"+strconv.Itoa(version), e.CorrelationID)
			require.True(t, t0.Add(time.Duration(version)*time.Second).Equal(e.OccurredAt))
			var data struct{ Workers int }
			require.NoError(t, json.Unmarshal(e.Data, &data))
			require.Equal(t, version, data.Workers)
		}
		if !more {
			break
		}
		next = history.AfterVersion(page[len(page)-1].Position())
	}
	require.Equal(t, 5000, version)

	var raw []byte
	require.NoError(t, db.Pool.QueryRow(ctx, "EXPLAIN (ANALYZE, FORMAT JSON) "+history.PageSQL, tenant, 4000, 101).Scan(&raw))
	plan := string(raw)
	require.NotContains(t, plan, "Sort", plan)
	require.NotContains(t, plan, "Seq Scan", plan)
	require.Contains(t, plan, "event_store_stream_id_version_key", plan)
	require.NotContains(t, strings.ToUpper(history.PageSQL), "OFFSET")
}
