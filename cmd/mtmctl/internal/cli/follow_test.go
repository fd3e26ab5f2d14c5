package cli

import (
	"context"
	"encoding/base64"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/client"
)

// keysetStore imitates the query service's message pages: visible messages ordered by
// (created_at, id), a cursor naming the last position of a page, next_cursor only when
// more follow.
type keysetStore struct {
	msgs  []client.Message
	calls int
}

func (s *keysetStore) add(id string, at time.Time) {
	s.msgs = append(s.msgs, client.Message{ID: id, CreatedAt: at})
	sort.Slice(s.msgs, func(i, j int) bool {
		a, b := s.msgs[i], s.msgs[j]
		return a.CreatedAt.Before(b.CreatedAt) || (a.CreatedAt.Equal(b.CreatedAt) && a.ID < b.ID)
	})
}

func (s *keysetStore) page(_ context.Context, cursor string, limit int) (client.MessagePage, error) {
	s.calls++
	var after mark
	if cursor != "" {
		raw, err := base64.StdEncoding.DecodeString(cursor)
		if err != nil {
			return client.MessagePage{}, err
		}
		var ns int64
		if _, err := fmt.Sscanf(string(raw), "%d/%s", &ns, &after.id); err != nil {
			return client.MessagePage{}, err
		}
		after.at = time.Unix(0, ns).UTC()
	}
	var out client.MessagePage
	for _, m := range s.msgs {
		// At or before the cursor's position: on an earlier page.
		if cursor != "" && (m.CreatedAt.Before(after.at) || (m.CreatedAt.Equal(after.at) && m.ID <= after.id)) {
			continue
		}
		if len(out.Data) == limit {
			last := out.Data[limit-1]
			out.NextCursor = base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "%d/%s", last.CreatedAt.UnixNano(), last.ID))
			break
		}
		out.Data = append(out.Data, m)
	}
	return out, nil
}

func pollIDs(t *testing.T, f *follower) []string {
	t.Helper()
	var ids []string
	require.NoError(t, f.poll(context.Background(), func(m client.Message) error {
		ids = append(ids, m.ID)
		return nil
	}))
	return ids
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestFollowerPrintsEachMessageOnceAcrossPolls(t *testing.T) {
	s := &keysetStore{}
	for i := range 7 {
		s.add(fmt.Sprintf("m%02d", i), t0.Add(time.Duration(i)*time.Second))
	}
	f := newFollower(s.page, 3, 2*time.Second)

	assert.Equal(t, []string{"m00", "m01", "m02", "m03", "m04", "m05", "m06"}, pollIDs(t, f))
	assert.Empty(t, pollIDs(t, f), "nothing new: nothing printed again")

	s.add("m07", t0.Add(7*time.Second))
	s.add("m08", t0.Add(8*time.Second))
	assert.Equal(t, []string{"m07", "m08"}, pollIDs(t, f))
	assert.Empty(t, pollIDs(t, f))
}

// A consumer can commit a message after a newer one was already read (created_at is when
// it was received): within the lookback it is still printed, once.
func TestFollowerPrintsMessagesThatBecomeVisibleLate(t *testing.T) {
	s := &keysetStore{}
	for i := range 10 {
		s.add(fmt.Sprintf("m%02d", i), t0.Add(time.Duration(i)*time.Second))
	}
	f := newFollower(s.page, 2, 3*time.Second)
	require.Len(t, pollIDs(t, f), 10)

	s.add("late", t0.Add(8500*time.Millisecond)) // received before m09, visible after
	s.add("m10", t0.Add(10*time.Second))
	assert.Equal(t, []string{"late", "m10"}, pollIDs(t, f))
	assert.Empty(t, pollIDs(t, f))

	// Beyond the lookback it is missed: the documented limit, and the proof that the
	// window, not a full re-walk, bounds each poll.
	s.add("too-late", t0.Add(2*time.Second))
	assert.Empty(t, pollIDs(t, f))
}

// Each poll re-reads only the lookback and a page, and the follower's memory stays within
// them, however long the history walked at the start.
func TestFollowerPollCostIsBoundedByTheLookback(t *testing.T) {
	s := &keysetStore{}
	for i := range 1000 {
		s.add(fmt.Sprintf("m%04d", i), t0.Add(time.Duration(i)*time.Second))
	}
	f := newFollower(s.page, 10, 5*time.Second)
	require.Len(t, pollIDs(t, f), 1000)
	assert.LessOrEqual(t, len(f.seen), 20, "ids remembered")
	assert.LessOrEqual(t, len(f.marks), 3, "cursors remembered")

	s.calls = 0
	s.add("m1000", t0.Add(1000*time.Second))
	assert.Equal(t, []string{"m1000"}, pollIDs(t, f))
	assert.LessOrEqual(t, s.calls, 2, "pages fetched by one poll")
}

func TestFollowerEmptyTenantThenMessages(t *testing.T) {
	s := &keysetStore{}
	f := newFollower(s.page, 5, time.Second)
	assert.Empty(t, pollIDs(t, f))
	s.add("a", t0)
	assert.Equal(t, []string{"a"}, pollIDs(t, f))
}
