//go:build integration

package tenant_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/amqptest"
	"github.com/multitenant/mtm/platform/rabbit"
	"github.com/multitenant/mtm/services/command/internal/commandtest"
	"github.com/multitenant/mtm/services/command/internal/tenant"
)

// spyAccounts records the tenants it granted and can fail deletes or run a hook first.
type spyAccounts struct {
	tenant.Accounts
	mu          sync.Mutex
	granted     []string
	beforeGrant func(id string)
	failDelete  atomic.Bool
}

func (s *spyAccounts) Grant(ctx context.Context, id string) (tenant.Credentials, error) {
	s.mu.Lock()
	s.granted = append(s.granted, id)
	hook := s.beforeGrant
	s.beforeGrant = nil
	s.mu.Unlock()
	if hook != nil {
		hook(id)
	}
	return s.Accounts.Grant(ctx, id)
}

func (s *spyAccounts) Delete(ctx context.Context, id string) error {
	if s.failDelete.Load() {
		return errors.New("management API away")
	}
	return s.Accounts.Delete(ctx, id)
}

func (s *spyAccounts) grantedIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.granted...)
}

func withAccounts(t *testing.T, a tenant.Accounts) commandtest.Env {
	t.Helper()
	env := commandtest.New(t, nil)
	env.Tenants.WithAccounts(a)
	return env
}

func userExists(t *testing.T, tenantID string) bool {
	t.Helper()
	ok, err := amqptest.Admin(t).UserExists(context.Background(), rabbit.UserName(tenantID))
	require.NoError(t, err)
	return ok
}

func queueExists(t *testing.T, tenantID string) bool {
	t.Helper()
	_, err := amqptest.Inspect(t, amqptest.Dial(t), rabbit.QueueName(tenantID))
	return err == nil
}

func waitClosed(t *testing.T, closed <-chan *amqp.Error, what string) {
	t.Helper()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s stayed open", what)
	}
}

func TestCreateGrantsAnAccountAndDeleteRemovesIt(t *testing.T) {
	t.Parallel()
	env := withAccounts(t, commandtest.Accounts(t))
	ctx := context.Background()
	st, creds, err := env.Tenants.Create(ctx, tenant.Meta{}, "acct-"+uuid.NewString(), nil)
	require.NoError(t, err)
	amqptest.CleanupTenant(t, st.ID)
	require.NotNil(t, creds)
	assert.Equal(t, rabbit.UserName(st.ID), creds.Username)

	// The credentials work as soon as Create returns.
	conn, err := commandtest.DialTenant(t, *creds)
	require.NoError(t, err)
	ch, err := conn.Channel()
	require.NoError(t, err)
	require.NoError(t, ch.Confirm(false))
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, rabbit.ExchangeName(st.ID), "", false, false, amqp.Publishing{Body: []byte(`{}`)})
	require.NoError(t, err)
	ok, err := dc.WaitContext(t.Context())
	require.NoError(t, err)
	require.True(t, ok)

	// Only the broker has the password (hashed); no event carries it.
	stored, err := env.Store.Load(ctx, st.ID)
	require.NoError(t, err)
	var raw string
	require.NoError(t, env.DB.QueryRow(`SELECT payload::text FROM event_store WHERE stream_id = $1`, st.ID).Scan(&raw))
	assert.NotContains(t, raw, creds.Password)
	require.Len(t, stored, 1)

	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	_, err = env.Tenants.Delete(ctx, tenant.Meta{}, st.ID, nil)
	require.NoError(t, err)
	assert.False(t, userExists(t, st.ID), "the user goes with the tenant")
	waitClosed(t, closed, "the deleted user's connection")
}

func TestAccountsOffCreateHasNoCredentials(t *testing.T) {
	t.Parallel()
	env := commandtest.New(t, nil)
	st, creds, err := env.Tenants.Create(context.Background(), tenant.Meta{}, "plain-"+uuid.NewString(), nil)
	require.NoError(t, err)
	amqptest.CleanupTenant(t, st.ID)
	assert.Nil(t, creds)
	assert.False(t, env.Tenants.AccountsEnabled())
	assert.False(t, userExists(t, st.ID))
	_, err = env.Tenants.RotateCredentials(context.Background(), tenant.Meta{}, st.ID)
	require.ErrorIs(t, err, tenant.ErrAccountsDisabled)
}

func TestCreateWithManagementDownRecordsNothingAndLeavesNothing(t *testing.T) {
	t.Parallel()
	spy := &spyAccounts{Accounts: commandtest.DownAccounts(t)}
	env := withAccounts(t, spy)
	_, creds, err := env.Tenants.Create(context.Background(), tenant.Meta{}, "down-"+uuid.NewString(), nil)
	require.ErrorIs(t, err, tenant.ErrUnavailable)
	assert.Nil(t, creds)
	assert.Equal(t, 0, env.EventCount(t))
	ids := spy.grantedIDs()
	require.Len(t, ids, 1)
	amqptest.CleanupTenant(t, ids[0])
	assert.False(t, queueExists(t, ids[0]), "the queues declared first are removed again")
	assert.False(t, userExists(t, ids[0]))
}

// Concurrent creates of one name all grant a user before the append decides: the
// losers' users are deleted with their queues.
func TestLosingCreatesLeaveNoAccount(t *testing.T) {
	t.Parallel()
	spy := &spyAccounts{Accounts: commandtest.Accounts(t)}
	env := withAccounts(t, spy)
	name := "race-acct-" + uuid.NewString()
	var wg sync.WaitGroup
	var won []string
	var mu sync.Mutex
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, _, err := env.Tenants.Create(context.Background(), tenant.Meta{}, name, nil)
			if err != nil {
				assert.ErrorIs(t, err, tenant.ErrDuplicateName)
				return
			}
			mu.Lock()
			won = append(won, st.ID)
			mu.Unlock()
		}()
	}
	wg.Wait()
	for _, id := range spy.grantedIDs() {
		amqptest.CleanupTenant(t, id)
	}
	require.Len(t, won, 1)
	for _, id := range spy.grantedIDs() {
		assert.Equal(t, id == won[0], userExists(t, id), id)
	}
}

func TestRotateCredentials(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := withAccounts(t, commandtest.Accounts(t))
	st, first, err := env.Tenants.Create(ctx, tenant.Meta{}, "rot-"+uuid.NewString(), nil)
	require.NoError(t, err)
	amqptest.CleanupTenant(t, st.ID)
	old, err := commandtest.DialTenant(t, *first)
	require.NoError(t, err)
	oldClosed := old.NotifyClose(make(chan *amqp.Error, 1))

	second, err := env.Tenants.RotateCredentials(ctx, tenant.Meta{CorrelationID: "rot"}, st.ID)
	require.NoError(t, err)
	assert.Equal(t, first.Username, second.Username)
	assert.NotEqual(t, first.Password, second.Password)
	waitClosed(t, oldClosed, "a connection opened with the old password")
	_, err = commandtest.DialTenant(t, *first)
	require.Error(t, err)
	_, err = commandtest.DialTenant(t, second)
	require.NoError(t, err)
	assert.Equal(t, []int{1}, env.Versions(t, st.ID), "a rotation records no event")

	_, err = env.Tenants.RotateCredentials(ctx, tenant.Meta{}, uuid.NewString())
	require.ErrorIs(t, err, tenant.ErrNotFound)
	_, err = env.Tenants.Delete(ctx, tenant.Meta{}, st.ID, nil)
	require.NoError(t, err)
	_, err = env.Tenants.RotateCredentials(ctx, tenant.Meta{}, st.ID)
	require.ErrorIs(t, err, tenant.ErrNotFound)
	assert.False(t, userExists(t, st.ID))
}

// A tenant created while accounts were off gets its first user by rotation.
func TestRotateGivesAnOlderTenantItsFirstAccount(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := commandtest.New(t, nil)
	st, creds, err := env.Tenants.Create(ctx, tenant.Meta{}, "legacy-"+uuid.NewString(), nil)
	require.NoError(t, err)
	amqptest.CleanupTenant(t, st.ID)
	require.Nil(t, creds)
	env.Tenants.WithAccounts(commandtest.Accounts(t))
	got, err := env.Tenants.RotateCredentials(ctx, tenant.Meta{}, st.ID)
	require.NoError(t, err)
	_, err = commandtest.DialTenant(t, got)
	require.NoError(t, err)
}

// A delete that lands between the rotation's load and its grant must not leave the
// deleted tenant with a freshly made user.
func TestRotateRacingDeleteLeavesNoAccount(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	spy := &spyAccounts{Accounts: commandtest.Accounts(t)}
	env := withAccounts(t, spy)
	st, _, err := env.Tenants.Create(ctx, tenant.Meta{}, "rot-race-"+uuid.NewString(), nil)
	require.NoError(t, err)
	amqptest.CleanupTenant(t, st.ID)
	spy.mu.Lock()
	spy.beforeGrant = func(id string) {
		_, err := env.Tenants.Delete(ctx, tenant.Meta{}, id, nil)
		assert.NoError(t, err)
	}
	spy.mu.Unlock()
	_, err = env.Tenants.RotateCredentials(ctx, tenant.Meta{}, st.ID)
	require.ErrorIs(t, err, tenant.ErrNotFound)
	assert.False(t, userExists(t, st.ID))
}

// A delete whose user removal failed is finished by the sweep; users of live tenants
// and of tenants this store does not know are left alone.
func TestSweepDeletesOnlyUsersOfDeletedTenants(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	spy := &spyAccounts{Accounts: commandtest.Accounts(t)}
	env := withAccounts(t, spy)
	deleted, _, err := env.Tenants.Create(ctx, tenant.Meta{}, "sweep-del-"+uuid.NewString(), nil)
	require.NoError(t, err)
	amqptest.CleanupTenant(t, deleted.ID)
	live, _, err := env.Tenants.Create(ctx, tenant.Meta{}, "sweep-live-"+uuid.NewString(), nil)
	require.NoError(t, err)
	amqptest.CleanupTenant(t, live.ID)
	foreign := uuid.Must(uuid.NewV7()).String()
	amqptest.CleanupTenant(t, foreign)
	_, err = commandtest.Accounts(t).Grant(ctx, foreign)
	require.NoError(t, err)

	spy.failDelete.Store(true)
	_, err = env.Tenants.Delete(ctx, tenant.Meta{}, deleted.ID, nil)
	require.NoError(t, err, "the delete is recorded even when the user cannot be removed yet")
	require.True(t, userExists(t, deleted.ID))

	spy.failDelete.Store(false)
	n, err := env.Tenants.SweepAccounts(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.False(t, userExists(t, deleted.ID))
	assert.True(t, userExists(t, live.ID))
	assert.True(t, userExists(t, foreign))
	n, err = env.Tenants.SweepAccounts(ctx)
	require.NoError(t, err)
	assert.Equal(t, 0, n, "nothing left to do")
}
