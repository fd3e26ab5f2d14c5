package desired

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/events"
)

func rec(id string, v int, e events.Event) events.Recorded {
	typ := "tenant.renamed.v9"
	if e != nil {
		typ = e.EventType()
	}
	return events.Recorded{Envelope: events.Envelope{Type: typ, TenantID: id, Version: v}, Event: e}
}

func TestApply(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		events  []events.Recorded
		want    Tenant
		changed []bool
	}{
		{"create", []events.Recorded{rec("a", 1, events.TenantCreated{Workers: 3})},
			Tenant{ID: "a", Workers: 3, Version: 1}, []bool{true}},
		{"resize", []events.Recorded{rec("a", 1, events.TenantCreated{Workers: 3}), rec("a", 2, events.TenantConcurrencyChanged{Workers: 5})},
			Tenant{ID: "a", Workers: 5, Version: 2}, []bool{true, true}},
		{"duplicate and stale versions are ignored", []events.Recorded{
			rec("a", 1, events.TenantCreated{Workers: 3}),
			rec("a", 2, events.TenantConcurrencyChanged{Workers: 5}),
			rec("a", 2, events.TenantConcurrencyChanged{Workers: 5}),
			rec("a", 1, events.TenantCreated{Workers: 3}),
		}, Tenant{ID: "a", Workers: 5, Version: 2}, []bool{true, true, false, false}},
		{"a rate limit change leaves the pool alone", []events.Recorded{
			rec("a", 1, events.TenantCreated{Workers: 3}),
			rec("a", 2, events.TenantRateLimitChanged{PerSecond: 10, Burst: 20}),
			rec("a", 2, events.TenantRateLimitChanged{PerSecond: 10, Burst: 20}),
			rec("a", 3, events.TenantConcurrencyChanged{Workers: 4}),
		}, Tenant{ID: "a", Workers: 4, Version: 3}, []bool{true, false, false, true}},
		{"a rate limit change before the creation does not hide it", []events.Recorded{
			rec("a", 2, events.TenantRateLimitChanged{PerSecond: 10, Burst: 20}),
			rec("a", 1, events.TenantCreated{Workers: 3}),
		}, Tenant{ID: "a", Workers: 3, Version: 1}, []bool{false, true}},
		{"pause keeps the desired count, resume restores it", []events.Recorded{
			rec("a", 1, events.TenantCreated{Workers: 3}),
			rec("a", 2, events.TenantPaused{}),
			rec("a", 3, events.TenantConcurrencyChanged{Workers: 4}),
		}, Tenant{ID: "a", Workers: 4, Paused: true, Version: 3}, []bool{true, true, true}},
		{"resume", []events.Recorded{
			rec("a", 1, events.TenantCreated{Workers: 3}),
			rec("a", 2, events.TenantPaused{}),
			rec("a", 3, events.TenantResumed{}),
		}, Tenant{ID: "a", Workers: 3, Version: 3}, []bool{true, true, true}},
		{"draining a paused tenant", []events.Recorded{
			rec("a", 1, events.TenantCreated{Workers: 3}),
			rec("a", 2, events.TenantPaused{}),
			rec("a", 3, events.TenantDeletionRequested{DrainTimeoutSeconds: 60}),
			rec("a", 4, events.TenantDeletionRequested{DrainTimeoutSeconds: 90}),
		}, Tenant{ID: "a", Workers: 3, Paused: true, Draining: true, Version: 4}, []bool{true, true, true, true}},
		{"dead-letter actions leave the pool alone", []events.Recorded{
			rec("a", 1, events.TenantCreated{Workers: 3}),
			rec("a", 2, events.DeadLettersRedriven{Count: 1}),
			rec("a", 3, events.DeadLettersPurged{Count: 1}),
		}, Tenant{ID: "a", Workers: 3, Version: 3}, []bool{true, false, false}},
		{"delete is final", []events.Recorded{
			rec("a", 1, events.TenantCreated{Workers: 3}),
			rec("a", 2, events.TenantDeleted{}),
			rec("a", 3, events.TenantConcurrencyChanged{Workers: 9}),
		}, Tenant{ID: "a", Workers: 3, Deleted: true, Version: 3}, []bool{true, true, false}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := New()
			for i, e := range tc.events {
				changed, err := s.Apply(e)
				require.NoError(t, err)
				require.Equal(t, tc.changed[i], changed, "event %d", i)
			}
			got, ok := s.Get("a")
			require.True(t, ok)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestRunWorkers(t *testing.T) {
	t.Parallel()
	require.Equal(t, 3, Tenant{Workers: 3}.RunWorkers())
	require.Equal(t, 0, Tenant{Workers: 3, Paused: true}.RunWorkers(), "paused")
	require.Equal(t, 3, Tenant{Workers: 3, Paused: true, Draining: true}.RunWorkers(), "draining outranks paused")
}

func TestApplyUnknownType(t *testing.T) {
	t.Parallel()
	s := New()
	_, err := s.Apply(rec("a", 1, nil))
	require.True(t, errors.Is(err, events.ErrUnknownType))
	require.Empty(t, s.Snapshot())
}
