package cli

import (
	"context"
	"sort"
	"time"

	"github.com/multitenant/mtm/client"
)

// Following a tenant's messages.
//
// Pages are keyset pages ordered by (created_at, id), and next_cursor is null on the last
// page, so there is no cursor for "after the newest message". The cursors there are, the
// next_cursor of every full page, mark positions a walk can restart from. created_at is
// when a consumer received the message, and consumers commit in batches on several
// workers, so a message can become visible after a newer one was already read: restarting
// from the newest position would skip it. A follower therefore restarts each poll from
// the newest mark at least lookback older than the newest message it has seen, and skips
// the ids it already printed, which it remembers only for that window. A poll costs the
// messages of the last lookback plus at most one page; only a message that becomes
// visible more than lookback after it was received (a consumer retrying through a
// database outage) can be missed, and `messages list` still shows it.

// mark is a cursor and the position (created_at, id) of the last message before it.
type mark struct {
	cursor string
	at     time.Time
	id     string
}

func (m mark) before(at time.Time, id string) bool {
	return m.at.Before(at) || (m.at.Equal(at) && m.id < id)
}

// messagePager fetches one page of a tenant's messages.
type messagePager func(ctx context.Context, cursor string, limit int) (client.MessagePage, error)

type follower struct {
	page     messagePager
	limit    int
	lookback time.Duration
	// marks are sorted by position; marks[0] is where the next poll starts. The first
	// mark is the start of the list (empty cursor) until a newer one qualifies.
	marks []mark
	// seen holds the ids printed at or after marks[0], with their created_at for pruning.
	seen   map[string]time.Time
	newest time.Time
}

func newFollower(page messagePager, limit int, lookback time.Duration) *follower {
	return &follower{page: page, limit: limit, lookback: lookback, marks: []mark{{}}, seen: map[string]time.Time{}}
}

// poll walks from the restart mark to the last page and emits, in order, every message
// it has not emitted before.
func (f *follower) poll(ctx context.Context, emit func(client.Message) error) error {
	cursor := f.marks[0].cursor
	for {
		p, err := f.page(ctx, cursor, f.limit)
		if err != nil {
			return err
		}
		for _, m := range p.Data {
			if _, ok := f.seen[m.ID]; ok {
				continue
			}
			f.seen[m.ID] = m.CreatedAt
			if m.CreatedAt.After(f.newest) {
				f.newest = m.CreatedAt
			}
			if err := emit(m); err != nil {
				return err
			}
		}
		if p.NextCursor == "" || len(p.Data) == 0 {
			f.prune()
			return nil
		}
		last := p.Data[len(p.Data)-1]
		f.addMark(mark{cursor: p.NextCursor, at: last.CreatedAt, id: last.ID})
		// Pruning per page keeps memory to the window even while the first poll walks
		// a long history.
		f.prune()
		cursor = p.NextCursor
	}
}

func (f *follower) addMark(m mark) {
	i := sort.Search(len(f.marks), func(i int) bool { return !f.marks[i].before(m.at, m.id) })
	if i < len(f.marks) && f.marks[i].at.Equal(m.at) && f.marks[i].id == m.id {
		return
	}
	f.marks = append(f.marks, mark{})
	copy(f.marks[i+1:], f.marks[i:])
	f.marks[i] = m
}

// prune moves the restart mark to the newest one older than newest-lookback and forgets
// the ids before it (a walk from there never returns them again).
func (f *follower) prune() {
	horizon := f.newest.Add(-f.lookback)
	start := 0
	for i := 1; i < len(f.marks); i++ {
		if f.marks[i].at.Before(horizon) {
			start = i
		}
	}
	if start == 0 {
		return
	}
	f.marks = append([]mark(nil), f.marks[start:]...)
	from := f.marks[0]
	for id, at := range f.seen {
		if at.Before(from.at) || (at.Equal(from.at) && id <= from.id) {
			delete(f.seen, id)
		}
	}
}
