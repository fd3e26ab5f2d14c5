package events_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/multitenant/mtm/events"
)

// FuzzDecode feeds Decode arbitrary bytes, seeded with every golden event. Decode must
// never panic, and whatever it decodes must encode again (NewEnvelope, Marshal) into
// bytes that decode to the same envelope and event: an event the store accepted can
// always be republished and replayed. Encoded JSON is compared rather than Go values
// because decoded times carry fresh *time.Location values.
func FuzzDecode(f *testing.F) {
	golden, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, path := range golden {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"type":"tenant.created.v1","data":null}`))
	f.Add([]byte(`{"type":"tenant.created.v1","data":{"name":"\ud800","workers":1e3}}`))
	f.Add([]byte(`{"type":"tenant.deletion_requested.v1","data":{"deadline":"0000-01-01T00:00:00+01:00"}}`))
	f.Add([]byte(`{"type":"tenant.unknown.v9","data":{}}`))
	f.Add([]byte(`[]`))

	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := events.Decode(b)
		if err != nil {
			if rec.Event != nil {
				t.Fatalf("failed decode returned an event: %v", err)
			}
			return
		}
		if rec.Event.EventType() != rec.Type {
			t.Fatalf("decoded %T for type %q", rec.Event, rec.Type)
		}
		first := reencode(t, rec)
		again, err := events.Decode(first)
		if err != nil {
			t.Fatalf("re-encoded %q does not decode: %v", first, err)
		}
		if second := reencode(t, again); !bytes.Equal(first, second) {
			t.Fatalf("round trip changed the event:\n%s\n%s", first, second)
		}
	})
}

func reencode(t *testing.T, rec events.Recorded) []byte {
	t.Helper()
	env, err := events.NewEnvelope(rec.TenantID, rec.Version, rec.Metadata, rec.Event)
	if err != nil {
		t.Fatalf("decoded %T cannot be encoded again: %v", rec.Event, err)
	}
	b, err := env.Marshal()
	if err != nil {
		t.Fatalf("decoded envelope cannot be encoded again: %v", err)
	}
	return b
}
