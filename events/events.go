// Package events defines the tenant lifecycle events and their wire format.
//
// Wire names are stable strings decoupled from Go type names: renaming a Go type
// must never change what is stored in the event store or sent to other services.
package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"time"
)

// Stable wire names. Never rename: the event store holds them forever.
const (
	TypeTenantCreated            = "tenant.created.v1"
	TypeTenantConcurrencyChanged = "tenant.concurrency_changed.v1"
	TypeTenantDeleted            = "tenant.deleted.v1"
	TypeTenantRateLimitChanged   = "tenant.rate_limit_changed.v1"
	TypeTenantPaused             = "tenant.paused.v1"
	TypeTenantResumed            = "tenant.resumed.v1"
	TypeTenantDeletionRequested  = "tenant.deletion_requested.v1"
	TypeDeadLettersRedriven      = "tenant.dead_letters_redriven.v1"
	TypeDeadLettersPurged        = "tenant.dead_letters_purged.v1"
)

// Topic is the watermill topic (outbox table) tenant events are published on.
const Topic = "tenant_events"

// ErrUnknownType is returned by Decode for an event type this build does not know.
// Consumers skip and count such events instead of failing.
var ErrUnknownType = errors.New("unknown event type")

// Event is one of the tenant event payloads.
type Event interface {
	EventType() string
}

// TenantCreated records a new tenant and its initial worker count.
type TenantCreated struct {
	Name    string `json:"name"`
	Workers int    `json:"workers"`
}

// TenantConcurrencyChanged records a new desired worker count.
type TenantConcurrencyChanged struct {
	Workers         int `json:"workers"`
	PreviousWorkers int `json:"previous_workers"`
}

// TenantDeleted records that the tenant is gone; its stream accepts no more commands.
type TenantDeleted struct {
	Name string `json:"name"`
}

// TenantRateLimitChanged records the tenant's own message ingest limit, which replaces
// the command service's default from then on: PerSecond messages per second with bursts
// of up to Burst. PerSecond 0 means unlimited (Burst is then 0).
type TenantRateLimitChanged struct {
	PerSecond int `json:"per_second"`
	Burst     int `json:"burst"`
}

// TenantPaused records that the tenant's messages are no longer consumed: its queue
// keeps accepting them, its desired worker count is kept for the resume.
type TenantPaused struct{}

// TenantResumed records that a paused tenant runs its desired workers again.
type TenantResumed struct{}

// TenantDeletionRequested records a drain-then-delete: the tenant accepts no more
// messages over HTTP, its consumers keep storing until the queue is empty, and then
// tenant.deleted.v1 follows. After Deadline nothing deletes it automatically; it stays
// draining until deleted plainly or asked to drain again.
type TenantDeletionRequested struct {
	DrainTimeoutSeconds int       `json:"drain_timeout_seconds"`
	Deadline            time.Time `json:"deadline"`
}

// DeadLetterSelector picks a tenant's pending dead letters: by id, or by reason (empty:
// any) up to Max of them, oldest first.
type DeadLetterSelector struct {
	IDs    []string `json:"ids,omitempty"`
	Reason string   `json:"reason,omitempty"`
	Max    int      `json:"max,omitempty"`
}

// DeadLettersRedriven records that Count pending dead letters picked by Selector were
// published into the tenant's queue again.
type DeadLettersRedriven struct {
	Selector DeadLetterSelector `json:"selector"`
	Count    int                `json:"count"`
}

// DeadLettersPurged records that Count pending dead letters picked by Selector were
// marked purged: they are never redriven.
type DeadLettersPurged struct {
	Selector DeadLetterSelector `json:"selector"`
	Count    int                `json:"count"`
}

func (TenantCreated) EventType() string            { return TypeTenantCreated }
func (TenantConcurrencyChanged) EventType() string { return TypeTenantConcurrencyChanged }
func (TenantDeleted) EventType() string            { return TypeTenantDeleted }
func (TenantRateLimitChanged) EventType() string   { return TypeTenantRateLimitChanged }
func (TenantPaused) EventType() string             { return TypeTenantPaused }
func (TenantResumed) EventType() string            { return TypeTenantResumed }
func (TenantDeletionRequested) EventType() string  { return TypeTenantDeletionRequested }
func (DeadLettersRedriven) EventType() string      { return TypeDeadLettersRedriven }
func (DeadLettersPurged) EventType() string        { return TypeDeadLettersPurged }

// Metadata travels with every event.
type Metadata struct {
	EventID       string    `json:"event_id"`
	OccurredAt    time.Time `json:"occurred_at"`
	CorrelationID string    `json:"correlation_id,omitempty"`
}

// Envelope is the wire format of one event: stream identity, version, metadata and payload.
type Envelope struct {
	Type     string          `json:"type"`
	TenantID string          `json:"tenant_id"`
	Version  int             `json:"version"`
	Metadata Metadata        `json:"metadata"`
	Data     json.RawMessage `json:"data"`
}

// Recorded is a decoded envelope together with its typed payload.
type Recorded struct {
	Envelope
	Event Event
}

// NewEnvelope builds the envelope for e at the given stream version.
func NewEnvelope(tenantID string, version int, meta Metadata, e Event) (Envelope, error) {
	data, err := json.Marshal(e)
	if err != nil {
		return Envelope{}, fmt.Errorf("encode %s payload: %w", e.EventType(), err)
	}
	return Envelope{Type: e.EventType(), TenantID: tenantID, Version: version, Metadata: meta, Data: data}, nil
}

// Marshal encodes the whole envelope.
func (e Envelope) Marshal() ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode envelope: %w", err)
	}
	return b, nil
}

// Decode parses an envelope and its payload. For an unknown type it returns the
// envelope with a nil Event and an error wrapping ErrUnknownType.
func Decode(b []byte) (Recorded, error) {
	var env Envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return Recorded{}, fmt.Errorf("decode envelope: %w", err)
	}
	ev, err := DecodeData(env.Type, env.Data)
	if err != nil {
		return Recorded{Envelope: env}, err
	}
	return Recorded{Envelope: env, Event: ev}, nil
}

// decoders builds an empty payload of each known wire type.
var decoders = map[string]func() Event{
	TypeTenantCreated:            func() Event { return &TenantCreated{} },
	TypeTenantConcurrencyChanged: func() Event { return &TenantConcurrencyChanged{} },
	TypeTenantDeleted:            func() Event { return &TenantDeleted{} },
	TypeTenantRateLimitChanged:   func() Event { return &TenantRateLimitChanged{} },
	TypeTenantPaused:             func() Event { return &TenantPaused{} },
	TypeTenantResumed:            func() Event { return &TenantResumed{} },
	TypeTenantDeletionRequested:  func() Event { return &TenantDeletionRequested{} },
	TypeDeadLettersRedriven:      func() Event { return &DeadLettersRedriven{} },
	TypeDeadLettersPurged:        func() Event { return &DeadLettersPurged{} },
}

// DecodeData parses a payload of the given wire type. The event is returned as a value
// (events.TenantCreated, not a pointer), which is what type switches match.
func DecodeData(typ string, data []byte) (Event, error) {
	mk, ok := decoders[typ]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownType, typ)
	}
	ptr := mk()
	if err := json.Unmarshal(data, ptr); err != nil {
		return nil, fmt.Errorf("decode %s: %w", typ, err)
	}
	return reflect.ValueOf(ptr).Elem().Interface().(Event), nil
}
