//go:build integration

package tenant_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/events"
	"github.com/multitenant/mtm/platform/amqptest"
	"github.com/multitenant/mtm/platform/rabbit"
	"github.com/multitenant/mtm/services/command/internal/commandtest"
	"github.com/multitenant/mtm/services/command/internal/tenant"
)

func create(t *testing.T, env commandtest.Env, name string, workers int) tenant.State {
	t.Helper()
	st, _, err := env.Tenants.Create(context.Background(), tenant.Meta{CorrelationID: "c-1"}, name, &workers)
	require.NoError(t, err)
	amqptest.CleanupTenant(t, st.ID)
	return st
}

func TestConcurrentCommandsAtSameVersion(t *testing.T) {
	t.Parallel()
	env := commandtest.New(t, nil)
	ctx := context.Background()
	st := create(t, env, "race-"+uuid.NewString(), 1)
	require.Equal(t, 1, st.Version)

	const n = 20
	run := func(expected *int, workers func(i int) int) []error {
		var wg sync.WaitGroup
		errs := make([]error, n)
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[i] = env.Tenants.ChangeConcurrency(ctx, tenant.Meta{}, st.ID, workers(i), expected)
			}()
		}
		close(start)
		wg.Wait()
		return errs
	}

	// All 20 read version 1 (If-Match 1): exactly one wins, the rest get 412.
	v1 := 1
	errs := run(&v1, func(i int) int { return i + 2 })
	var won, stale int
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case assert.ErrorIs(t, err, tenant.ErrVersionMismatch):
			stale++
		}
	}
	assert.Equal(t, 1, won)
	assert.Equal(t, n-1, stale)
	assert.Equal(t, []int{1, 2}, env.Versions(t, st.ID))

	// Without If-Match each command decides on whatever it loaded: some win, the
	// others conflict (409); the versions stay contiguous either way.
	errs = run(nil, func(i int) int { return 30 + i })
	won = 0
	for _, err := range errs {
		if err == nil {
			won++
		} else {
			assert.ErrorIs(t, err, tenant.ErrConflict)
		}
	}
	require.GreaterOrEqual(t, won, 1)
	want := make([]int, 2+won)
	for i := range want {
		want[i] = i + 1
	}
	assert.Equal(t, want, env.Versions(t, st.ID))
	assert.Equal(t, len(want), env.EventCount(t), "one event per successful command")
}

func TestCreateDeclaresQueueAndRecordsEvent(t *testing.T) {
	t.Parallel()
	env := commandtest.New(t, nil)
	ctx := context.Background()
	st := create(t, env, "  Queue Co  ", 4)
	assert.Equal(t, tenant.State{ID: st.ID, Name: "Queue Co", Workers: 4, Status: tenant.StatusActive, Version: 1}, st)

	conn := amqptest.Dial(t)
	q, err := amqptest.Inspect(t, conn, rabbit.QueueName(st.ID))
	require.NoError(t, err, "queue must exist when Create returns")
	assert.Equal(t, 0, q.Messages)
	_, err = amqptest.Inspect(t, conn, rabbit.DLQName(st.ID))
	require.NoError(t, err, "dead-letter queue must exist")

	stored, err := env.Store.Load(ctx, st.ID)
	require.NoError(t, err)
	require.Len(t, stored, 1)
	assert.Equal(t, events.TenantCreated{Name: "Queue Co", Workers: 4}, stored[0].Event)
	assert.Equal(t, "c-1", stored[0].Metadata.CorrelationID)
	_, err = uuid.Parse(stored[0].Metadata.EventID)
	assert.NoError(t, err)
	assert.False(t, stored[0].Metadata.OccurredAt.IsZero())
}

func TestNamesAreUniqueUntilDeleted(t *testing.T) {
	t.Parallel()
	env := commandtest.New(t, nil)
	ctx := context.Background()
	name := "uniq-" + uuid.NewString()

	// Ten concurrent creates of one name: exactly one succeeds.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var created []tenant.State
	var dup int
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, _, err := env.Tenants.Create(ctx, tenant.Meta{}, name, nil)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				created = append(created, st)
				return
			}
			assert.ErrorIs(t, err, tenant.ErrDuplicateName)
			dup++
		}()
	}
	wg.Wait()
	for _, st := range created {
		amqptest.CleanupTenant(t, st.ID)
	}
	require.Len(t, created, 1)
	assert.Equal(t, 9, dup)
	assert.Equal(t, 3, created[0].Workers, "default workers")
	assert.Equal(t, 1, env.EventCount(t))

	// Names differ only in case: still a duplicate.
	_, _, err := env.Tenants.Create(ctx, tenant.Meta{}, " "+strings.ToUpper(name)+" ", nil)
	assert.ErrorIs(t, err, tenant.ErrDuplicateName)

	deleted, err := env.Tenants.Delete(ctx, tenant.Meta{}, created[0].ID, nil)
	require.NoError(t, err)
	assert.Equal(t, 2, deleted.Version)
	assert.Equal(t, tenant.StatusDeleted, deleted.Status)

	again := create(t, env, name, 2)
	assert.NotEqual(t, created[0].ID, again.ID, "the freed name is reusable by a new tenant")

	_, err = env.Tenants.Delete(ctx, tenant.Meta{}, created[0].ID, nil)
	assert.ErrorIs(t, err, tenant.ErrNotFound)
	_, err = env.Tenants.ChangeConcurrency(ctx, tenant.Meta{}, created[0].ID, 5, nil)
	assert.ErrorIs(t, err, tenant.ErrNotFound)
	assert.Equal(t, 3, env.EventCount(t))
}

func TestCreateWithBrokerDownRecordsNothing(t *testing.T) {
	t.Parallel()
	env := commandtest.New(t, commandtest.DownConn())
	_, _, err := env.Tenants.Create(context.Background(), tenant.Meta{}, "offline", nil)
	require.ErrorIs(t, err, tenant.ErrUnavailable)
	assert.Equal(t, 0, env.EventCount(t))
	var names int
	require.NoError(t, env.DB.QueryRow(`SELECT count(*) FROM tenant_names`).Scan(&names))
	assert.Equal(t, 0, names)
}

// MAX_TOTAL_WORKERS holds under concurrent commands: of 20 creations racing for room
// for 5, exactly 5 succeed, and of 4 resizes racing for room for one, exactly one does.
func TestCapacityHoldsUnderConcurrentCommands(t *testing.T) {
	t.Parallel()
	limits := commandtest.Limits
	limits.MaxWorkers, limits.MaxTotalWorkers = 4, 10
	env := commandtest.NewWithLimits(t, nil, limits)
	ctx := context.Background()
	prefix := "cap-" + uuid.NewString()[:8]

	const n = 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	var created []tenant.State
	var full int
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			workers := 2
			st, _, err := env.Tenants.Create(ctx, tenant.Meta{}, fmt.Sprintf("%s-%d", prefix, i), &workers)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				created = append(created, st)
				return
			}
			assert.ErrorIs(t, err, tenant.ErrCapacity)
			full++
		}()
	}
	close(start)
	wg.Wait()
	for _, st := range created {
		amqptest.CleanupTenant(t, st.ID)
	}
	require.Len(t, created, 5, "10 / 2 workers")
	assert.Equal(t, n-5, full)
	assert.Equal(t, 5, env.EventCount(t))
	assert.Equal(t, 10, claimed(t, env))

	// Room for one resize of 2 → 4 after a deletion: four tenants race for it.
	_, err := env.Tenants.Delete(ctx, tenant.Meta{}, created[4].ID, nil)
	require.NoError(t, err)
	assert.Equal(t, 8, claimed(t, env))
	errs := make([]error, 4)
	start = make(chan struct{})
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = env.Tenants.ChangeConcurrency(ctx, tenant.Meta{}, created[i].ID, 4, nil)
		}()
	}
	close(start)
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
			continue
		}
		assert.ErrorIs(t, err, tenant.ErrCapacity)
	}
	assert.Equal(t, 1, won)
	assert.Equal(t, 10, claimed(t, env))

	// Shrinking always passes, and the room it makes can be taken, exactly.
	_, err = env.Tenants.ChangeConcurrency(ctx, tenant.Meta{}, created[0].ID, 1, nil)
	require.NoError(t, err)
	free := limits.MaxTotalWorkers - claimed(t, env)
	require.Positive(t, free)
	create(t, env, prefix+"-late", free)
	one := 1
	_, _, err = env.Tenants.Create(ctx, tenant.Meta{}, prefix+"-full", &one)
	require.ErrorIs(t, err, tenant.ErrCapacity)
	assert.Equal(t, limits.MaxTotalWorkers, claimed(t, env))
}

// MAX_TENANTS holds under concurrent creations: of 20 racing for room for 4, exactly 4
// succeed, the others record nothing (no event, name or claim, and no queue left
// behind), and a deletion makes room for exactly one more.
func TestTenantLimitHoldsUnderConcurrentCreates(t *testing.T) {
	t.Parallel()
	limits := commandtest.Limits
	limits.MaxTenants = 4
	env := commandtest.NewWithLimits(t, nil, limits)
	ctx := context.Background()
	prefix := "max-" + uuid.NewString()[:8]

	const n = 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	var created []tenant.State
	var full int
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			st, _, err := env.Tenants.Create(ctx, tenant.Meta{}, fmt.Sprintf("%s-%d", prefix, i), nil)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				created = append(created, st)
				return
			}
			var lerr *tenant.TenantLimitError
			if assert.ErrorAs(t, err, &lerr) {
				assert.Equal(t, 4, lerr.Max)
			}
			assert.ErrorIs(t, err, tenant.ErrCapacity)
			full++
		}()
	}
	close(start)
	wg.Wait()
	for _, st := range created {
		amqptest.CleanupTenant(t, st.ID)
	}
	require.Len(t, created, 4)
	assert.Equal(t, n-4, full)
	assert.Equal(t, 4, env.EventCount(t))
	var names, claims int
	require.NoError(t, env.DB.QueryRow(`SELECT (SELECT count(*) FROM tenant_names), (SELECT count(*) FROM worker_claims)`).Scan(&names, &claims))
	assert.Equal(t, 4, names)
	assert.Equal(t, 4, claims)

	// A deleted tenant frees its place, for exactly one creation.
	_, err := env.Tenants.Delete(ctx, tenant.Meta{}, created[0].ID, nil)
	require.NoError(t, err)
	create(t, env, prefix+"-late", 1)
	_, _, err = env.Tenants.Create(ctx, tenant.Meta{}, prefix+"-full", nil)
	require.ErrorIs(t, err, tenant.ErrCapacity)

	// Growing an existing tenant is not a new tenant: MAX_TENANTS does not refuse it.
	_, err = env.Tenants.ChangeConcurrency(ctx, tenant.Meta{}, created[1].ID, 5, nil)
	require.NoError(t, err)
}

// claimed is the workers the command's claims table holds over all tenants.
func claimed(t *testing.T, env commandtest.Env) int {
	t.Helper()
	var n int
	require.NoError(t, env.DB.QueryRow(`SELECT COALESCE(sum(workers), 0) FROM worker_claims`).Scan(&n))
	return n
}
