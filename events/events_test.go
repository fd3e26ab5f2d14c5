package events_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/multitenant/mtm/events"
)

// -update rewrites testdata/*.json from the current encoder. Review the diff: a
// changed golden file means a changed wire format, which breaks stored events.
var update = flag.Bool("update", false, "rewrite golden files")

const tenantID = "0190f2a4-7b7e-7c3a-9d4e-1a2b3c4d5e6f"

var meta = events.Metadata{
	EventID:       "0190f2a4-7b80-7000-8000-000000000001",
	OccurredAt:    time.Date(2024, 7, 1, 12, 30, 45, 123456000, time.UTC),
	CorrelationID: "req-42",
}

var cases = []struct {
	version int
	event   events.Event
}{
	{1, events.TenantCreated{Name: "acme", Workers: 3}},
	{2, events.TenantConcurrencyChanged{Workers: 5, PreviousWorkers: 3}},
	{3, events.TenantDeleted{Name: "acme"}},
	{4, events.TenantRateLimitChanged{PerSecond: 50, Burst: 100}},
	{5, events.TenantPaused{}},
	{6, events.TenantResumed{}},
	{7, events.TenantDeletionRequested{DrainTimeoutSeconds: 300, Deadline: time.Date(2024, 7, 1, 12, 35, 45, 123456000, time.UTC)}},
	{8, events.DeadLettersRedriven{Selector: events.DeadLetterSelector{IDs: []string{"0190f2a4-7b80-7000-8000-00000000000a"}}, Count: 1}},
	{9, events.DeadLettersPurged{Selector: events.DeadLetterSelector{Reason: "invalid_json", Max: 1000}, Count: 12}},
}

func TestWireFormatGolden(t *testing.T) {
	for _, tc := range cases {
		name := tc.event.EventType()
		t.Run(name, func(t *testing.T) {
			env, err := events.NewEnvelope(tenantID, tc.version, meta, tc.event)
			if err != nil {
				t.Fatalf("envelope: %v", err)
			}
			raw, err := env.Marshal()
			if err != nil {
				t.Fatalf("marshal: %v", err)
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, raw, "", "  "); err != nil {
				t.Fatalf("indent: %v", err)
			}
			pretty.WriteByte('\n')
			path := filepath.Join("testdata", name+".json")
			if *update {
				if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
					t.Fatalf("write golden: %v", err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden (run with -update to create): %v", err)
			}
			if !bytes.Equal(pretty.Bytes(), want) {
				t.Fatalf("wire format of %s changed:\n got: %s\nwant: %s", name, pretty.Bytes(), want)
			}

			// The golden bytes must decode back to the same typed event and envelope:
			// old stored events stay readable.
			rec, err := events.Decode(want)
			if err != nil {
				t.Fatalf("decode golden: %v", err)
			}
			if !reflect.DeepEqual(rec.Event, tc.event) {
				t.Fatalf("decoded event %#v, want %#v", rec.Event, tc.event)
			}
			if rec.Type != name || rec.TenantID != tenantID || rec.Version != tc.version {
				t.Fatalf("decoded envelope %+v", rec.Envelope)
			}
			if !rec.Metadata.OccurredAt.Equal(meta.OccurredAt) || rec.Metadata.EventID != meta.EventID || rec.Metadata.CorrelationID != meta.CorrelationID {
				t.Fatalf("decoded metadata %+v, want %+v", rec.Metadata, meta)
			}
		})
	}
}

func TestWireNamesAreStable(t *testing.T) {
	want := map[string]events.Event{
		"tenant.created.v1":               events.TenantCreated{},
		"tenant.concurrency_changed.v1":   events.TenantConcurrencyChanged{},
		"tenant.deleted.v1":               events.TenantDeleted{},
		"tenant.rate_limit_changed.v1":    events.TenantRateLimitChanged{},
		"tenant.paused.v1":                events.TenantPaused{},
		"tenant.resumed.v1":               events.TenantResumed{},
		"tenant.deletion_requested.v1":    events.TenantDeletionRequested{},
		"tenant.dead_letters_redriven.v1": events.DeadLettersRedriven{},
		"tenant.dead_letters_purged.v1":   events.DeadLettersPurged{},
	}
	for name, ev := range want {
		if got := ev.EventType(); got != name {
			t.Errorf("%T wire name %q, want %q", ev, got, name)
		}
	}
}

func TestDecodeUnknownTypeKeepsEnvelope(t *testing.T) {
	raw := []byte(`{"type":"tenant.renamed.v9","tenant_id":"` + tenantID + `","version":4,"metadata":{"event_id":"x","occurred_at":"2024-07-01T12:30:45Z"},"data":{"name":"b"}}`)
	rec, err := events.Decode(raw)
	if !errors.Is(err, events.ErrUnknownType) {
		t.Fatalf("err = %v, want ErrUnknownType", err)
	}
	if rec.Event != nil || rec.Version != 4 || rec.TenantID != tenantID {
		t.Fatalf("unknown event should keep its envelope and have no payload: %+v", rec)
	}
}

func TestDecodeRejectsMalformed(t *testing.T) {
	for _, raw := range []string{`{`, `{"type":"tenant.created.v1","data":{"workers":"three"}}`} {
		if _, err := events.Decode([]byte(raw)); err == nil || errors.Is(err, events.ErrUnknownType) {
			t.Errorf("Decode(%s) err = %v, want a decode error", raw, err)
		}
	}
}
