//go:build integration

package eventstore_test

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/google/uuid"

	"github.com/multitenant/mtm/events"
	"github.com/multitenant/mtm/platform/eventstore"
	"github.com/multitenant/mtm/platform/pgtest"
	"github.com/multitenant/mtm/platform/postgres"
)

func newStore(t *testing.T) (*eventstore.Store, *sql.DB) {
	t.Helper()
	db := pgtest.New(t)
	sqlDB := postgres.OpenDB(db.Pool)
	t.Cleanup(func() { _ = sqlDB.Close() })
	return eventstore.New(sqlDB, watermill.NopLogger{}), sqlDB
}

func envelope(t *testing.T, tenant string, version int, e events.Event) events.Envelope {
	t.Helper()
	env, err := events.NewEnvelope(tenant, version, events.Metadata{
		EventID:       uuid.Must(uuid.NewV7()).String(),
		OccurredAt:    time.Now().UTC().Truncate(time.Microsecond),
		CorrelationID: "test",
	}, e)
	if err != nil {
		t.Fatalf("envelope: %v", err)
	}
	return env
}

func TestAppendLoadReplay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, db := newStore(t)
	a, b := uuid.NewString(), uuid.NewString()

	mustAppend := func(envs ...events.Envelope) []int64 {
		t.Helper()
		pos, err := store.Append(ctx, envs, nil)
		if err != nil {
			t.Fatalf("append: %v", err)
		}
		return pos
	}
	p1 := mustAppend(envelope(t, a, 1, events.TenantCreated{Name: "a", Workers: 2}))
	mustAppend(envelope(t, b, 1, events.TenantCreated{Name: "b", Workers: 1}))
	p3 := mustAppend(
		envelope(t, a, 2, events.TenantConcurrencyChanged{Workers: 4, PreviousWorkers: 2}),
		envelope(t, a, 3, events.TenantDeleted{Name: "a"}),
	)
	if len(p1) != 1 || len(p3) != 2 || p1[0] >= p3[0] || p3[0] >= p3[1] {
		t.Fatalf("positions not increasing: %v %v", p1, p3)
	}

	stream, err := store.Load(ctx, a)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if len(stream) != 3 {
		t.Fatalf("stream a has %d events, want 3", len(stream))
	}
	for i, s := range stream {
		if s.Version != i+1 || s.TenantID != a {
			t.Fatalf("event %d: version %d tenant %s", i, s.Version, s.TenantID)
		}
	}
	if got, ok := stream[1].Event.(events.TenantConcurrencyChanged); !ok || got.Workers != 4 || got.PreviousWorkers != 2 {
		t.Fatalf("replayed payload %#v", stream[1].Event)
	}

	all, err := store.ReadAll(ctx, 0, 100)
	if err != nil {
		t.Fatalf("read all: %v", err)
	}
	if len(all) != 4 {
		t.Fatalf("ReadAll returned %d events, want 4", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i].Position <= all[i-1].Position {
			t.Fatalf("ReadAll not in position order: %d after %d", all[i].Position, all[i-1].Position)
		}
	}
	rest, err := store.ReadAll(ctx, all[1].Position, 100)
	if err != nil || len(rest) != 2 {
		t.Fatalf("ReadAll after %d: %d events, err %v", all[1].Position, len(rest), err)
	}
	head, err := store.Head(ctx)
	if err != nil || head != all[3].Position {
		t.Fatalf("head %d (err %v), want %d", head, err, all[3].Position)
	}

	// Every stored event was published to the outbox in the same transaction.
	var outbox int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM watermill_tenant_events`).Scan(&outbox); err != nil {
		t.Fatalf("count outbox: %v", err)
	}
	if outbox != 4 {
		t.Fatalf("outbox holds %d messages, want 4", outbox)
	}

	// The store is append-only.
	if _, err := db.ExecContext(ctx, `DELETE FROM event_store`); err == nil {
		t.Fatal("deleting from event_store succeeded")
	}
}

func TestAppendSameVersionConflicts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, db := newStore(t)
	id := uuid.NewString()
	if _, err := store.Append(ctx, []events.Envelope{envelope(t, id, 1, events.TenantCreated{Name: "x", Workers: 1})}, nil); err != nil {
		t.Fatalf("create: %v", err)
	}

	// 20 writers all decide on version 1 and append version 2 at once.
	const writers = 20
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	start := make(chan struct{})
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := store.Append(ctx, []events.Envelope{envelope(t, id, 2, events.TenantConcurrencyChanged{Workers: i + 2, PreviousWorkers: 1})}, nil)
			errs <- err
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	var won, conflicts int
	for err := range errs {
		switch {
		case err == nil:
			won++
		case errors.Is(err, eventstore.ErrConcurrency):
			conflicts++
		default:
			t.Errorf("unexpected append error: %v", err)
		}
	}
	if won != 1 || conflicts != writers-1 {
		t.Fatalf("%d appends won and %d conflicted, want 1 and %d", won, conflicts, writers-1)
	}
	stream, err := store.Load(ctx, id)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if len(stream) != 2 || stream[0].Version != 1 || stream[1].Version != 2 {
		t.Fatalf("stream after race: %d events", len(stream))
	}
	var outbox int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM watermill_tenant_events`).Scan(&outbox); err != nil || outbox != 2 {
		t.Fatalf("outbox holds %d messages (err %v), want 2: losers must publish nothing", outbox, err)
	}
}

func TestAppendExtraErrorWritesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, _ := newStore(t)
	id := uuid.NewString()
	boom := errors.New("name taken")
	_, err := store.Append(ctx, []events.Envelope{envelope(t, id, 1, events.TenantCreated{Name: "x", Workers: 1})},
		func(ctx context.Context, tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO tenant_names (name, tenant_id) VALUES ('x', $1)`, id); err != nil {
				return err
			}
			return boom
		})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the extra callback's error", err)
	}
	stream, err := store.Load(ctx, id)
	if err != nil || len(stream) != 0 {
		t.Fatalf("stream has %d events after aborted append (err %v)", len(stream), err)
	}
}

func TestSubscriberReceivesAppendedEvents(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, db := newStore(t)
	sub, err := eventstore.NewSubscriber(db, "eventstore_test", watermill.NopLogger{})
	if err != nil {
		t.Fatalf("subscriber: %v", err)
	}
	defer sub.Close()
	msgs, err := sub.Subscribe(ctx, events.Topic)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	id := uuid.NewString()
	env := envelope(t, id, 1, events.TenantCreated{Name: "sub", Workers: 2})
	if _, err := store.Append(ctx, []events.Envelope{env}, nil); err != nil {
		t.Fatalf("append: %v", err)
	}
	select {
	case msg := <-msgs:
		msg.Ack()
		rec, err := events.Decode(msg.Payload)
		if err != nil {
			t.Fatalf("decode published event: %v", err)
		}
		if rec.TenantID != id || rec.Type != events.TypeTenantCreated || msg.Metadata.Get(eventstore.MetaVersion) != "1" {
			t.Fatalf("published %+v metadata %v", rec.Envelope, msg.Metadata)
		}
	case <-ctx.Done():
		t.Fatal("no event published through the outbox")
	}
}
