package ratelimit

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// clock is a fake time source the tests move by hand: no test sleeps.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTest(capacity int) (*Limiters, *clock) {
	c := &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	return New(capacity, c.now), c
}

// allowed counts how many of n calls at the current instant are allowed.
func allowed(l *Limiters, key string, n, perSecond, burst int) int {
	ok := 0
	for range n {
		if yes, _ := l.Allow(key, perSecond, burst); yes {
			ok++
		}
	}
	return ok
}

func TestBurstThenRate(t *testing.T) {
	l, c := newTest(10)
	require.Equal(t, 5, allowed(l, "a", 20, 10, 5), "a fresh bucket holds the burst")
	ok, wait := l.Allow("a", 10, 5)
	require.False(t, ok)
	require.Equal(t, 100*time.Millisecond, wait, "one token comes back every 1/10 s")

	// A refused call takes no token: 100 ms later exactly one is there.
	c.advance(100 * time.Millisecond)
	require.Equal(t, 1, allowed(l, "a", 5, 10, 5))
	c.advance(time.Hour)
	require.Equal(t, 5, allowed(l, "a", 20, 10, 5), "an idle bucket refills to the burst, no further")

	ok, wait = l.Allow("a", 3, 5)
	require.False(t, ok)
	require.InDelta(t, float64(time.Second/3), float64(wait), 1, "the wait is exact, not rounded: %s", wait)
}

func TestTenantsAreIndependent(t *testing.T) {
	l, _ := newTest(10)
	require.Equal(t, 3, allowed(l, "flood", 100, 1, 3))
	require.Equal(t, 50, allowed(l, "quiet", 50, 1000, 2000), "another tenant is untouched")
}

func TestLimitChangeKeepsTokens(t *testing.T) {
	l, c := newTest(10)
	require.Equal(t, 2, allowed(l, "a", 10, 1, 2))

	// Raised: the empty bucket is not refilled by the change itself, then refills at
	// the new rate up to the new burst.
	ok, wait := l.Allow("a", 100, 50)
	require.False(t, ok)
	require.Equal(t, 10*time.Millisecond, wait)
	c.advance(time.Second)
	require.Equal(t, 50, allowed(l, "a", 80, 100, 50))

	// Lowered: a full bucket shrinks to the new burst at once.
	c.advance(time.Second)
	ok, _ = l.Allow("a", 1, 2)
	require.True(t, ok)
	require.Equal(t, 1, allowed(l, "a", 10, 1, 2))
	_, wait = l.Allow("a", 1, 2)
	require.Equal(t, time.Second, wait)
}

func TestUnlimitedKeepsNoBucket(t *testing.T) {
	l, _ := newTest(10)
	require.Equal(t, 1, allowed(l, "a", 5, 1, 1))
	require.Equal(t, 1, l.Len())
	require.Equal(t, 10_000, allowed(l, "a", 10_000, 0, 0))
	require.Zero(t, l.Len(), "an unlimited tenant's bucket is dropped")
}

func TestBoundedByCapacity(t *testing.T) {
	l, _ := newTest(3)
	for _, k := range []string{"a", "b", "c"} {
		require.Equal(t, 1, allowed(l, k, 5, 1, 1), k)
	}
	allowed(l, "a", 1, 1, 1) // a is now the most recently used
	require.Equal(t, 1, allowed(l, "d", 5, 1, 1))
	require.Equal(t, 3, l.Len())
	require.Equal(t, 1, allowed(l, "b", 5, 1, 1), "b, least recently used, was dropped: a full bucket again")
	require.Equal(t, 0, allowed(l, "a", 5, 1, 1), "a kept its empty bucket")

	// Any number of keys: the count never passes the capacity.
	many, _ := newTest(1000)
	for i := range 100_000 {
		many.Allow(fmt.Sprint(i), 10, 10)
	}
	require.Equal(t, 1000, many.Len())
	require.Len(t, many.byKey, 1000)
}
