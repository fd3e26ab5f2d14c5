package tenant

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/events"
)

var limits = Limits{DefaultWorkers: 3, MaxWorkers: 64, MaxTotalWorkers: 1024, MaxTenants: 1000, DefaultRate: RateLimit{PerSecond: 1000, Burst: 2000}}

func ptr(n int) *int { return &n }

func active(version, workers int) State {
	return State{ID: "t", Name: "acme", Workers: workers, Status: StatusActive, Version: version}
}

func TestReplay(t *testing.T) {
	recs := []events.Recorded{
		{Envelope: events.Envelope{Version: 1}, Event: events.TenantCreated{Name: "acme", Workers: 2}},
		{Envelope: events.Envelope{Version: 2}, Event: events.TenantConcurrencyChanged{Workers: 7, PreviousWorkers: 2}},
		{Envelope: events.Envelope{Version: 3}, Event: nil}, // unknown type from a newer writer
	}
	s := Replay("t", recs)
	assert.Equal(t, State{ID: "t", Name: "acme", Workers: 7, Status: StatusActive, Version: 3}, s)
	assert.Equal(t, limits.DefaultRate, limits.RateFor(s), "no limit of its own: the default")

	limited := s.Apply(4, events.TenantRateLimitChanged{PerSecond: 5, Burst: 10})
	assert.Equal(t, State{ID: "t", Name: "acme", Workers: 7, RateLimit: &RateLimit{PerSecond: 5, Burst: 10}, Status: StatusActive, Version: 4}, limited)
	assert.Equal(t, RateLimit{PerSecond: 5, Burst: 10}, limits.RateFor(limited))
	assert.True(t, limits.RateFor(limited.Apply(5, events.TenantRateLimitChanged{})).Unlimited())
	assert.Nil(t, s.RateLimit, "Apply does not change its receiver")
	assert.True(t, s.Exists())

	s = s.Apply(4, events.TenantDeleted{Name: "acme"})
	assert.False(t, s.Exists())
	assert.Equal(t, 4, s.Version)
	assert.False(t, Replay("t", nil).Exists(), "empty stream")
}

func TestLimits(t *testing.T) {
	require.NoError(t, limits.Validate())
	require.NoError(t, Limits{DefaultWorkers: 1, MaxWorkers: 1, MaxTotalWorkers: 1, MaxTenants: 1}.Validate(), "rate limit off")
	require.NoError(t, Limits{DefaultWorkers: 1, MaxWorkers: 1, MaxTotalWorkers: 1, MaxTenants: 1, DefaultRate: RateLimit{PerSecond: 1, Burst: 1}}.Validate())
	for _, tc := range []struct {
		l    Limits
		want string
	}{
		{Limits{DefaultWorkers: 1, MaxWorkers: 0}, "MAX_WORKERS: must be at least 1, got 0"},
		{Limits{DefaultWorkers: 1, MaxWorkers: -1}, "MAX_WORKERS: must be at least 1, got -1"},
		{Limits{DefaultWorkers: 0, MaxWorkers: 64}, "WORKERS: must be between 1 and MAX_WORKERS (64), got 0"},
		{Limits{DefaultWorkers: 65, MaxWorkers: 64}, "WORKERS: must be between 1 and MAX_WORKERS (64), got 65"},
		{Limits{DefaultWorkers: 3, MaxWorkers: 64, MaxTotalWorkers: 63}, "MAX_TOTAL_WORKERS: must be at least MAX_WORKERS (64), got 63"},
		{Limits{DefaultWorkers: 3, MaxWorkers: 64, MaxTotalWorkers: 64}, "MAX_TENANTS: must be at least 1, got 0"},
		{Limits{DefaultWorkers: 3, MaxWorkers: 64, MaxTotalWorkers: 64, MaxTenants: 1, DefaultRate: RateLimit{PerSecond: -1}}, "TENANT_RATE_LIMIT: must be between 0 (unlimited) and 1000000, got -1"},
		{Limits{DefaultWorkers: 3, MaxWorkers: 64, MaxTotalWorkers: 64, MaxTenants: 1, DefaultRate: RateLimit{PerSecond: 1_000_001, Burst: 1}}, "TENANT_RATE_LIMIT: must be between 0 (unlimited) and 1000000, got 1000001"},
		{Limits{DefaultWorkers: 3, MaxWorkers: 64, MaxTotalWorkers: 64, MaxTenants: 1, DefaultRate: RateLimit{PerSecond: 10, Burst: 0}}, "TENANT_RATE_BURST: must be between 1 and 1000000, got 0"},
	} {
		assert.EqualError(t, tc.l.Validate(), tc.want, "%+v", tc.l)
	}

	for _, n := range []int{1, 3, 64} {
		assert.NoError(t, limits.CheckWorkers(n), n)
	}
	for _, n := range []int{0, -1, 65} {
		assert.EqualError(t, limits.CheckWorkers(n), "must be an integer between 1 and 64", n)
	}
	assert.Equal(t, "must be an integer between 1 and 64", limits.WorkersRule())
}

func TestDecideCreate(t *testing.T) {
	tests := []struct {
		name      string
		inName    string
		workers   *int
		want      events.TenantCreated
		badFields []string
	}{
		{"defaults workers", "acme", nil, events.TenantCreated{Name: "acme", Workers: 3}, nil},
		{"trims name", "  Acme Corp\t", ptr(64), events.TenantCreated{Name: "Acme Corp", Workers: 64}, nil},
		{"unicode name", "Zürich Ünïcødé 株式会社", ptr(1), events.TenantCreated{Name: "Zürich Ünïcødé 株式会社", Workers: 1}, nil},
		{"200 characters", strings.Repeat("é", 200), nil, events.TenantCreated{Name: strings.Repeat("é", 200), Workers: 3}, nil},
		{"empty name", "", nil, events.TenantCreated{}, []string{"name"}},
		{"blank name", "   ", nil, events.TenantCreated{}, []string{"name"}},
		{"201 characters", strings.Repeat("a", 201), nil, events.TenantCreated{}, []string{"name"}},
		{"control character", "ac\x00me", nil, events.TenantCreated{}, []string{"name"}},
		{"zero-width character", "ac\u200bme", nil, events.TenantCreated{}, []string{"name"}},
		{"zero workers", "acme", ptr(0), events.TenantCreated{}, []string{"workers"}},
		{"negative workers", "acme", ptr(-1), events.TenantCreated{}, []string{"workers"}},
		{"too many workers", "acme", ptr(65), events.TenantCreated{}, []string{"workers"}},
		{"both invalid", "", ptr(0), events.TenantCreated{}, []string{"name", "workers"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecideCreate(limits, tc.inName, tc.workers)
			if tc.badFields == nil {
				require.NoError(t, err)
				assert.Equal(t, tc.want, got)
				return
			}
			var verr *ValidationError
			require.ErrorAs(t, err, &verr)
			var fields []string
			for _, f := range verr.Fields {
				fields = append(fields, f.Field)
			}
			assert.Equal(t, tc.badFields, fields)
		})
	}
}

func TestDecideConcurrency(t *testing.T) {
	deleted := active(3, 2)
	deleted.Status = StatusDeleted
	tests := []struct {
		name     string
		state    State
		workers  int
		expected *int
		want     events.Event
		err      error
	}{
		{"grow", active(1, 3), 5, nil, events.TenantConcurrencyChanged{Workers: 5, PreviousWorkers: 3}, nil},
		{"shrink with matching If-Match", active(4, 8), 1, ptr(4), events.TenantConcurrencyChanged{Workers: 1, PreviousWorkers: 8}, nil},
		{"same count records nothing", active(2, 5), 5, nil, nil, nil},
		{"stale If-Match", active(4, 8), 2, ptr(3), nil, ErrVersionMismatch},
		{"stale If-Match on same count", active(4, 8), 8, ptr(3), nil, ErrVersionMismatch},
		{"unknown tenant", State{ID: "t"}, 2, nil, nil, ErrNotFound},
		{"deleted tenant", deleted, 2, nil, nil, ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecideConcurrency(limits, tc.state, tc.workers, tc.expected)
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
	for _, n := range []int{0, -1, 65} {
		_, err := DecideConcurrency(limits, active(1, 3), n, nil)
		var verr *ValidationError
		assert.ErrorAs(t, err, &verr, "workers=%d", n)
	}
}

func TestCheckTenants(t *testing.T) {
	l := Limits{MaxTenants: 3}
	require.NoError(t, l.CheckTenants(0))
	require.NoError(t, l.CheckTenants(2), "the last one fits")
	for _, live := range []int{3, 7} { // 7: MAX_TENANTS was lowered below what exists
		err := l.CheckTenants(live)
		require.ErrorIs(t, err, ErrCapacity)
		var lerr *TenantLimitError
		require.ErrorAs(t, err, &lerr)
		assert.Equal(t, TenantLimitError{Max: 3, Live: live}, *lerr)
	}
}

func TestCheckCapacity(t *testing.T) {
	l := Limits{DefaultWorkers: 3, MaxWorkers: 64, MaxTotalWorkers: 100}
	for _, tc := range []struct {
		name                       string
		others, current, requested int
		fits                       bool
	}{
		{"new tenant that fits exactly", 90, 0, 10, true},
		{"new tenant one too many", 91, 0, 10, false},
		{"grow that fits", 80, 5, 20, true},
		{"grow one too many", 80, 5, 21, false},
		{"shrink while over the cap (it was lowered)", 150, 10, 5, true},
		{"same count while over the cap", 150, 10, 10, true},
	} {
		err := l.CheckCapacity(tc.others, tc.current, tc.requested)
		if tc.fits {
			assert.NoError(t, err, tc.name)
			continue
		}
		require.ErrorIs(t, err, ErrCapacity, tc.name)
		var cerr *CapacityError
		require.ErrorAs(t, err, &cerr, tc.name)
		assert.Equal(t, CapacityError{Max: 100, Others: tc.others, Requested: tc.requested}, *cerr, tc.name)
	}
}

func TestDecideRateLimit(t *testing.T) {
	limited := active(3, 2)
	limited.RateLimit = &RateLimit{PerSecond: 5, Burst: 10}
	deleted := active(3, 2)
	deleted.Status = StatusDeleted
	tests := []struct {
		name     string
		state    State
		limit    RateLimit
		expected *int
		want     events.Event
		err      error
	}{
		{"first limit of its own", active(1, 3), RateLimit{PerSecond: 50, Burst: 100}, nil, events.TenantRateLimitChanged{PerSecond: 50, Burst: 100}, nil},
		{"equal to the default is still recorded", active(1, 3), limits.DefaultRate, nil, events.TenantRateLimitChanged{PerSecond: 1000, Burst: 2000}, nil},
		{"unlimited", limited, RateLimit{}, ptr(3), events.TenantRateLimitChanged{}, nil},
		{"burst below the rate", limited, RateLimit{PerSecond: 1000, Burst: 1}, nil, events.TenantRateLimitChanged{PerSecond: 1000, Burst: 1}, nil},
		{"the same limit records nothing", limited, RateLimit{PerSecond: 5, Burst: 10}, nil, nil, nil},
		{"stale If-Match", limited, RateLimit{PerSecond: 6, Burst: 10}, ptr(2), nil, ErrVersionMismatch},
		{"unknown tenant", State{ID: "t"}, RateLimit{PerSecond: 1, Burst: 1}, nil, nil, ErrNotFound},
		{"deleted tenant", deleted, RateLimit{PerSecond: 1, Burst: 1}, nil, nil, ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecideRateLimit(tc.state, tc.limit, tc.expected)
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
	for _, tc := range []struct {
		limit  RateLimit
		fields []string
	}{
		{RateLimit{PerSecond: -1, Burst: 1}, []string{"per_second"}},
		{RateLimit{PerSecond: 1_000_001, Burst: 1}, []string{"per_second"}},
		{RateLimit{PerSecond: 10, Burst: 0}, []string{"burst"}},
		{RateLimit{PerSecond: 10, Burst: 1_000_001}, []string{"burst"}},
		{RateLimit{PerSecond: 0, Burst: 5}, []string{"burst"}},
		{RateLimit{PerSecond: -1, Burst: -1}, []string{"per_second", "burst"}},
	} {
		// Bad input is refused before the state is looked at, even for a missing tenant.
		_, err := DecideRateLimit(State{ID: "t"}, tc.limit, nil)
		var verr *ValidationError
		require.ErrorAs(t, err, &verr, "%+v", tc.limit)
		var fields []string
		for _, f := range verr.Fields {
			fields = append(fields, f.Field)
		}
		assert.Equal(t, tc.fields, fields, "%+v", tc.limit)
	}
}

func TestDecideDelete(t *testing.T) {
	ev, err := DecideDelete(active(2, 3), nil)
	require.NoError(t, err)
	assert.Equal(t, events.TenantDeleted{Name: "acme"}, ev)

	_, err = DecideDelete(active(2, 3), ptr(2))
	require.NoError(t, err)

	_, err = DecideDelete(active(2, 3), ptr(1))
	assert.ErrorIs(t, err, ErrVersionMismatch)

	deleted := active(2, 3).Apply(3, events.TenantDeleted{Name: "acme"})
	_, err = DecideDelete(deleted, nil)
	assert.ErrorIs(t, err, ErrNotFound)
	_, err = DecideDelete(State{ID: "t"}, nil)
	assert.True(t, errors.Is(err, ErrNotFound))
}

func TestNameKeyIgnoresCase(t *testing.T) {
	assert.Equal(t, NameKey("ACME Corp"), NameKey("acme corp"))
}
