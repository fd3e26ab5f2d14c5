//go:build integration

package eventstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/multitenant/mtm/events"
	"github.com/multitenant/mtm/platform/eventstore"
	"github.com/multitenant/mtm/platform/pgtest"
)

// A transaction left open in another database of the same server must not hold back the
// event stream (watermill-sql's default snapshot-xmin read would wait for it to end).
func TestLongTransactionElsewhereDoesNotStallSubscriptions(t *testing.T) {
	t.Parallel()
	store, db := newStore(t)
	other := pgtest.NewEmpty(t)

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, other.URL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	var xid int64
	require.NoError(t, tx.QueryRow(ctx, `SELECT txid_current()`).Scan(&xid), "hold a transaction id open")

	sub, err := eventstore.NewSubscriber(db, "long_tx_test", watermill.NopLogger{})
	require.NoError(t, err)
	defer sub.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs, err := sub.Subscribe(sctx, events.Topic)
	require.NoError(t, err)

	tenant := uuid.NewString()
	_, err = store.Append(ctx, []events.Envelope{envelope(t, tenant, 1, events.TenantCreated{Name: "n", Workers: 1})}, nil)
	require.NoError(t, err)
	select {
	case m := <-msgs:
		require.Equal(t, tenant, m.Metadata.Get(eventstore.MetaTenantID))
		m.Ack()
	case <-time.After(5 * time.Second):
		t.Fatal("event not delivered while another database holds a transaction open")
	}
}

// Concurrent appends from many writers reach a subscriber completely, each once: the
// serialised outbox insert keeps offset order equal to commit order, so reading by offset
// never skips a row that commits late.
func TestConcurrentAppendsAreDeliveredWithoutGaps(t *testing.T) {
	t.Parallel()
	store, db := newStore(t)
	ctx := context.Background()

	sub, err := eventstore.NewSubscriber(db, "gap_test", watermill.NopLogger{})
	require.NoError(t, err)
	defer sub.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs, err := sub.Subscribe(sctx, events.Topic)
	require.NoError(t, err)

	const writers, perWriter = 16, 25
	want := map[string]bool{}
	ids := make(chan string, writers*perWriter)
	var g errgroup.Group
	for range writers {
		g.Go(func() error {
			for range perWriter {
				env := envelope(t, uuid.NewString(), 1, events.TenantCreated{Name: "n", Workers: 1})
				if _, err := store.Append(ctx, []events.Envelope{env}, nil); err != nil {
					return err
				}
				ids <- env.Metadata.EventID
			}
			return nil
		})
	}

	got := map[string]int{}
	deadline := time.After(60 * time.Second)
	for len(got) < writers*perWriter {
		select {
		case m := <-msgs:
			got[m.UUID]++
			m.Ack()
		case <-deadline:
			t.Fatalf("received %d of %d events", len(got), writers*perWriter)
		}
	}
	require.NoError(t, g.Wait())
	close(ids)
	for id := range ids {
		want[id] = true
	}
	require.Len(t, want, writers*perWriter)
	for id, n := range got {
		require.True(t, want[id], "unexpected event %s", id)
		require.Equal(t, 1, n, "event %s delivered %d times", id, n)
	}
}
