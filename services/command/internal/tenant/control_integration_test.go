//go:build integration

package tenant_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/events"
	"github.com/multitenant/mtm/platform/amqptest"
	"github.com/multitenant/mtm/platform/rabbit"
	"github.com/multitenant/mtm/services/command/internal/broker"
	"github.com/multitenant/mtm/services/command/internal/commandtest"
	"github.com/multitenant/mtm/services/command/internal/tenant"
)

// drainEnv is a command side whose drain process managers probe the queues through the
// same broker connection (ready counts only: no management API).
func drainEnv(t *testing.T) (commandtest.Env, *broker.DrainProbe) {
	t.Helper()
	conn := commandtest.RunConn(t, amqptest.URL(t))
	return commandtest.New(t, conn), broker.NewDrainProbe(broker.NewTopology(conn, rabbit.DefaultTopology, commandtest.Log), nil, "")
}

// publishRaw puts one message into the tenant's queue with a confirm.
func publishRaw(t *testing.T, tenantID string, body string) {
	t.Helper()
	ch, err := amqptest.Dial(t).Channel()
	require.NoError(t, err)
	defer ch.Close()
	require.NoError(t, ch.Confirm(false))
	dc, err := ch.PublishWithDeferredConfirmWithContext(t.Context(), "", rabbit.QueueName(tenantID), true, false, amqp.Publishing{Body: []byte(body)})
	require.NoError(t, err)
	ok, err := dc.WaitContext(t.Context())
	require.NoError(t, err)
	require.True(t, ok)
}

// takeAll acks every message of the tenant's queue away and returns them.
func takeAll(t *testing.T, tenantID string) []amqp.Delivery {
	t.Helper()
	ch, err := amqptest.Dial(t).Channel()
	require.NoError(t, err)
	defer ch.Close()
	var out []amqp.Delivery
	for {
		d, ok, err := ch.Get(rabbit.QueueName(tenantID), true)
		require.NoError(t, err)
		if !ok {
			return out
		}
		out = append(out, d)
	}
}

func drainRows(t *testing.T, env commandtest.Env, id string) int {
	t.Helper()
	var n int
	require.NoError(t, env.DB.QueryRow(`SELECT count(*) FROM tenant_drains WHERE tenant_id = $1`, id).Scan(&n))
	return n
}

func lastEvent(t *testing.T, env commandtest.Env, id string) events.Recorded {
	t.Helper()
	stored, err := env.Store.Load(context.Background(), id)
	require.NoError(t, err)
	require.NotEmpty(t, stored)
	return stored[len(stored)-1].Recorded
}

func TestPauseAndResume(t *testing.T) {
	t.Parallel()
	env := commandtest.New(t, nil)
	ctx := context.Background()
	st := create(t, env, "pause-"+uuid.NewString(), 2)

	st, err := env.Tenants.Pause(ctx, tenant.Meta{CorrelationID: "p-1"}, st.ID, nil)
	require.NoError(t, err)
	assert.Equal(t, tenant.StatusPaused, st.Status)
	assert.Equal(t, 2, st.Version)
	assert.Equal(t, "p-1", lastEvent(t, env, st.ID).Metadata.CorrelationID)
	again, err := env.Tenants.Pause(ctx, tenant.Meta{}, st.ID, nil)
	require.NoError(t, err)
	assert.Equal(t, 2, again.Version, "pausing a paused tenant records nothing")

	// A paused tenant resizes (desired count only) and stays paused.
	st, err = env.Tenants.ChangeConcurrency(ctx, tenant.Meta{}, st.ID, 4, nil)
	require.NoError(t, err)
	assert.Equal(t, tenant.StatusPaused, st.Status)

	_, err = env.Tenants.Resume(ctx, tenant.Meta{}, st.ID, ptr(2))
	require.ErrorIs(t, err, tenant.ErrVersionMismatch)
	st, err = env.Tenants.Resume(ctx, tenant.Meta{}, st.ID, ptr(3))
	require.NoError(t, err)
	assert.Equal(t, tenant.StatusActive, st.Status)
	assert.Equal(t, 4, st.Workers)
	assert.Equal(t, []int{1, 2, 3, 4}, env.Versions(t, st.ID))
}

// The process manager deletes a draining tenant only once its queue was seen empty on
// two checks in a row, through the plain delete's path, with the drain request's
// correlation id; the drain row goes with it.
func TestDrainDeletesOnceTheQueueIsEmpty(t *testing.T) {
	t.Parallel()
	env, probe := drainEnv(t)
	ctx := context.Background()
	name := "drain-" + uuid.NewString()
	st := create(t, env, name, 1)
	st, err := env.Tenants.Pause(ctx, tenant.Meta{}, st.ID, nil)
	require.NoError(t, err)
	publishRaw(t, st.ID, `{"n":1}`)

	st, err = env.Tenants.RequestDeletion(ctx, tenant.Meta{CorrelationID: "drain-1"}, st.ID, time.Minute, nil)
	require.NoError(t, err)
	assert.Equal(t, tenant.StatusDraining, st.Status, "a paused tenant drains")
	assert.Equal(t, 1, drainRows(t, env, st.ID))
	_, err = env.Tenants.Pause(ctx, tenant.Meta{}, st.ID, nil)
	require.ErrorIs(t, err, tenant.ErrDraining)
	_, err = env.Tenants.ChangeConcurrency(ctx, tenant.Meta{}, st.ID, 2, nil)
	require.ErrorIs(t, err, tenant.ErrDraining)

	d := env.Tenants.NewDrains(probe)
	for range 3 {
		require.NoError(t, d.Check(ctx))
	}
	assert.Equal(t, []int{1, 2, 3}, env.Versions(t, st.ID), "a message is waiting: not deleted")

	require.Len(t, takeAll(t, st.ID), 1)
	require.NoError(t, d.Check(ctx))
	assert.Equal(t, []int{1, 2, 3}, env.Versions(t, st.ID), "one empty look is not enough")
	require.NoError(t, d.Check(ctx))
	last := lastEvent(t, env, st.ID)
	assert.Equal(t, events.TenantDeleted{Name: name}, last.Event)
	assert.Equal(t, "drain-1", last.Metadata.CorrelationID)
	assert.Equal(t, 0, drainRows(t, env, st.ID))
	loaded, err := env.Tenants.Load(ctx, st.ID)
	require.NoError(t, err)
	assert.False(t, loaded.Exists())
	create(t, env, name, 1) // the name is free again
}

// Past its deadline a drain is no longer acted on: the tenant stays draining. Asking
// again re-arms it.
func TestDrainGivesUpAtTheDeadlineAndCanBeReArmed(t *testing.T) {
	t.Parallel()
	env, probe := drainEnv(t)
	ctx := context.Background()
	st := create(t, env, "timeout-"+uuid.NewString(), 1)
	_, err := env.Tenants.RequestDeletion(ctx, tenant.Meta{}, st.ID, time.Minute, nil)
	require.NoError(t, err)
	_, err = env.DB.Exec(`UPDATE tenant_drains SET deadline = now() - interval '1 second' WHERE tenant_id = $1`, st.ID)
	require.NoError(t, err)

	d := env.Tenants.NewDrains(probe)
	for range 3 {
		require.NoError(t, d.Check(ctx))
	}
	loaded, err := env.Tenants.Load(ctx, st.ID)
	require.NoError(t, err)
	assert.Equal(t, tenant.StatusDraining, loaded.Status, "the queue is empty, but the deadline passed")
	assert.Equal(t, 1, drainRows(t, env, st.ID))

	before := time.Now()
	st, err = env.Tenants.RequestDeletion(ctx, tenant.Meta{}, st.ID, 2*time.Minute, ptr(2))
	require.NoError(t, err)
	assert.Equal(t, 3, st.Version)
	assert.WithinDuration(t, before.Add(2*time.Minute), st.DrainDeadline, 5*time.Second)
	require.NoError(t, d.Check(ctx))
	require.NoError(t, d.Check(ctx))
	assert.Equal(t, []int{1, 2, 3, 4}, env.Versions(t, st.ID), "re-armed and empty: deleted")
}

// Several replicas completing the same drain record one deletion.
func TestDrainCompletesOnceWithSeveralReplicas(t *testing.T) {
	t.Parallel()
	env, probe := drainEnv(t)
	ctx := context.Background()
	st := create(t, env, "replicas-"+uuid.NewString(), 1)
	_, err := env.Tenants.RequestDeletion(ctx, tenant.Meta{}, st.ID, time.Minute, nil)
	require.NoError(t, err)
	replicas := []*tenant.Drains{env.Tenants.NewDrains(probe), env.Tenants.NewDrains(probe), env.Tenants.NewDrains(probe)}
	for range 2 {
		var wg sync.WaitGroup
		errs := make([]error, len(replicas))
		for i, d := range replicas {
			wg.Go(func() { errs[i] = d.Check(ctx) })
		}
		wg.Wait()
		require.NoError(t, errors.Join(errs...))
	}
	assert.Equal(t, []int{1, 2, 3}, env.Versions(t, st.ID))
	_, ok := lastEvent(t, env, st.ID).Event.(events.TenantDeleted)
	assert.True(t, ok)
}

// A plain delete of a draining tenant ends the drain.
func TestPlainDeleteEndsADrain(t *testing.T) {
	t.Parallel()
	env := commandtest.New(t, nil)
	ctx := context.Background()
	st := create(t, env, "plain-"+uuid.NewString(), 1)
	_, err := env.Tenants.RequestDeletion(ctx, tenant.Meta{}, st.ID, time.Minute, nil)
	require.NoError(t, err)
	_, err = env.Tenants.Delete(ctx, tenant.Meta{}, st.ID, nil)
	require.NoError(t, err)
	assert.Equal(t, 0, drainRows(t, env, st.ID))
	_, err = env.Tenants.RequestDeletion(ctx, tenant.Meta{}, st.ID, time.Minute, nil)
	require.ErrorIs(t, err, tenant.ErrNotFound)
}

// fakeRepublisher records what it republished and fails once failAfter succeeded.
type fakeRepublisher struct {
	mu        sync.Mutex
	published []string // message ids
	failAfter int      // -1: never
}

func (f *fakeRepublisher) Republish(_ context.Context, _, messageID string, _ []byte, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failAfter >= 0 && len(f.published) >= f.failAfter {
		return broker.ErrUnavailable
	}
	f.published = append(f.published, messageID)
	return nil
}

// A redrive the broker stops part way marks what moved and leaves the rest pending; the
// same redrive again moves only the rest, and once more nothing.
func TestRedriveStoppedPartWayMovesTheRestOnARerun(t *testing.T) {
	t.Parallel()
	env := commandtest.New(t, nil)
	ctx := context.Background()
	st := create(t, env, "partial-"+uuid.NewString(), 1)
	t0 := time.Now().Add(-time.Hour)
	var ids []string
	for i := range 5 {
		id := uuid.NewString()
		ids = append(ids, id)
		env.SeedDeadLetters(t, st.ID, commandtest.DeadLetter{ID: id, MessageID: "m-" + id, Reason: "expired", Body: []byte(`{}`), FirstAt: t0.Add(time.Duration(i) * time.Second)})
	}
	// A dead letter that came without a message id goes back under its row id.
	anonymous := uuid.NewString()
	env.SeedDeadLetters(t, st.ID, commandtest.DeadLetter{ID: anonymous, Reason: "invalid_json", Body: []byte(`x`), FirstAt: t0})
	pub := &fakeRepublisher{failAfter: -1}
	env.Tenants.WithRedrive(pub, 100_000)
	_, err := env.Tenants.RedriveDeadLetters(ctx, tenant.Meta{}, st.ID, events.DeadLetterSelector{IDs: []string{anonymous}}, false, nil)
	require.NoError(t, err)
	require.Equal(t, []string{anonymous}, pub.published)
	pub.published = nil

	pub.failAfter = 2
	sel := events.DeadLetterSelector{Reason: "expired"}

	_, err = env.Tenants.RedriveDeadLetters(ctx, tenant.Meta{CorrelationID: "r-1"}, st.ID, sel, false, nil)
	var rerr *tenant.RedriveError
	require.ErrorAs(t, err, &rerr)
	assert.Equal(t, 5, rerr.Matched)
	assert.Equal(t, 2, rerr.Moved)
	require.ErrorIs(t, err, broker.ErrUnavailable)
	for i, id := range ids {
		want := "pending"
		if i < 2 {
			want = "redriven"
		}
		assert.Equal(t, want, env.DeadLetterStatus(t, st.ID, id), "dead letter %d", i)
	}
	last := lastEvent(t, env, st.ID)
	assert.Equal(t, events.DeadLettersRedriven{Selector: events.DeadLetterSelector{Reason: "expired", Max: 1000}, Count: 5}, last.Event)
	assert.Equal(t, "r-1", last.Metadata.CorrelationID)

	pub.failAfter = -1
	res, err := env.Tenants.RedriveDeadLetters(ctx, tenant.Meta{}, st.ID, sel, false, nil)
	require.NoError(t, err)
	assert.Equal(t, 3, res.Matched)
	assert.Equal(t, []string{"m-" + ids[0], "m-" + ids[1], "m-" + ids[2], "m-" + ids[3], "m-" + ids[4]}, pub.published, "each once, oldest first")
	for _, id := range ids {
		assert.Equal(t, "redriven", env.DeadLetterStatus(t, st.ID, id))
	}
	versions := env.Versions(t, st.ID)
	res, err = env.Tenants.RedriveDeadLetters(ctx, tenant.Meta{}, st.ID, sel, false, nil)
	require.NoError(t, err)
	assert.Equal(t, 0, res.Matched)
	assert.Equal(t, versions, env.Versions(t, st.ID), "nothing matched, nothing recorded")
}

// With accounts on, a drain request takes the tenant's broker user's write permission
// and connections away: its producers cannot add to the queue being emptied.
func TestDrainRevokesTheTenantsBrokerWrite(t *testing.T) {
	t.Parallel()
	env := withAccounts(t, commandtest.Accounts(t))
	ctx := context.Background()
	st, creds, err := env.Tenants.Create(ctx, tenant.Meta{}, "revoke-"+uuid.NewString(), nil)
	require.NoError(t, err)
	amqptest.CleanupTenant(t, st.ID)
	conn, err := commandtest.DialTenant(t, *creds)
	require.NoError(t, err)
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))

	_, err = env.Tenants.RequestDeletion(ctx, tenant.Meta{}, st.ID, time.Minute, nil)
	require.NoError(t, err)
	waitClosed(t, closed, "the tenant's connection")
	assert.True(t, userExists(t, st.ID), "the user stays until the tenant is deleted")

	conn, err = commandtest.DialTenant(t, *creds)
	require.NoError(t, err, "the password still works")
	ch, err := conn.Channel()
	require.NoError(t, err)
	chClosed := ch.NotifyClose(make(chan *amqp.Error, 1))
	require.NoError(t, ch.Confirm(false))
	_, err = ch.PublishWithDeferredConfirmWithContext(ctx, rabbit.ExchangeName(st.ID), "", false, false, amqp.Publishing{Body: []byte(`{}`)})
	require.NoError(t, err)
	select {
	case e := <-chClosed:
		require.NotNil(t, e)
		assert.Equal(t, amqp.AccessRefused, e.Code)
	case <-time.After(10 * time.Second):
		t.Fatal("publishing of a draining tenant's user was not refused")
	}
}
func ptr(n int) *int { return &n }
