package membership

import (
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

func tenantIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = uuid.NewString()
	}
	return ids
}

// Rendezvous hashing spreads tenants evenly, and a replica joining or leaving moves
// only the tenants it takes or held: nothing moves between the others.
func TestOwnerSpreadsAndMovesOnlyWhatItMust(t *testing.T) {
	ids := tenantIDs(3000)
	three := View{Replicas: []string{"consumer-a-1", "consumer-b-2", "consumer-c-3"}}
	count := map[string]int{}
	for _, id := range ids {
		count[three.Owner(id)]++
	}
	require.Len(t, count, 3)
	for r, n := range count {
		require.InDelta(t, 1000, n, 150, "replica %s owns %d of 3000", r, n)
	}

	four := View{Replicas: append([]string{"consumer-d-4"}, three.Replicas...)}
	moved := 0
	for _, id := range ids {
		before, after := three.Owner(id), four.Owner(id)
		if before != after {
			require.Equal(t, "consumer-d-4", after, "a join only moves tenants to the joiner")
			moved++
		}
	}
	require.InDelta(t, 750, moved, 150, "the joiner takes about a quarter")

	two := View{Replicas: []string{"consumer-a-1", "consumer-c-3"}}
	for _, id := range ids {
		if before := three.Owner(id); before != "consumer-b-2" {
			require.Equal(t, before, two.Owner(id), "a leave only moves the leaver's tenants")
		}
	}
	require.Empty(t, View{}.Owner(ids[0]))
}

// Every replica computes the same owner whatever order it lists the replicas in.
func TestOwnerIndependentOfOrder(t *testing.T) {
	a := View{Replicas: []string{"r1", "r2", "r3"}}
	b := View{Replicas: []string{"r3", "r1", "r2"}}
	for _, id := range tenantIDs(200) {
		require.Equal(t, a.Owner(id), b.Owner(id))
	}
}

func TestNewIDIsUnique(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id := NewID()
		require.False(t, seen[id], fmt.Sprintf("duplicate id %s", id))
		seen[id] = true
	}
}
