//go:build integration

package deadletters_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/pgtest"
	"github.com/multitenant/mtm/projections/cursor"
	"github.com/multitenant/mtm/projections/deadletters"
)

// insert stores dead letters directly (the archive's writer is the consumer's).
func insert(t *testing.T, pool *pgxpool.Pool, rows ...deadletters.DeadLetter) {
	t.Helper()
	for _, d := range rows {
		headers := d.Headers
		if headers == nil {
			headers = json.RawMessage(`{}`)
		}
		_, err := pool.Exec(context.Background(), `
			INSERT INTO dead_letters (tenant_id, id, message_id, reason, reason_detail, body, body_size, headers, deaths,
				death_key, status, first_dead_lettered_at, last_dead_lettered_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
			d.TenantID, d.ID, d.MessageID, d.Reason, d.ReasonDetail, d.Body, len(d.Body), headers, d.Deaths,
			uuid.NewString(), d.Status, d.FirstDeadLetteredAt, d.LastDeadLetteredAt)
		require.NoError(t, err)
	}
}

// fixture: 30 dead letters of tenant, in groups of three sharing a first_dead_lettered_at,
// cycling through three reasons and three statuses; and 5 of another tenant.
func fixture(t *testing.T, pool *pgxpool.Pool, tenant, other uuid.UUID, t0 time.Time) []deadletters.DeadLetter {
	t.Helper()
	reasons := []string{"invalid_json", "delivery_limit", "expired"}
	statuses := []string{deadletters.StatusPending, deadletters.StatusPending, deadletters.StatusRedriven, deadletters.StatusPurged}
	var all []deadletters.DeadLetter
	for i := range 30 {
		at := t0.Add(time.Duration(i/3) * time.Second)
		all = append(all, deadletters.DeadLetter{TenantID: tenant, ID: uuid.New(), MessageID: fmt.Sprintf("m-%d", i),
			Reason: reasons[i%3], ReasonDetail: "detail", Status: statuses[i%4], Deaths: 1 + i%2,
			Headers: json.RawMessage(`{"x-n": ` + fmt.Sprint(i) + `}`), Body: []byte(fmt.Sprintf(`{"n":%d}`, i)),
			FirstDeadLetteredAt: at, LastDeadLetteredAt: at.Add(time.Minute)})
	}
	insert(t, pool, all...)
	for i := range 5 {
		insert(t, pool, deadletters.DeadLetter{TenantID: other, ID: uuid.New(), MessageID: "o", Reason: reasons[0],
			Status: deadletters.StatusPending, Deaths: 1, Body: []byte("x"), FirstDeadLetteredAt: t0.Add(time.Duration(i) * time.Second),
			LastDeadLetteredAt: t0})
	}
	return all
}

// walk pages through every dead letter of tenant matching f, limit at a time, through
// encoded cursors as a client would.
func walk(t *testing.T, pool *pgxpool.Pool, codec *cursor.Codec, tenant uuid.UUID, f deadletters.Filter, limit, maxBytes int) []deadletters.DeadLetter {
	t.Helper()
	var got []deadletters.DeadLetter
	var after *cursor.Position
	for {
		page, more, err := deadletters.Page(context.Background(), pool, tenant, f, after, limit, maxBytes)
		require.NoError(t, err)
		got = append(got, page...)
		if !more {
			return got
		}
		require.NotEmpty(t, page)
		p, err := codec.Decode(codec.Encode(cursor.KindDeadLetters, tenant, page[len(page)-1].Position()), cursor.KindDeadLetters, tenant)
		require.NoError(t, err)
		after = &p
	}
}

func ids(list []deadletters.DeadLetter) []uuid.UUID {
	out := make([]uuid.UUID, 0, len(list))
	for _, d := range list {
		out = append(out, d.ID)
	}
	return out
}

// Every filter combination walks exactly the matching rows, once each, in
// (first_dead_lettered_at, id) order, never another tenant's.
func TestPageFiltersAndOrder(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	tenant, other := uuid.New(), uuid.New()
	t0 := time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
	all := fixture(t, db.Pool, tenant, other, t0)
	codec, err := cursor.NewCodec([]byte("test"))
	require.NoError(t, err)

	// The expected order: by time, then id (the ids are random within a group of three).
	ordered := append([]deadletters.DeadLetter(nil), all...)
	less := func(a, b deadletters.DeadLetter) bool {
		if !a.FirstDeadLetteredAt.Equal(b.FirstDeadLetteredAt) {
			return a.FirstDeadLetteredAt.Before(b.FirstDeadLetteredAt)
		}
		return strings.Compare(a.ID.String(), b.ID.String()) < 0
	}
	for i := range ordered {
		for j := i + 1; j < len(ordered); j++ {
			if less(ordered[j], ordered[i]) {
				ordered[i], ordered[j] = ordered[j], ordered[i]
			}
		}
	}

	filters := []deadletters.Filter{
		{},
		{Status: deadletters.StatusPending},
		{Status: deadletters.StatusPurged},
		{Reason: "expired"},
		{Reason: "delivery_limit", Status: deadletters.StatusPending},
		{Reason: "no_such_reason"},
		{Reason: "EXPIRED"}, // exact match: codes are lower case
	}
	for _, f := range filters {
		var want []deadletters.DeadLetter
		for _, d := range ordered {
			if (f.Reason == "" || d.Reason == f.Reason) && (f.Status == "" || d.Status == f.Status) {
				want = append(want, d)
			}
		}
		for _, limit := range []int{1, 4, 100} {
			got := walk(t, db.Pool, codec, tenant, f, limit, 0)
			require.Equal(t, ids(want), ids(got), "filter %+v limit %d", f, limit)
		}
	}

	// Every field reads back as stored.
	page, more, err := deadletters.Page(ctx, db.Pool, tenant, deadletters.Filter{}, nil, 1, 0)
	require.NoError(t, err)
	require.True(t, more)
	first := ordered[0]
	got := page[0]
	require.JSONEq(t, string(first.Headers), string(got.Headers))
	got.Headers, first.Headers = nil, nil
	first.Size = len(first.Body)
	require.Equal(t, first, got)

	// Exactly limit rows left: no extra empty page.
	page, more, err = deadletters.Page(ctx, db.Pool, other, deadletters.Filter{}, nil, 5, 0)
	require.NoError(t, err)
	require.Len(t, page, 5)
	require.False(t, more)

	_, _, err = deadletters.Page(ctx, db.Pool, tenant, deadletters.Filter{}, nil, 0, 0)
	require.Error(t, err)
	_, _, err = deadletters.Page(ctx, db.Pool, tenant, deadletters.Filter{Status: "lost"}, nil, 10, 0)
	require.Error(t, err)

	empty, more, err := deadletters.Page(ctx, db.Pool, uuid.New(), deadletters.Filter{}, nil, 10, 0)
	require.NoError(t, err)
	require.Empty(t, empty)
	require.False(t, more)
}

// A page of large bodies ends early instead of carrying limit × body bytes; a walk still
// returns every row once, and a row larger than the cap comes alone.
func TestPageStopsAtByteCap(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	tenant := uuid.New()
	t0 := time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
	for i := range 10 {
		insert(t, db.Pool, deadletters.DeadLetter{TenantID: tenant, ID: uuid.New(), MessageID: "m", Reason: "too_large",
			Status: deadletters.StatusPending, Deaths: 1, Body: []byte(strings.Repeat("x", 1000)),
			FirstDeadLetteredAt: t0.Add(time.Duration(i) * time.Second), LastDeadLetteredAt: t0})
	}
	page, more, err := deadletters.Page(context.Background(), db.Pool, tenant, deadletters.Filter{}, nil, 100, 3500)
	require.NoError(t, err)
	require.True(t, more, "the cap ended the page, not the rows")
	require.Len(t, page, 3, "three ~1 KB bodies fit in 3500 bytes")

	codec, err := cursor.NewCodec([]byte("test"))
	require.NoError(t, err)
	require.Len(t, walk(t, db.Pool, codec, tenant, deadletters.Filter{}, 100, 500), 10, "a row over the cap still comes, alone")
}

func TestPendingCounts(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	tenant, other, none := uuid.New(), uuid.New(), uuid.New()
	fixture(t, db.Pool, tenant, other, time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC))

	counts, err := deadletters.PendingCounts(ctx, db.Pool, []uuid.UUID{tenant, other, none})
	require.NoError(t, err)
	require.Equal(t, map[uuid.UUID]int{tenant: 16, other: 5}, counts, "16 of the 30 are pending; none has no entry")
	counts, err = deadletters.PendingCounts(ctx, db.Pool, nil)
	require.NoError(t, err)
	require.Empty(t, counts)
}

// explainNode is the part of EXPLAIN (FORMAT JSON) the test looks at.
type explainNode struct {
	NodeType   string        `json:"Node Type"`
	IndexName  string        `json:"Index Name"`
	IndexCond  string        `json:"Index Cond"`
	ActualRows float64       `json:"Actual Rows"`
	Plans      []explainNode `json:"Plans"`
}

// A deep page with a status filter is a range scan of dead_letters_status_page that
// reads limit+1 entries: no sort, no OFFSET, whatever the depth.
func TestStatusPagePlan(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	tenant := uuid.New()
	t0 := time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
	_, err := db.Pool.Exec(ctx, `
		INSERT INTO dead_letters (tenant_id, id, message_id, reason, body, body_size, deaths, death_key, status,
			first_dead_lettered_at, last_dead_lettered_at)
		SELECT $1, gen_random_uuid(), 'm', 'expired', '\x00', 1, 1, g::text,
			(ARRAY['pending','redriven','purged'])[1 + g % 3], $2::timestamptz + g * interval '1 ms', $2
		FROM generate_series(1, 20000) g`, tenant, t0)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `ANALYZE dead_letters`)
	require.NoError(t, err)

	const limit = 100
	f := deadletters.Filter{Status: deadletters.StatusPending}
	require.NotContains(t, strings.ToUpper(deadletters.PageSQL(f, true)), "OFFSET")
	var raw []byte
	require.NoError(t, db.Pool.QueryRow(ctx, "EXPLAIN (ANALYZE, FORMAT JSON) "+deadletters.PageSQL(f, true),
		tenant, f.Status, t0.Add(15*time.Second), uuid.Nil, limit+1).Scan(&raw))
	var plans []struct {
		Plan explainNode `json:"Plan"`
	}
	require.NoError(t, json.Unmarshal(raw, &plans), string(raw))
	require.Equal(t, "Limit", plans[0].Plan.NodeType, string(raw))
	var scans int
	var visit func(n explainNode)
	visit = func(n explainNode) {
		require.NotContains(t, n.NodeType, "Sort", string(raw))
		require.NotEqual(t, "Seq Scan", n.NodeType, string(raw))
		if n.IndexName != "" {
			scans++
			require.Equal(t, "dead_letters_status_page", n.IndexName, string(raw))
			require.Contains(t, n.IndexCond, "first_dead_lettered_at", string(raw))
			require.LessOrEqual(t, n.ActualRows, float64(limit+1), string(raw))
		}
		for _, c := range n.Plans {
			visit(c)
		}
	}
	visit(plans[0].Plan)
	require.Equal(t, 1, scans, string(raw))
}
