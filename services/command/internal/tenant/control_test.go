package tenant

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/events"
)

func withStatus(s State, st Status) State { s.Status = st; return s }

// Folding follows the precedence deleted > draining > paused > active, and a paused or
// draining tenant still exists.
func TestApplyControlEvents(t *testing.T) {
	deadline := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := active(1, 3)
	s = s.Apply(2, events.TenantPaused{})
	assert.Equal(t, StatusPaused, s.Status)
	assert.True(t, s.Exists())
	s = s.Apply(3, events.TenantResumed{})
	assert.Equal(t, StatusActive, s.Status)
	s = s.Apply(4, events.TenantResumed{})
	assert.Equal(t, StatusActive, s.Status, "resume of an active tenant changes nothing")

	p := s.Apply(5, events.TenantPaused{})
	d := p.Apply(6, events.TenantDeletionRequested{DrainTimeoutSeconds: 60, Deadline: deadline})
	assert.Equal(t, StatusDraining, d.Status, "a paused tenant drains")
	assert.Equal(t, deadline, d.DrainDeadline)
	assert.True(t, d.Exists())
	assert.Equal(t, 3, d.Workers, "the desired workers are kept")
	for _, ev := range []events.Event{events.TenantPaused{}, events.TenantResumed{}} {
		assert.Equal(t, StatusDraining, d.Apply(7, ev).Status, "%T never applies to a draining tenant", ev)
	}
	later := deadline.Add(time.Hour)
	assert.Equal(t, later, d.Apply(7, events.TenantDeletionRequested{Deadline: later}).DrainDeadline, "re-armed")

	gone := d.Apply(7, events.TenantDeleted{Name: "acme"})
	assert.Equal(t, StatusDeleted, gone.Status)
	assert.False(t, gone.Exists())
	assert.True(t, gone.DrainDeadline.IsZero())
	for _, ev := range []events.Event{events.TenantPaused{}, events.TenantResumed{}, events.TenantDeletionRequested{Deadline: later}} {
		assert.Equal(t, StatusDeleted, gone.Apply(8, ev).Status, "%T never revives a deleted tenant", ev)
	}
	// Dead-letter events change no status, only the version.
	r := active(1, 3).Apply(2, events.DeadLettersRedriven{Count: 2}).Apply(3, events.DeadLettersPurged{Count: 1})
	assert.Equal(t, StatusActive, r.Status)
	assert.Equal(t, 3, r.Version)
}

func TestDecidePauseAndResume(t *testing.T) {
	ev, err := DecidePause(active(2, 3), ptr(2))
	require.NoError(t, err)
	assert.Equal(t, events.TenantPaused{}, ev)
	ev, err = DecidePause(withStatus(active(2, 3), StatusPaused), nil)
	require.NoError(t, err)
	assert.Nil(t, ev, "pause of a paused tenant records nothing")
	_, err = DecidePause(withStatus(active(2, 3), StatusDraining), nil)
	require.ErrorIs(t, err, ErrDraining)

	ev, err = DecideResume(withStatus(active(2, 3), StatusPaused), ptr(2))
	require.NoError(t, err)
	assert.Equal(t, events.TenantResumed{}, ev)
	ev, err = DecideResume(active(2, 3), nil)
	require.NoError(t, err)
	assert.Nil(t, ev, "resume of an active tenant records nothing")
	_, err = DecideResume(withStatus(active(2, 3), StatusDraining), nil)
	require.ErrorIs(t, err, ErrDraining)

	for name, decide := range map[string]func(State, *int) (events.Event, error){"pause": DecidePause, "resume": DecideResume} {
		_, err = decide(active(2, 3), ptr(1))
		require.ErrorIs(t, err, ErrVersionMismatch, name)
		_, err = decide(withStatus(active(2, 3), StatusDeleted), nil)
		require.ErrorIs(t, err, ErrNotFound, name)
		_, err = decide(State{ID: "t"}, nil)
		require.ErrorIs(t, err, ErrNotFound, name)
	}
}

func TestResizeOfADrainingTenantIsRefused(t *testing.T) {
	_, err := DecideConcurrency(limits, withStatus(active(2, 3), StatusDraining), 5, nil)
	require.ErrorIs(t, err, ErrDraining)
	ev, err := DecideConcurrency(limits, withStatus(active(2, 3), StatusPaused), 5, nil)
	require.NoError(t, err)
	assert.Equal(t, events.TenantConcurrencyChanged{Workers: 5, PreviousWorkers: 3}, ev, "a paused tenant resizes")
}

func TestParseDrainTimeout(t *testing.T) {
	for raw, want := range map[string]time.Duration{"": 5 * time.Minute, "1s": time.Second, "90s": 90 * time.Second, "24h": 24 * time.Hour, "1h30m": 90 * time.Minute} {
		got, err := ParseDrainTimeout(raw)
		require.NoError(t, err, raw)
		assert.Equal(t, want, got, raw)
	}
	for _, raw := range []string{"0", "0s", "999ms", "24h0m1s", "-5m", "5", "five minutes", "1d"} {
		_, err := ParseDrainTimeout(raw)
		require.Error(t, err, raw)
		assert.Equal(t, DrainTimeoutRule, err.Error())
	}
}

func TestDecideDrain(t *testing.T) {
	now := time.Date(2026, 5, 1, 10, 0, 0, 0, time.FixedZone("x", 3600))
	for _, st := range []Status{StatusActive, StatusPaused, StatusDraining} {
		ev, err := DecideDrain(withStatus(active(4, 3), st), 2*time.Minute, now, ptr(4))
		require.NoError(t, err, st)
		assert.Equal(t, events.TenantDeletionRequested{DrainTimeoutSeconds: 120, Deadline: now.Add(2 * time.Minute).UTC()}, ev, st)
	}
	ev, err := DecideDrain(active(4, 3), 1500*time.Millisecond, now, nil)
	require.NoError(t, err)
	assert.Equal(t, 2, ev.DrainTimeoutSeconds, "rounded up to whole seconds")
	assert.Equal(t, now.Add(1500*time.Millisecond).UTC(), ev.Deadline, "the deadline is exact")

	_, err = DecideDrain(active(4, 3), time.Minute, now, ptr(3))
	require.ErrorIs(t, err, ErrVersionMismatch)
	_, err = DecideDrain(withStatus(active(4, 3), StatusDeleted), time.Minute, now, nil)
	require.ErrorIs(t, err, ErrNotFound)
	for _, d := range []time.Duration{0, time.Second - 1, 24*time.Hour + 1} {
		_, err = DecideDrain(active(4, 3), d, now, nil)
		var verr *ValidationError
		require.ErrorAs(t, err, &verr, d)
		assert.Equal(t, "drain_timeout", verr.Fields[0].Field)
	}
}

func TestCheckSelector(t *testing.T) {
	a, b := uuid.NewString(), uuid.NewString()
	got, err := CheckSelector(events.DeadLetterSelector{IDs: []string{a, b, a}})
	require.NoError(t, err)
	assert.Equal(t, events.DeadLetterSelector{IDs: []string{a, b}}, got, "repeated ids count once")
	got, err = CheckSelector(events.DeadLetterSelector{Reason: "invalid_json"})
	require.NoError(t, err)
	assert.Equal(t, events.DeadLetterSelector{Reason: "invalid_json", Max: 1000}, got, "max defaults to 1000")
	got, err = CheckSelector(events.DeadLetterSelector{Max: 10000})
	require.NoError(t, err)
	assert.Equal(t, events.DeadLetterSelector{Max: 10000}, got, "max alone: any reason")

	max := make([]string, 1000)
	for i := range max {
		max[i] = uuid.NewString()
	}
	_, err = CheckSelector(events.DeadLetterSelector{IDs: max})
	require.NoError(t, err, "1000 ids")

	for name, sel := range map[string]events.DeadLetterSelector{
		"empty":               {},
		"ids and reason":      {IDs: []string{a}, Reason: "expired"},
		"ids and max":         {IDs: []string{a}, Max: 5},
		"1001 ids":            {IDs: append(max, uuid.NewString())},
		"upper-case id":       {IDs: []string{strings.ToUpper(a)}},
		"id without hyphens":  {IDs: []string{strings.ReplaceAll(a, "-", "")}},
		"not an id":           {IDs: []string{"x"}},
		"max 10001":           {Reason: "expired", Max: 10001},
		"negative max":        {Max: -1},
		"reason not UTF-8":    {Reason: "a\xff"},
		"reason of 201 bytes": {Reason: strings.Repeat("r", 201)},
	} {
		_, err := CheckSelector(sel)
		var serr *SelectorError
		require.ErrorAs(t, err, &serr, name)
	}
}

func TestDecideRedriveAndPurge(t *testing.T) {
	sel := events.DeadLetterSelector{Reason: "expired", Max: 10}
	for _, st := range []Status{StatusActive, StatusPaused} {
		ev, err := DecideRedrive(withStatus(active(3, 1), st), sel, 4, ptr(3))
		require.NoError(t, err, st)
		assert.Equal(t, events.DeadLettersRedriven{Selector: sel, Count: 4}, ev, st)
	}
	ev, err := DecideRedrive(active(3, 1), sel, 0, nil)
	require.NoError(t, err)
	assert.Nil(t, ev, "nothing matched: nothing recorded")
	_, err = DecideRedrive(withStatus(active(3, 1), StatusDraining), sel, 4, nil)
	require.ErrorIs(t, err, ErrDraining)
	_, err = DecideRedrive(active(3, 1), sel, 4, ptr(2))
	require.ErrorIs(t, err, ErrVersionMismatch)
	_, err = DecideRedrive(withStatus(active(3, 1), StatusDeleted), sel, 4, nil)
	require.ErrorIs(t, err, ErrNotFound)

	for _, st := range []Status{StatusActive, StatusPaused, StatusDraining} {
		ev, err := DecidePurge(withStatus(active(3, 1), st), sel, 2, ptr(3))
		require.NoError(t, err, st)
		assert.Equal(t, events.DeadLettersPurged{Selector: sel, Count: 2}, ev, st)
	}
	ev, err = DecidePurge(active(3, 1), sel, 0, nil)
	require.NoError(t, err)
	assert.Nil(t, ev)
	_, err = DecidePurge(active(3, 1), sel, 2, ptr(9))
	require.ErrorIs(t, err, ErrVersionMismatch)
	_, err = DecidePurge(State{ID: "t"}, sel, 2, nil)
	require.ErrorIs(t, err, ErrNotFound)
}
