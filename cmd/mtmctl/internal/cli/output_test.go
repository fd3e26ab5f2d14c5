package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/client"
)

func TestTenantTableShowsBacklogWhenPresent(t *testing.T) {
	ts := []client.Tenant{
		{ID: "0190f2a4-7b7e-7c3a-9d4e-1a2b3c4d5e6f", Name: "acme", Status: "active", Workers: client.Workers{Desired: 3, Current: 2},
			DeadLettersPending: 4, Backlog: &client.Backlog{Ready: 120, Unacked: 6, LagSeconds: 1.25}},
		{ID: "0190f2a4-7b7e-7c3a-9d4e-000000000002", Name: "globex corp", Status: "draining", Workers: client.Workers{Desired: 1},
			Drain: &client.Drain{TimedOut: true}},
	}
	var b bytes.Buffer
	h, rows := tenantRows(ts)
	require.NoError(t, writeTable(&b, h, rows))
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	require.Len(t, lines, 3)
	assert.Equal(t, strings.Fields("ID NAME STATUS WORKERS READY UNACKED LAG DEAD LETTERS"), strings.Fields(lines[0]))
	assert.Equal(t, strings.Fields("0190f2a4-7b7e-7c3a-9d4e-1a2b3c4d5e6f acme active 2/3 120 6 1.3s 4"), strings.Fields(lines[1]))
	assert.Equal(t, strings.Fields("0190f2a4-7b7e-7c3a-9d4e-000000000002 globex corp draining (timed out) 0/1 - - - 0"), strings.Fields(lines[2]))
	// Aligned: every column starts at the same offset on every line.
	col := strings.Index(lines[0], "STATUS")
	assert.Equal(t, "active", lines[1][col:col+len("active")])
	assert.Equal(t, "draining", lines[2][col:col+len("draining")])
}

func TestTenantFields(t *testing.T) {
	tn := client.Tenant{ID: "id-1", Name: "acme", Status: "active", Workers: client.Workers{Desired: 3, Current: 3},
		RateLimit: &client.RateLimit{PerSecond: 100, Burst: 200}, Queue: "tenant_id-1_queue", Version: 4,
		CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)}
	var b bytes.Buffer
	require.NoError(t, writeFields(&b, tenantFields(tn)))
	out := b.String()
	assert.Contains(t, out, "Backlog:       not reported yet\n")
	assert.Contains(t, out, "Rate limit:    100/s, burst 200\n")
	assert.Contains(t, out, "Created:       2026-01-02T03:04:05Z\n")
	assert.NotContains(t, out, "Drain:")

	tn.Backlog = &client.Backlog{Ready: 1, Unacked: 2, LagSeconds: 75}
	tn.RateLimit = nil
	b.Reset()
	require.NoError(t, writeFields(&b, tenantFields(tn)))
	assert.Contains(t, b.String(), "Backlog:       1 ready, 2 unacked, lag 1m15s")
	assert.Contains(t, b.String(), "Rate limit:    service default\n")
}

func TestLagText(t *testing.T) {
	for in, want := range map[float64]string{0: "0s", -1: "0s", 0.25: "250ms", 1.26: "1.3s", 75.4: "1m15s"} {
		assert.Equal(t, want, lagText(in), "%v", in)
	}
}

func TestCellsStayOnOneLine(t *testing.T) {
	assert.Equal(t, "-", cell(""))
	assert.Equal(t, "a b c", cell("a\tb\nc"))
	assert.Equal(t, "x [31mred", cell("x\x1b[31mred"), "no terminal escapes")
}

func TestCompactJSONTruncatesLongPayloads(t *testing.T) {
	assert.Equal(t, `{"a":1,"b":[1,2]}`, compactJSON(json.RawMessage("{ \"a\": 1,\n \"b\": [1, 2] }")))
	long := compactJSON(json.RawMessage(`{"s":"` + strings.Repeat("é", 100) + `"}`))
	assert.Equal(t, payloadWidth, len([]rune(long)))
	assert.True(t, strings.HasSuffix(long, "…"))
	assert.Equal(t, "", compactJSON(nil))
}

func TestMessageLinesHaveFixedColumns(t *testing.T) {
	var b bytes.Buffer
	ms := []client.Message{
		{ID: "0190f2a4-7b7e-7c3a-9d4e-1a2b3c4d5e6f", CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Payload: json.RawMessage(`{"n":1}`)},
	}
	require.NoError(t, writeMessageLines(&b, ms))
	require.NoError(t, writeMessageLine(&b, messageRow(ms[0]))) // as --follow appends it later
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	require.Len(t, lines, 3)
	assert.Equal(t, 38, strings.Index(lines[0], "CREATED"))
	assert.Equal(t, 60, strings.Index(lines[0], "PAYLOAD"))
	assert.Equal(t, "0190f2a4-7b7e-7c3a-9d4e-1a2b3c4d5e6f  2026-01-02T03:04:05Z  {\"n\":1}", lines[1])
	assert.Equal(t, lines[1], lines[2])
}

func TestDeadLetterRowsShowBase64Bodies(t *testing.T) {
	_, rows := deadLetterRows([]client.DeadLetter{
		{ID: "d1", Reason: "invalid_json", Status: "pending", Deaths: 1, Size: 10, PayloadBase64: "eyJicm9rZW4iOg==", PayloadEncoding: "base64"},
		{ID: "d2", Reason: "too_large", Status: "redriven", Payload: json.RawMessage(`{"big":true}`)},
	})
	assert.Equal(t, "base64:eyJicm9rZW4iOg==", rows[0][7])
	assert.Equal(t, `{"big":true}`, rows[1][7])
}

func TestEventRows(t *testing.T) {
	_, rows := eventRows([]client.Event{{Type: "tenant.created.v1", Version: 1, CorrelationID: "c-1", Data: json.RawMessage(`{"name":"acme"}`)}})
	assert.Equal(t, []string{"1", "tenant.created.v1", "-", "c-1", `{"name":"acme"}`}, rows[0])
}
