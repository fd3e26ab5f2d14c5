// Package events defines the tenant lifecycle events and their wire format.
//
// Wire names are stable strings decoupled from Go type names: renaming a Go type
// must never change what is stored in the event store or sent to other services.
package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Stable wire names. Never rename: the event store holds them forever.
const (
	TypeTenantCreated            = "tenant.created.v1"
	TypeTenantConcurrencyChanged = "tenant.concurrency_changed.v1"
	TypeTenantDeleted            = "tenant.deleted.v1"
	TypeTenantRateLimitChanged   = "tenant.rate_limit_changed.v1"
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

func (TenantCreated) EventType() string            { return TypeTenantCreated }
func (TenantConcurrencyChanged) EventType() string { return TypeTenantConcurrencyChanged }
func (TenantDeleted) EventType() string            { return TypeTenantDeleted }
func (TenantRateLimitChanged) EventType() string   { return TypeTenantRateLimitChanged }

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

// DecodeData parses a payload of the given wire type.
func DecodeData(typ string, data []byte) (Event, error) {
	var ev Event
	switch typ {
	case TypeTenantCreated:
		var e TenantCreated
		if err := json.Unmarshal(data, &e); err != nil {
			return nil, fmt.Errorf("decode %s: %w", typ, err)
		}
		ev = e
	case TypeTenantConcurrencyChanged:
		var e TenantConcurrencyChanged
		if err := json.Unmarshal(data, &e); err != nil {
			return nil, fmt.Errorf("decode %s: %w", typ, err)
		}
		ev = e
	case TypeTenantDeleted:
		var e TenantDeleted
		if err := json.Unmarshal(data, &e); err != nil {
			return nil, fmt.Errorf("decode %s: %w", typ, err)
		}
		ev = e
	case TypeTenantRateLimitChanged:
		var e TenantRateLimitChanged
		if err := json.Unmarshal(data, &e); err != nil {
			return nil, fmt.Errorf("decode %s: %w", typ, err)
		}
		ev = e
	default:
		return nil, fmt.Errorf("%w: %q", ErrUnknownType, typ)
	}
	return ev, nil
}
