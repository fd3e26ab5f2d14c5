// Package ratelimit keeps one token bucket per tenant for message ingest, in memory and
// bounded in number.
package ratelimit

import (
	"container/list"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DefaultCapacity is how many tenants' buckets a process keeps by default. Only live
// tenants get one (the caller checks the tenant exists first), and a bucket is ~300
// bytes, so this is ~20 MB at most.
const DefaultCapacity = 1 << 16

// Limiters holds a token bucket per key. Beyond capacity keys the least recently used
// bucket is dropped: its key starts again with a full bucket, which is the state an
// idle bucket reaches anyway after burst/rate seconds. Safe for concurrent use.
type Limiters struct {
	now      func() time.Time
	capacity int

	mu    sync.Mutex
	byKey map[string]*list.Element // of *bucket
	lru   *list.List               // front: most recently used
}

type bucket struct {
	key       string
	lim       *rate.Limiter
	perSecond int
	burst     int
}

// New returns Limiters keeping at most capacity buckets (at least 1), reading time from
// now (time.Now outside tests).
func New(capacity int, now func() time.Time) *Limiters {
	return &Limiters{now: now, capacity: max(1, capacity), byKey: map[string]*list.Element{}, lru: list.New()}
}

// Allow takes one token from key's bucket, which admits perSecond messages a second
// with bursts of up to burst. perSecond 0 means unlimited: it always allows and keeps no
// bucket. A bucket whose limit changed since its last use keeps its tokens and refills
// at the new rate from now on. When no token is left, Allow takes nothing and returns
// false with the time until one would be available.
func (l *Limiters) Allow(key string, perSecond, burst int) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	el, found := l.byKey[key]
	if perSecond <= 0 {
		if found {
			l.remove(el)
		}
		return true, 0
	}
	var b *bucket
	if found {
		l.lru.MoveToFront(el)
		b = el.Value.(*bucket)
		if b.perSecond != perSecond || b.burst != burst {
			b.lim.SetBurstAt(now, burst)
			b.lim.SetLimitAt(now, rate.Limit(perSecond))
			b.perSecond, b.burst = perSecond, burst
		}
	} else {
		b = &bucket{key: key, lim: rate.NewLimiter(rate.Limit(perSecond), burst), perSecond: perSecond, burst: burst}
		l.byKey[key] = l.lru.PushFront(b)
		for l.lru.Len() > l.capacity {
			l.remove(l.lru.Back())
		}
	}
	r := b.lim.ReserveN(now, 1)
	if !r.OK() {
		// Only a burst below 1 gets here, which callers never configure: no token
		// can ever be had, so the wait is a second rather than forever.
		return false, time.Second
	}
	if wait := r.DelayFrom(now); wait > 0 {
		r.CancelAt(now)
		return false, wait
	}
	return true, 0
}

// Len is the number of buckets held.
func (l *Limiters) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}

func (l *Limiters) remove(el *list.Element) {
	l.lru.Remove(el)
	delete(l.byKey, el.Value.(*bucket).key)
}
