// Package tenant is the write-side tenant aggregate: its state is rebuilt from the
// tenant's event stream, and each command is decided by a pure function of that state.
package tenant

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/multitenant/mtm/events"
)

// Status of a tenant as seen by the write side.
type Status string

// Statuses. A paused tenant's messages wait in its queue; a draining one takes no more
// messages over HTTP and is deleted once its queue is empty; a deleted tenant accepts no
// more commands. When events are folded, deleted beats draining beats paused beats
// active: pause and resume never apply to a draining tenant.
const (
	StatusActive   Status = "active"
	StatusPaused   Status = "paused"
	StatusDraining Status = "draining"
	StatusDeleted  Status = "deleted"
)

// MaxNameLength is the longest tenant name accepted, in characters (runes).
const MaxNameLength = 200

// Domain errors; the HTTP layer maps each to one status in one place.
var (
	ErrNotFound        = errors.New("tenant not found")
	ErrVersionMismatch = errors.New("tenant version does not match If-Match")
	ErrConflict        = errors.New("tenant changed concurrently")
	ErrDuplicateName   = errors.New("tenant name already in use")
	ErrUnavailable     = errors.New("message broker unavailable")
	// ErrDraining: the tenant is being deleted once its queue is empty; commands that
	// would change how it runs or add messages are refused.
	ErrDraining = errors.New("tenant is draining")
	// ErrCapacity is returned (as a *CapacityError) when the workers asked for would
	// take the live tenants' total past MAX_TOTAL_WORKERS.
	ErrCapacity = errors.New("tenant capacity reached")
)

// CapacityError says why a command would pass MAX_TOTAL_WORKERS.
type CapacityError struct {
	Max       int // MAX_TOTAL_WORKERS
	Others    int // workers the other live tenants claim
	Requested int // workers the command asks for this tenant
}

func (e *CapacityError) Error() string {
	return fmt.Sprintf("%s: other tenants claim %d of %d workers, %d more do not fit", ErrCapacity, e.Others, e.Max, e.Requested)
}

// Is makes errors.Is(err, ErrCapacity) hold.
func (e *CapacityError) Is(target error) bool { return target == ErrCapacity }

// TenantLimitError says why a creation would pass MAX_TENANTS.
type TenantLimitError struct {
	Max  int // MAX_TENANTS
	Live int // live tenants (draining ones included)
}

func (e *TenantLimitError) Error() string {
	return fmt.Sprintf("%s: %d of %d tenants are live", ErrCapacity, e.Live, e.Max)
}

// Is makes errors.Is(err, ErrCapacity) hold: the same 409 as the worker bound.
func (e *TenantLimitError) Is(target error) bool { return target == ErrCapacity }

// FieldError is one invalid command field.
type FieldError struct {
	Field  string
	Detail string
}

// ValidationError lists every invalid field of a command.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Detail
	}
	return "invalid command: " + strings.Join(parts, "; ")
}

// Limits are the service's bounds on tenants; they come from WORKERS, MAX_WORKERS,
// MAX_TOTAL_WORKERS, MAX_TENANTS, TENANT_RATE_LIMIT and TENANT_RATE_BURST. Each bound is checked
// only here: the configuration (Validate), the decisions and the HTTP layer
// (CheckWorkers, WorkersRule, CheckCapacity, CheckTenants, RateFor) all ask Limits.
type Limits struct {
	DefaultWorkers  int // WORKERS: a new tenant's count when the command names none
	MaxWorkers      int // MAX_WORKERS: the most any tenant may run
	MaxTotalWorkers int // MAX_TOTAL_WORKERS: the most all live tenants together may run
	// MaxTenants is MAX_TENANTS: the most live tenants there may be. Each costs broker
	// file handles and memory (queues), a Postgres partition and consumer workers;
	// past what the broker was sized for it stops taking new connections.
	MaxTenants int
	// DefaultRate is the ingest limit of a tenant without one of its own
	// (TENANT_RATE_LIMIT, TENANT_RATE_BURST); PerSecond 0 means unlimited.
	DefaultRate RateLimit
}

// Validate checks the limits themselves when the service starts: MAX_WORKERS at least
// 1, WORKERS a count CheckWorkers accepts, MAX_TOTAL_WORKERS at least MAX_WORKERS (so
// one tenant of the largest size fits) and a default rate limit the API would accept.
// Errors name the variable at fault.
func (l Limits) Validate() error {
	if l.MaxWorkers < 1 {
		return fmt.Errorf("MAX_WORKERS: must be at least 1, got %d", l.MaxWorkers)
	}
	if l.CheckWorkers(l.DefaultWorkers) != nil {
		return fmt.Errorf("WORKERS: must be between 1 and MAX_WORKERS (%d), got %d", l.MaxWorkers, l.DefaultWorkers)
	}
	if l.MaxTotalWorkers < l.MaxWorkers {
		return fmt.Errorf("MAX_TOTAL_WORKERS: must be at least MAX_WORKERS (%d), got %d", l.MaxWorkers, l.MaxTotalWorkers)
	}
	if l.MaxTenants < 1 {
		return fmt.Errorf("MAX_TENANTS: must be at least 1, got %d", l.MaxTenants)
	}
	if r := l.DefaultRate; r.PerSecond < 0 || r.PerSecond > MaxRate {
		return fmt.Errorf("TENANT_RATE_LIMIT: must be between 0 (unlimited) and %d, got %d", MaxRate, r.PerSecond)
	}
	if r := l.DefaultRate; r.PerSecond > 0 && (r.Burst < 1 || r.Burst > MaxRate) {
		return fmt.Errorf("TENANT_RATE_BURST: must be between 1 and %d, got %d", MaxRate, r.Burst)
	}
	return nil
}

// CheckCapacity decides whether a tenant may claim requested workers when the other
// live tenants claim others and it claimed current (0: a new tenant). A claim that grows
// must keep the total within MaxTotalWorkers; one that does not grow always passes, so
// tenants can still shrink after MAX_TOTAL_WORKERS was lowered below what runs.
func (l Limits) CheckCapacity(others, current, requested int) error {
	if requested > current && others+requested > l.MaxTotalWorkers {
		return &CapacityError{Max: l.MaxTotalWorkers, Others: others, Requested: requested}
	}
	return nil
}

// CheckTenants decides whether one more tenant may be created while others are live.
// Deleting is always allowed, also after MAX_TENANTS was lowered below what exists.
func (l Limits) CheckTenants(others int) error {
	if others+1 > l.MaxTenants {
		return &TenantLimitError{Max: l.MaxTenants, Live: others}
	}
	return nil
}

// RateFor is the ingest limit that applies to s: its own, else the default.
func (l Limits) RateFor(s State) RateLimit {
	if s.RateLimit != nil {
		return *s.RateLimit
	}
	return l.DefaultRate
}

// MaxRate bounds both numbers of a rate limit: far above what one replica can ingest,
// so it never limits, but it keeps nonsense such as 2^31 out of the event store.
const MaxRate = 1_000_000

// RateLimit is a message ingest limit: PerSecond messages a second with bursts of up to
// Burst. PerSecond 0 means unlimited, and Burst is then 0.
type RateLimit struct {
	PerSecond int
	Burst     int
}

// Unlimited reports whether r admits everything.
func (r RateLimit) Unlimited() bool { return r.PerSecond == 0 }

// Check validates a limit a command asks for: per_second in 0..MaxRate, burst in
// 1..MaxRate, or 0 when per_second is 0.
func (r RateLimit) Check() []FieldError {
	var fields []FieldError
	if r.PerSecond < 0 || r.PerSecond > MaxRate {
		fields = append(fields, FieldError{"per_second", PerSecondRule})
	}
	switch {
	case r.PerSecond == 0 && r.Burst != 0:
		fields = append(fields, FieldError{"burst", "must be 0 or absent when per_second is 0 (unlimited)"})
	case r.PerSecond != 0 && (r.Burst < 1 || r.Burst > MaxRate):
		fields = append(fields, FieldError{"burst", BurstRule})
	}
	return fields
}

// The rules of the two rate limit fields, also answered for values that are not integers.
var (
	PerSecondRule = fmt.Sprintf("must be an integer between 0 (unlimited) and %d", MaxRate)
	BurstRule     = fmt.Sprintf("must be an integer between 1 and %d", MaxRate)
)

// CheckWorkers validates a worker count a command asks for: 1..MaxWorkers. Its error
// text is WorkersRule, ready to be a field detail.
func (l Limits) CheckWorkers(n int) error {
	if n < 1 || n > l.MaxWorkers {
		return errors.New(l.WorkersRule())
	}
	return nil
}

// WorkersRule states the bound for clients. The HTTP layer answers it also for a
// workers value that is not an integer at all, so either way clients read one rule.
func (l Limits) WorkersRule() string {
	return fmt.Sprintf("must be an integer between 1 and %d", l.MaxWorkers)
}

// State is a tenant rebuilt from its stream. Version 0 means the stream is empty.
type State struct {
	ID      string
	Name    string
	Workers int
	// RateLimit is the tenant's own ingest limit; nil: the service default applies.
	RateLimit *RateLimit
	Status    Status
	// DrainDeadline is when a draining tenant's drain gives up (zero otherwise).
	DrainDeadline time.Time
	Version       int
}

// Exists reports whether the tenant was created and not deleted: active, paused or
// draining.
func (s State) Exists() bool {
	if s.Version == 0 {
		return false
	}
	switch s.Status {
	case StatusActive, StatusPaused, StatusDraining:
		return true
	}
	return false
}

// Apply folds one event into the state. Unknown events (nil) only advance the
// version, so a newer writer's event types never break an older reader.
func (s State) Apply(version int, e events.Event) State {
	switch ev := e.(type) {
	case events.TenantCreated:
		s.Name, s.Workers, s.Status = ev.Name, ev.Workers, StatusActive
	case events.TenantConcurrencyChanged:
		s.Workers = ev.Workers
	case events.TenantDeleted:
		s.Status, s.DrainDeadline = StatusDeleted, time.Time{}
	case events.TenantRateLimitChanged:
		s.RateLimit = &RateLimit{PerSecond: ev.PerSecond, Burst: ev.Burst}
	case events.TenantPaused:
		if s.Status == StatusActive {
			s.Status = StatusPaused
		}
	case events.TenantResumed:
		if s.Status == StatusPaused {
			s.Status = StatusActive
		}
	case events.TenantDeletionRequested:
		if s.Status != StatusDeleted {
			s.Status, s.DrainDeadline = StatusDraining, ev.Deadline
		}
	}
	s.Version = version
	return s
}

// Replay rebuilds a tenant from its events in version order; an empty stream gives a
// State with only the id, which does not exist.
func Replay(id string, recs []events.Recorded) State {
	s := State{ID: id}
	for _, r := range recs {
		s = s.Apply(r.Version, r.Event)
	}
	return s
}

// NormalizeName trims surrounding white space and checks the name: 1..200 characters,
// valid UTF-8, no control or format characters (they are invisible in listings and
// logs). Any other Unicode letter, digit, punctuation, symbol or inner space is allowed.
func NormalizeName(raw string) (string, error) {
	name := strings.TrimSpace(raw)
	switch {
	case !utf8.ValidString(name):
		return "", errors.New("must be valid UTF-8")
	case name == "":
		return "", errors.New("must not be empty")
	case utf8.RuneCountInString(name) > MaxNameLength:
		return "", fmt.Errorf("must be at most %d characters", MaxNameLength)
	}
	for _, r := range name {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return "", errors.New("must not contain control characters")
		}
	}
	return name, nil
}

// NameKey is the uniqueness key of a name: names differing only in letter case are
// the same tenant name, as an operator would expect.
func NameKey(name string) string { return strings.ToLower(name) }

// DecideCreate validates a create command. workers nil means the default.
func DecideCreate(l Limits, name string, workers *int) (events.TenantCreated, error) {
	var fields []FieldError
	n, err := NormalizeName(name)
	if err != nil {
		fields = append(fields, FieldError{"name", err.Error()})
	}
	w := l.DefaultWorkers
	if workers != nil {
		w = *workers
	}
	if err := l.CheckWorkers(w); err != nil {
		fields = append(fields, FieldError{"workers", err.Error()})
	}
	if len(fields) > 0 {
		return events.TenantCreated{}, &ValidationError{Fields: fields}
	}
	return events.TenantCreated{Name: n, Workers: w}, nil
}

// checkCurrent rejects commands on missing tenants and stale expected versions.
func checkCurrent(s State, expected *int) error {
	if !s.Exists() {
		return ErrNotFound
	}
	if expected != nil && *expected != s.Version {
		return ErrVersionMismatch
	}
	return nil
}

// DecideConcurrency validates a resize. It returns nil (and no error) when the
// tenant already runs that many workers: the command succeeds and records nothing,
// so retries of the same PUT are idempotent.
func DecideConcurrency(l Limits, s State, workers int, expected *int) (events.Event, error) {
	if err := l.CheckWorkers(workers); err != nil {
		return nil, &ValidationError{Fields: []FieldError{{"workers", err.Error()}}}
	}
	if err := checkCurrent(s, expected); err != nil {
		return nil, err
	}
	if s.Status == StatusDraining {
		return nil, ErrDraining
	}
	if workers == s.Workers {
		return nil, nil
	}
	return events.TenantConcurrencyChanged{Workers: workers, PreviousWorkers: s.Workers}, nil
}

// DecideRateLimit validates a tenant's own ingest limit. Like DecideConcurrency it
// returns nil (and no error) when the tenant already has exactly that limit of its own;
// a limit equal to the default is still recorded, so it stays when the default changes.
func DecideRateLimit(s State, r RateLimit, expected *int) (events.Event, error) {
	if fields := r.Check(); len(fields) > 0 {
		return nil, &ValidationError{Fields: fields}
	}
	if err := checkCurrent(s, expected); err != nil {
		return nil, err
	}
	if s.RateLimit != nil && *s.RateLimit == r {
		return nil, nil
	}
	return events.TenantRateLimitChanged{PerSecond: r.PerSecond, Burst: r.Burst}, nil
}

// DecidePause stops the consumption of an active tenant's messages. A paused tenant
// answers nil (and no error): pausing again records nothing. A draining tenant keeps
// being consumed until it is empty, so it cannot be paused.
func DecidePause(s State, expected *int) (events.Event, error) {
	if err := checkCurrent(s, expected); err != nil {
		return nil, err
	}
	switch s.Status {
	case StatusDraining:
		return nil, ErrDraining
	case StatusPaused:
		return nil, nil
	}
	return events.TenantPaused{}, nil
}

// DecideResume restores a paused tenant's workers. An active tenant answers nil (and
// no error); a draining tenant is refused (it already runs its workers until deleted).
func DecideResume(s State, expected *int) (events.Event, error) {
	if err := checkCurrent(s, expected); err != nil {
		return nil, err
	}
	switch s.Status {
	case StatusDraining:
		return nil, ErrDraining
	case StatusActive:
		return nil, nil
	}
	return events.TenantResumed{}, nil
}

// Bounds of a drain's timeout (DELETE ?drain=true&drain_timeout=).
const (
	MinDrainTimeout     = time.Second
	MaxDrainTimeout     = 24 * time.Hour
	DefaultDrainTimeout = 5 * time.Minute
)

// DrainTimeoutRule states the bounds for clients.
var DrainTimeoutRule = fmt.Sprintf("must be a duration such as 90s or 5m between %s and %s", MinDrainTimeout, MaxDrainTimeout)

// ParseDrainTimeout reads drain_timeout: empty is the default, anything else a Go
// duration in MinDrainTimeout..MaxDrainTimeout.
func ParseDrainTimeout(raw string) (time.Duration, error) {
	if raw == "" {
		return DefaultDrainTimeout, nil
	}
	d, err := time.ParseDuration(raw)
	if err != nil || d < MinDrainTimeout || d > MaxDrainTimeout {
		return 0, errors.New(DrainTimeoutRule)
	}
	return d, nil
}

// DecideDrain requests a drain-then-delete: the tenant takes no more messages over
// HTTP and is deleted once its queue is empty, or stays draining after now+timeout. On
// a tenant already draining it records the request again with a new deadline (re-arms
// a drain that timed out). Paused tenants may drain: draining runs their workers.
func DecideDrain(s State, timeout time.Duration, now time.Time, expected *int) (events.TenantDeletionRequested, error) {
	if timeout < MinDrainTimeout || timeout > MaxDrainTimeout {
		return events.TenantDeletionRequested{}, &ValidationError{Fields: []FieldError{{"drain_timeout", DrainTimeoutRule}}}
	}
	if err := checkCurrent(s, expected); err != nil {
		return events.TenantDeletionRequested{}, err
	}
	return events.TenantDeletionRequested{
		DrainTimeoutSeconds: int((timeout + time.Second - 1) / time.Second),
		Deadline:            now.Add(timeout).UTC(),
	}, nil
}

// Bounds of a dead-letter selector.
const (
	MaxSelectorIDs     = 1000
	MaxSelectorMax     = 10000
	DefaultSelectorMax = 1000
)

// SelectorError says why a dead-letter selector is refused (a 400: the request does
// not say which dead letters it means).
type SelectorError struct{ Detail string }

func (e *SelectorError) Error() string { return "invalid dead-letter selector: " + e.Detail }

// CheckSelector validates a selector and fills in its default: either ids (1..1000
// canonical UUIDs, each once) or a reason and/or max (1..10000, default 1000, oldest
// first); never both kinds, never neither. Reason empty with a max means any reason.
func CheckSelector(sel events.DeadLetterSelector) (events.DeadLetterSelector, error) {
	switch {
	case len(sel.IDs) > 0 && (sel.Reason != "" || sel.Max != 0):
		return sel, &SelectorError{"give either ids or reason/max, not both"}
	case len(sel.IDs) == 0 && sel.Reason == "" && sel.Max == 0:
		return sel, &SelectorError{"empty: give ids, or a reason and/or max"}
	case len(sel.IDs) > MaxSelectorIDs:
		return sel, &SelectorError{fmt.Sprintf("at most %d ids", MaxSelectorIDs)}
	}
	if len(sel.IDs) > 0 {
		seen := make(map[string]bool, len(sel.IDs))
		ids := make([]string, 0, len(sel.IDs))
		for _, id := range sel.IDs {
			if u, err := uuid.Parse(id); err != nil || u.String() != id {
				return sel, &SelectorError{fmt.Sprintf("id %q is not a canonical lower-case UUID", truncate(id, 64))}
			}
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
		sel.IDs = ids
		return sel, nil
	}
	if sel.Max == 0 {
		sel.Max = DefaultSelectorMax
	}
	if sel.Max < 1 || sel.Max > MaxSelectorMax {
		return sel, &SelectorError{fmt.Sprintf("max must be between 1 and %d", MaxSelectorMax)}
	}
	if !utf8.ValidString(sel.Reason) || len(sel.Reason) > 200 {
		return sel, &SelectorError{"reason must be valid UTF-8 of at most 200 bytes"}
	}
	return sel, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// DecideRedrive checks that the tenant may redrive dead letters picked by sel (already
// checked by CheckSelector) and, when count of them matched, records it. A draining
// tenant is refused: its queue is about to go. count 0 records nothing.
func DecideRedrive(s State, sel events.DeadLetterSelector, count int, expected *int) (events.Event, error) {
	if err := checkCurrent(s, expected); err != nil {
		return nil, err
	}
	if s.Status == StatusDraining {
		return nil, ErrDraining
	}
	if count == 0 {
		return nil, nil
	}
	return events.DeadLettersRedriven{Selector: sel, Count: count}, nil
}

// DecidePurge checks that the tenant exists (any live status) and, when count dead
// letters matched, records their purge; count 0 records nothing.
func DecidePurge(s State, sel events.DeadLetterSelector, count int, expected *int) (events.Event, error) {
	if err := checkCurrent(s, expected); err != nil {
		return nil, err
	}
	if count == 0 {
		return nil, nil
	}
	return events.DeadLettersPurged{Selector: sel, Count: count}, nil
}

// DecideDelete validates a delete of an existing tenant.
func DecideDelete(s State, expected *int) (events.Event, error) {
	if err := checkCurrent(s, expected); err != nil {
		return nil, err
	}
	return events.TenantDeleted{Name: s.Name}, nil
}
