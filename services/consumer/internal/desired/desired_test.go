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

func TestApplyUnknownType(t *testing.T) {
	t.Parallel()
	s := New()
	_, err := s.Apply(rec("a", 1, nil))
	require.True(t, errors.Is(err, events.ErrUnknownType))
	require.Empty(t, s.Snapshot())
}
