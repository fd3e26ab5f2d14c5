//go:build integration

package messages_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/pgtest"
	"github.com/multitenant/mtm/projections/messages"
	"github.com/multitenant/mtm/projections/messages/messagestest"
)

// Insert reports per row whether it was new: all new (the fast path), a repeat inside
// one call, a row already stored, and the same message id in two tenants (distinct
// rows). Payloads and timestamps round-trip.
func TestInsertReportsNewRows(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	a, b := uuid.New(), uuid.New()
	messagestest.CreatePartition(t, db.Pool, a)
	messagestest.CreatePartition(t, db.Pool, b)
	at := time.Date(2025, 6, 1, 12, 0, 0, 123456000, time.UTC)
	id1, id2, shared := uuid.New(), uuid.New(), uuid.New()

	got, err := messages.Insert(ctx, db.Pool, []messages.Row{
		{TenantID: a, ID: id1, Payload: []byte(`{"n":1}`), CreatedAt: at},
		{TenantID: a, ID: shared, Payload: []byte(`{"n":2}`), CreatedAt: at},
		{TenantID: b, ID: shared, Payload: []byte(`{"n":3}`), CreatedAt: at},
	})
	require.NoError(t, err)
	require.Equal(t, []bool{true, true, true}, got)

	got, err = messages.Insert(ctx, db.Pool, []messages.Row{
		{TenantID: a, ID: id2, Payload: []byte(`{"n":4}`), CreatedAt: at},
		{TenantID: a, ID: id1, Payload: []byte(`{"n":99}`), CreatedAt: at}, // stored before
		{TenantID: a, ID: id2, Payload: []byte(`{"n":98}`), CreatedAt: at}, // repeat in this call
		{TenantID: b, ID: id1, Payload: []byte(`{"n":5}`), CreatedAt: at},  // other tenant: new
	})
	require.NoError(t, err)
	require.Equal(t, []bool{true, false, false, true}, got)

	var payload string
	var created time.Time
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT payload::text, created_at FROM messages WHERE tenant_id = $1 AND id = $2`, a, id1).Scan(&payload, &created))
	require.JSONEq(t, `{"n":1}`, payload, "the first write wins")
	require.True(t, created.Equal(at))
	var rows int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM messages WHERE tenant_id = ANY($1)`, []uuid.UUID{a, b}).Scan(&rows))
	require.Equal(t, 5, rows)
}

// A row for a tenant without a partition fails the whole statement with SQLSTATE
// 23514, which the consumer's writer classifies.
func TestInsertWithoutPartitionFails(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	_, err := messages.Insert(context.Background(), db.Pool, []messages.Row{
		{TenantID: uuid.New(), ID: uuid.New(), Payload: []byte(`{}`), CreatedAt: time.Now()},
	})
	require.ErrorContains(t, err, "23514")
}
