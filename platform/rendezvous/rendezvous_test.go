package rendezvous

import "testing"

// The scores must never change: during a rolling update old and new consumer replicas
// must pick the same owners, or tenants would run on two replicas (or none) until the
// update ends.
func TestScoresArePinned(t *testing.T) {
	t.Parallel()
	nodes := []string{"bench-host-1111bbbb", "bench-host-2222cccc", "bench-host-0000aaaa"}
	for _, c := range []struct {
		key, owner string
		score      uint64
	}{
		{"00000000-0000-0000-0000-000000000001", "bench-host-2222cccc", 7686795406628337302},
		{"0b8f2a4e-7c1d-4e2f-9a3b-5c6d7e8f9a0b", "bench-host-0000aaaa", 13999299286187530752},
		{"6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9", "bench-host-1111bbbb", 11613236492917237183},
		{"d3a1c2b4-1111-4222-8333-944455556666", "bench-host-2222cccc", 5258504016761569537},
		{"ffffffff-ffff-4fff-bfff-ffffffffffff", "bench-host-0000aaaa", 9171273832599357453},
		{"12345678-9abc-4def-8123-456789abcdef", "bench-host-1111bbbb", 1833780580839118375},
	} {
		if got := Owner(nodes, c.key); got != c.owner {
			t.Errorf("owner of %s = %s, want %s", c.key, got, c.owner)
		}
		if got := Score("bench-host-0000aaaa", c.key); got != c.score {
			t.Errorf("score of %s = %d, want %d", c.key, got, c.score)
		}
	}
	if Owner(nil, "x") != "" {
		t.Error("no node owns nothing")
	}
}
