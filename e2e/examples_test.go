//go:build integration

package e2e

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/amqptest"
	"github.com/multitenant/mtm/platform/proctest"
)

// The examples/ programs against the real services: both producers, each run twice
// with the same ids (the second run is a retry of everything), store every message
// exactly once, the HTTP producer gets through a tight rate limit by honouring
// Retry-After, and the reader prints every stored message.
func TestExamplesEndToEnd(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, proctest.Build(dir,
		"github.com/multitenant/mtm/examples/amqp-producer",
		"github.com/multitenant/mtm/examples/http-producer",
		"github.com/multitenant/mtm/examples/reader"))
	env := Env(t)
	// 15 messages twice at 10 a second with bursts of 5: the producer meets 429s.
	env["TENANT_RATE_LIMIT"] = "10"
	env["TENANT_RATE_BURST"] = "5"
	s := startSystemWith(t, env)
	tenant := createTenant(t, s, 2)

	const amqpN, httpN = 20, 15
	for run := range 2 {
		code, out := proctest.Run(t, filepath.Join(dir, "amqp-producer"), map[string]string{"AMQP_URL": amqptest.URL(t), "TENANT_ID": tenant},
			"-n", "20", "-id-prefix", "e2e-amqp")
		require.Equal(t, 0, code, "amqp-producer run %d: %s", run, out)
		require.Len(t, strings.Fields(out), amqpN, out)
	}
	var httpIDs []string
	start := time.Now()
	for run := range 2 {
		code, out := proctest.Run(t, filepath.Join(dir, "http-producer"), nil,
			"-command-url", s.command.URL(), "-tenant", tenant, "-n", "15", "-key-prefix", "e2e-http")
		require.Equal(t, 0, code, "http-producer run %d: %s", run, out)
		ids := strings.Fields(out)
		require.Len(t, ids, httpN, out)
		if run == 1 {
			require.Equal(t, httpIDs, ids, "a retried Idempotency-Key names the same message")
		}
		httpIDs = ids
	}
	// 30 requests with 5 in the bucket and 10 a second take at least 2.5 s: the
	// producer waited rather than failing on 429.
	require.GreaterOrEqual(t, time.Since(start), 2*time.Second)

	var stored []string
	require.Eventually(t, func() bool {
		stored = allMessageIDs(t, s.query, tenant)
		return len(stored) >= amqpN+httpN
	}, 20*time.Second, 100*time.Millisecond, "all messages stored")
	time.Sleep(500 * time.Millisecond) // a duplicate would show up by now
	stored = allMessageIDs(t, s.query, tenant)
	require.Len(t, stored, amqpN+httpN, "each message stored exactly once")

	// -limit 7: the walk takes several pages.
	code, out := proctest.Run(t, filepath.Join(dir, "reader"), map[string]string{"QUERY_URL": s.query.URL()},
		"-tenant", tenant, "-limit", "7")
	require.Equal(t, 0, code, out)
	var printed []string
	sources := map[string]int{}
	for line := range strings.Lines(out) {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var m struct {
			ID      string `json:"id"`
			Payload struct {
				Source string `json:"source"`
			} `json:"payload"`
		}
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		printed = append(printed, m.ID)
		sources[m.Payload.Source]++
	}
	require.Equal(t, stored, printed, "the reader prints every message, oldest first")
	require.Equal(t, map[string]int{"amqp-producer": amqpN, "http-producer": httpN}, sources)
	require.Contains(t, out, "reader: 35 messages")
	for _, id := range httpIDs {
		require.True(t, slices.Contains(printed, id), "HTTP message %s is read back", id)
	}
}
