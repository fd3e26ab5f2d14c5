//go:build integration

package deadletters_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/pgtest"
	"github.com/multitenant/mtm/platform/postgres"
	"github.com/multitenant/mtm/projections/deadletters"
)

type row struct {
	id     uuid.UUID
	reason string
	status string
	at     time.Time
}

// seed inserts dead letters of tenant directly (the archive is another file's job):
// each with body "body-<message id>" and death key "k1".
func seed(t *testing.T, db *sql.DB, tenant uuid.UUID, rows ...row) {
	t.Helper()
	for _, r := range rows {
		_, err := db.ExecContext(t.Context(), `
			INSERT INTO dead_letters (tenant_id, id, message_id, reason, body, body_size, deaths, death_key, status,
				first_dead_lettered_at, last_dead_lettered_at)
			VALUES ($1, $2, $3, $4, $5::bytea, length($5::bytea), 1, 'k1', $6, $7, $7)`,
			tenant, r.id, "m-"+r.id.String(), r.reason, []byte("body-m-"+r.id.String()), r.status, r.at)
		require.NoError(t, err)
	}
}

func statusOf(t *testing.T, db *sql.DB, tenant, id uuid.UUID) string {
	t.Helper()
	var s string
	require.NoError(t, db.QueryRowContext(t.Context(), `SELECT status FROM dead_letters WHERE tenant_id = $1 AND id = $2`, tenant, id).Scan(&s))
	return s
}

func pendingIDs(ps []deadletters.Pending) []uuid.UUID {
	var out []uuid.UUID
	for _, p := range ps {
		out = append(out, p.ID)
	}
	return out
}

func newDB(t *testing.T) *sql.DB {
	t.Helper()
	db := postgres.OpenDB(pgtest.New(t).Pool)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// Selection picks only pending rows of the tenant: by id, or by reason (or any) up to
// max, oldest first by first_dead_lettered_at and then id; Count agrees with Select.
func TestSelectAndCount(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	tenant, other := uuid.New(), uuid.New()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// Same first time for b1/b2: the id breaks the tie.
	b1, b2 := uuid.MustParse("00000000-0000-7000-8000-000000000001"), uuid.MustParse("00000000-0000-7000-8000-000000000002")
	a, c, redriven, purged, foreign := uuid.New(), uuid.New(), uuid.New(), uuid.New(), uuid.New()
	seed(t, db, tenant,
		row{c, "expired", "pending", t0.Add(3 * time.Second)},
		row{b2, "invalid_json", "pending", t0.Add(2 * time.Second)},
		row{b1, "invalid_json", "pending", t0.Add(2 * time.Second)},
		row{a, "invalid_json", "pending", t0.Add(time.Second)},
		row{redriven, "invalid_json", "redriven", t0},
		row{purged, "invalid_json", "purged", t0},
	)
	seed(t, db, other, row{foreign, "invalid_json", "pending", t0})

	for name, tc := range map[string]struct {
		sel  deadletters.Selector
		want []uuid.UUID
	}{
		"by reason, oldest first":  {deadletters.Selector{Reason: "invalid_json", Max: 10}, []uuid.UUID{a, b1, b2}},
		"by reason up to max":      {deadletters.Selector{Reason: "invalid_json", Max: 2}, []uuid.UUID{a, b1}},
		"any reason":               {deadletters.Selector{Max: 10}, []uuid.UUID{a, b1, b2, c}},
		"unknown reason":           {deadletters.Selector{Reason: "nope", Max: 10}, nil},
		"by id: pending only, own": {deadletters.Selector{IDs: []uuid.UUID{c, redriven, purged, foreign, uuid.New()}}, []uuid.UUID{c}},
		"by id, oldest first":      {deadletters.Selector{IDs: []uuid.UUID{c, a}}, []uuid.UUID{a, c}},
	} {
		got, err := deadletters.Select(ctx, db, tenant, tc.sel)
		require.NoError(t, err, name)
		assert.Equal(t, tc.want, pendingIDs(got), name)
		n, err := deadletters.Count(ctx, db, tenant, tc.sel)
		require.NoError(t, err, name)
		assert.Equal(t, len(tc.want), n, name)
	}
	got, err := deadletters.Select(ctx, db, tenant, deadletters.Selector{IDs: []uuid.UUID{a}})
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, deadletters.Pending{ID: a, MessageID: "m-" + a.String(), Body: []byte("body-m-" + a.String()), DeathKey: "k1"}, got[0])
}

// A row marked redriven only if still pending with the death key read: a death in
// between (new key, the archive's update) and a purge in between both win.
func TestMarkRedrivenKeepsALaterDeath(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	tenant := uuid.New()
	now := time.Now()
	moved, diedAgain, purgedMeanwhile := uuid.New(), uuid.New(), uuid.New()
	seed(t, db, tenant,
		row{moved, "expired", "pending", now},
		row{diedAgain, "expired", "pending", now},
		row{purgedMeanwhile, "expired", "pending", now})
	read, err := deadletters.Select(ctx, db, tenant, deadletters.Selector{Max: 10})
	require.NoError(t, err)
	require.Len(t, read, 3)

	_, err = db.ExecContext(ctx, `UPDATE dead_letters SET death_key = 'k2', deaths = deaths + 1 WHERE id = $1`, diedAgain)
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, `UPDATE dead_letters SET status = 'purged' WHERE id = $1`, purgedMeanwhile)
	require.NoError(t, err)

	n, err := deadletters.MarkRedriven(ctx, db, tenant, read)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, "redriven", statusOf(t, db, tenant, moved))
	assert.Equal(t, "pending", statusOf(t, db, tenant, diedAgain))
	assert.Equal(t, "purged", statusOf(t, db, tenant, purgedMeanwhile))

	n, err = deadletters.MarkRedriven(ctx, db, tenant, read)
	require.NoError(t, err)
	assert.Zero(t, n, "marking again changes nothing")
	n, err = deadletters.MarkRedriven(ctx, db, uuid.New(), read)
	require.NoError(t, err)
	assert.Zero(t, n, "another tenant's rows are never touched")
	n, err = deadletters.MarkRedriven(ctx, db, tenant, nil)
	require.NoError(t, err)
	assert.Zero(t, n)
}

// Purge moves exactly the selected pending rows to purged, oldest first up to max.
func TestPurge(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	tenant, other := uuid.New(), uuid.New()
	t0 := time.Now().Add(-time.Hour)
	old, newer, newest, expired, redriven, foreign := uuid.New(), uuid.New(), uuid.New(), uuid.New(), uuid.New(), uuid.New()
	seed(t, db, tenant,
		row{old, "too_large", "pending", t0},
		row{newer, "too_large", "pending", t0.Add(time.Second)},
		row{newest, "too_large", "pending", t0.Add(2 * time.Second)},
		row{expired, "expired", "pending", t0},
		row{redriven, "too_large", "redriven", t0})
	seed(t, db, other, row{foreign, "too_large", "pending", t0})

	n, err := deadletters.Purge(ctx, db, tenant, deadletters.Selector{Reason: "too_large", Max: 2})
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	assert.Equal(t, "purged", statusOf(t, db, tenant, old))
	assert.Equal(t, "purged", statusOf(t, db, tenant, newer))
	assert.Equal(t, "pending", statusOf(t, db, tenant, newest))
	assert.Equal(t, "pending", statusOf(t, db, tenant, expired))
	assert.Equal(t, "redriven", statusOf(t, db, tenant, redriven), "only pending rows are purged")

	n, err = deadletters.Purge(ctx, db, tenant, deadletters.Selector{IDs: []uuid.UUID{old, expired, redriven, foreign}})
	require.NoError(t, err)
	assert.Equal(t, 1, n, "only expired was still pending")
	assert.Equal(t, "purged", statusOf(t, db, tenant, expired))
	assert.Equal(t, "pending", statusOf(t, db, other, foreign))
}
