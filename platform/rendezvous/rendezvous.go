// Package rendezvous is highest-random-weight hashing: each key belongs to the node with
// the highest score of (node, key). Everyone who knows the same nodes picks the same
// owner without talking to anyone, and a node joining or leaving moves only the keys it
// takes or held (about 1/N of them).
package rendezvous

import "hash/fnv"

// Owner returns the node among nodes that owns key ("" if nodes is empty). The order
// of nodes does not matter.
func Owner(nodes []string, key string) string {
	best, bestScore := "", uint64(0)
	for _, n := range nodes {
		if s := Score(n, key); best == "" || s > bestScore || (s == bestScore && n > best) {
			best, bestScore = n, s
		}
	}
	return best
}

// Score is the weight of node for key: FNV-1a of node, a zero byte and key, then the
// splitmix64 finaliser, so node names that differ in one character still spread keys
// evenly.
func Score(node, key string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(node))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(key))
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
