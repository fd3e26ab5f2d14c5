//go:build integration

package deadletters_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/pgtest"
	"github.com/multitenant/mtm/projections/deadletters"
)

type stored struct {
	reason, detail, status, deathKey string
	body                             []byte
	size, deaths                     int
	first, last                      time.Time
	headers                          string
}

func load(t *testing.T, db pgtest.DB, tenant, id uuid.UUID) stored {
	t.Helper()
	var s stored
	require.NoError(t, db.Pool.QueryRow(context.Background(), `
		SELECT reason, reason_detail, status, death_key, body, body_size, deaths,
		       first_dead_lettered_at, last_dead_lettered_at, headers::text
		FROM dead_letters WHERE tenant_id = $1 AND id = $2`, tenant, id).
		Scan(&s.reason, &s.detail, &s.status, &s.deathKey, &s.body, &s.size, &s.deaths, &s.first, &s.last, &s.headers))
	s.first, s.last = s.first.UTC(), s.last.UTC()
	return s
}

// Archive inserts new dead letters, skips a dead-lettering it already counted (the
// same DLQ delivery archived again), counts a new death (deaths + 1, back to pending,
// first time kept), handles the same id twice in one batch, and keeps tenants apart.
func TestArchiveCountsEachDeathOnce(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	a, b := uuid.New(), uuid.New()
	id, other := uuid.New(), uuid.New()
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	row := func(id uuid.UUID, key string, at time.Time, body string) deadletters.Row {
		return deadletters.Row{ID: id, MessageID: id.String(), Reason: "invalid_json", ReasonDetail: "unexpected end",
			Body: []byte(body), Headers: []byte(`{"k":"v"}`), DeathKey: key, DeadLetteredAt: at}
	}

	res, err := deadletters.Archive(ctx, db.Pool, a, []deadletters.Row{row(id, "d1", t0, `{"broken":`), row(other, "o1", t0, "")})
	require.NoError(t, err)
	require.Equal(t, deadletters.Result{Inserted: 2}, res)
	got := load(t, db, a, id)
	require.Equal(t, stored{reason: "invalid_json", detail: "unexpected end", status: "pending", deathKey: "d1",
		body: []byte(`{"broken":`), size: 10, deaths: 1, first: t0, last: t0, headers: `{"k": "v"}`}, got)
	require.Equal(t, []byte{}, load(t, db, a, other).body, "an empty body is kept as empty")

	// The same DLQ delivery again (crash before ack): nothing changes.
	res, err = deadletters.Archive(ctx, db.Pool, a, []deadletters.Row{row(id, "d1", t0.Add(time.Minute), `{"broken":`)})
	require.NoError(t, err)
	require.Equal(t, deadletters.Result{Repeated: 1}, res)
	require.Equal(t, 1, load(t, db, a, id).deaths)

	// Redriven by an operator, then dead again: counted, pending again.
	_, err = db.Pool.Exec(ctx, `UPDATE dead_letters SET status = 'redriven' WHERE tenant_id = $1 AND id = $2`, a, id)
	require.NoError(t, err)
	t1 := t0.Add(time.Hour)
	r := row(id, "d2", t1, `{"still":`)
	r.Reason, r.ReasonDetail = "delivery_limit", ""
	res, err = deadletters.Archive(ctx, db.Pool, a, []deadletters.Row{r})
	require.NoError(t, err)
	require.Equal(t, deadletters.Result{Died: 1}, res)
	got = load(t, db, a, id)
	require.Equal(t, stored{reason: "delivery_limit", detail: "", status: "pending", deathKey: "d2",
		body: []byte(`{"still":`), size: 9, deaths: 2, first: t0, last: t1, headers: `{"k": "v"}`}, got)

	// Two deaths of one message in one batch, plus a repeat of one of them: +2.
	res, err = deadletters.Archive(ctx, db.Pool, a, []deadletters.Row{row(id, "d3", t1, "x"), row(id, "d4", t1, "y"), row(id, "d3", t1, "x")})
	require.NoError(t, err)
	require.Equal(t, deadletters.Result{Died: 2}, res)
	require.Equal(t, 4, load(t, db, a, id).deaths)

	// The same id in another tenant is another row.
	res, err = deadletters.Archive(ctx, db.Pool, b, []deadletters.Row{row(id, "d1", t0, "z")})
	require.NoError(t, err)
	require.Equal(t, deadletters.Result{Inserted: 1}, res)
	require.Equal(t, 1, load(t, db, b, id).deaths)

	pending, err := deadletters.PendingByTenant(ctx, db.Pool)
	require.NoError(t, err)
	require.Equal(t, 2, pending[a])
	require.Equal(t, 1, pending[b])

	require.NoError(t, deadletters.ForgetTenant(ctx, db.Pool, a))
	pending, err = deadletters.PendingByTenant(ctx, db.Pool)
	require.NoError(t, err)
	require.Zero(t, pending[a])
	require.Equal(t, 1, pending[b])
}

// A batch is one transaction: a row the database refuses rolls every row of it back,
// so the caller acks nothing it did not store.
func TestArchiveIsAllOrNothing(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	tenant := uuid.New()
	good := deadletters.Row{ID: uuid.New(), Reason: "expired", Body: []byte("a"), DeathKey: "k", DeadLetteredAt: time.Now()}
	bad := good
	bad.ID, bad.Headers = uuid.New(), []byte(`{"nul":"\u0000"}`) // jsonb refuses NUL
	_, err := deadletters.Archive(ctx, db.Pool, tenant, []deadletters.Row{good, bad})
	require.Error(t, err)
	pending, err := deadletters.PendingByTenant(ctx, db.Pool)
	require.NoError(t, err)
	require.Zero(t, pending[tenant])
}
