//go:build integration

package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/amqptest"
	"github.com/multitenant/mtm/platform/pgtest"
	"github.com/multitenant/mtm/platform/proctest"
	"github.com/multitenant/mtm/platform/rabbit"
)

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mtmctl-it-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	if err := proctest.Build(dir,
		"github.com/multitenant/mtm/cmd/mtmctl",
		"github.com/multitenant/mtm/services/command",
		"github.com/multitenant/mtm/services/consumer",
		"github.com/multitenant/mtm/services/query"); err != nil {
		fmt.Fprintln(os.Stderr, "mtmctl:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// system is the three services on one fresh database, and the environment mtmctl needs
// to reach them.
type system struct {
	command, consumer, query *proctest.Proc
	ctl                      map[string]string
}

// startSystem migrates a per-test database and runs the three services with env added.
func startSystem(t *testing.T, extra map[string]string) *system {
	t.Helper()
	db := pgtest.New(t)
	// Registered before the services start, so it runs after they stopped: every queue
	// of every tenant this test created is deleted.
	amqptest.CleanupEventStoreTenants(t, db.Pool)
	env := map[string]string{
		"DATABASE_URL":     db.URL,
		"RABBITMQ_URL":     amqptest.URL(t),
		"SHUTDOWN_TIMEOUT": "10s",
		"LOG_LEVEL":        "warn",
	}
	for k, v := range extra {
		env[k] = v
	}
	code, out := proctest.Run(t, filepath.Join(binDir, "command"), env, "-migrate")
	require.Equal(t, 0, code, out)
	s := &system{}
	s.command = proctest.Start(t, filepath.Join(binDir, "command"), "", env)
	s.consumer = proctest.Start(t, filepath.Join(binDir, "consumer"), "", env)
	s.query = proctest.Start(t, filepath.Join(binDir, "query"), "", env)
	for _, p := range []*proctest.Proc{s.command, s.consumer, s.query} {
		p.WaitStatus(t, "/readyz", 200, 30*time.Second)
	}
	// MTM_TOKEN empty: a token in the developer's shell must not leak into the test.
	s.ctl = map[string]string{"MTM_COMMAND_URL": s.command.URL(), "MTM_QUERY_URL": s.query.URL(), "MTM_TOKEN": ""}
	return s
}

// result is one finished mtmctl run.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// mtmctl runs the binary with env (plus the test's own environment) and stdin.
func mtmctl(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "mtmctl"), args...)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return result{exit.ExitCode(), out.String(), errb.String()}
	case err != nil:
		t.Fatalf("run mtmctl %v: %v", args, err)
	}
	return result{0, out.String(), errb.String()}
}

// ok runs mtmctl and requires exit 0 with nothing on stderr.
func ok(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	r := mtmctl(t, env, "", args...)
	require.Equal(t, 0, r.code, "mtmctl %v: %s", args, r)
	require.Empty(t, r.stderr, "mtmctl %v", args)
	return r.stdout
}

// okJSON runs mtmctl -o json and decodes its output into out.
func okJSON(t *testing.T, env map[string]string, out any, args ...string) {
	t.Helper()
	raw := ok(t, env, append([]string{"-o", "json"}, args...)...)
	require.NoError(t, json.Unmarshal([]byte(raw), out), "output of %v: %s", args, raw)
}

// problemDetail asks the service directly for the detail of an error answer, so the test
// checks that mtmctl prints the service's own words.
func problemDetail(t *testing.T, u, token string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.GreaterOrEqual(t, resp.StatusCode, 400)
	var p struct{ Detail string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&p))
	require.NotEmpty(t, p.Detail)
	return p.Detail
}

type tenantJSON struct {
	ID                 string `json:"id"`
	Name               string `json:"name"`
	Status             string `json:"status"`
	DeadLettersPending int    `json:"dead_letters_pending"`
	Workers            struct {
		Desired int `json:"desired"`
		Current int `json:"current"`
	} `json:"workers"`
}

type messageJSON struct {
	ID      string          `json:"id"`
	Payload json.RawMessage `json:"payload"`
}

type deadLetterJSON struct {
	ID, MessageID, Reason, Status string
	Deaths                        int
	PayloadBase64                 string `json:"payload_base64"`
}

func (d *deadLetterJSON) UnmarshalJSON(b []byte) error {
	var raw struct {
		ID            string `json:"id"`
		MessageID     string `json:"message_id"`
		Reason        string `json:"reason"`
		Status        string `json:"status"`
		Deaths        int    `json:"deaths"`
		PayloadBase64 string `json:"payload_base64"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("dead letter: %w", err)
	}
	*d = deadLetterJSON{ID: raw.ID, MessageID: raw.MessageID, Reason: raw.Reason, Status: raw.Status, Deaths: raw.Deaths, PayloadBase64: raw.PayloadBase64}
	return nil
}

// compact undoes -o json's indentation of payloads.
func compact(raw json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	return b.String()
}

func payloads(ms []messageJSON) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, compact(m.Payload))
	}
	return out
}

// An operator's whole session through the real binary against the real services.
func TestOperatorSession(t *testing.T) {
	s := startSystem(t, nil)
	env := s.ctl

	// Usage errors: exit 2, the usage on stderr, nothing called.
	for _, args := range [][]string{{"tenants"}, {"tenants", "get"}, {"tenants", "list", "-o", "yaml"}, {"nope"}, {"tenants", "list", "--bogus"}} {
		r := mtmctl(t, env, "", args...)
		assert.Equal(t, 2, r.code, "%v: %s", args, r)
		assert.Contains(t, r.stderr, "Usage:", "%v", args)
	}

	// A tenant that does not exist: exit 1 and the service's detail on stderr.
	missing := uuid.NewString()
	r := mtmctl(t, env, "", "tenants", "get", missing)
	require.Equal(t, 1, r.code, "%s", r)
	assert.Equal(t, "mtmctl: "+problemDetail(t, s.query.URL()+"/tenants/"+missing, "")+"\n", r.stderr)
	assert.Empty(t, r.stdout)

	// Create, then the query side shows it (by id and by name).
	name := "cli-" + uuid.NewString()[:8]
	var created struct {
		ID      string `json:"id"`
		Workers int    `json:"workers"`
	}
	okJSON(t, env, &created, "tenants", "create", name, "--workers", "1")
	id := created.ID
	require.NotEmpty(t, id)
	require.Eventually(t, func() bool { return mtmctl(t, env, "", "tenants", "get", id).code == 0 }, 10*time.Second, 50*time.Millisecond)
	get := ok(t, env, "tenants", "get", strings.ToUpper(name))
	assert.Contains(t, get, "ID:            "+id+"\n")
	assert.Contains(t, get, "Status:        active\n")

	list := ok(t, env, "tenants", "list")
	assert.Regexp(t, `(?m)^ID\s+NAME\s+STATUS\s+WORKERS\s+READY\s+UNACKED\s+LAG\s+DEAD LETTERS$`, list)
	assert.Regexp(t, `(?m)^`+id+`\s+`+name+`\s+active\s+`, list)
	var tenants []tenantJSON
	okJSON(t, env, &tenants, "tenants", "list")
	require.Len(t, tenants, 1)
	assert.Equal(t, name, tenants[0].Name)

	// Resize.
	assert.Regexp(t, `(?m)^`+id+`\s+2\s+\d+$`, ok(t, env, "tenants", "resize", id, "2"))
	var tn tenantJSON
	require.Eventually(t, func() bool { okJSON(t, env, &tn, "tenants", "get", id); return tn.Workers.Desired == 2 },
		10*time.Second, 50*time.Millisecond, "the query side shows the new size")

	// Publish a file with one bad line: the good lines go, the bad one is named, exit 1.
	file := filepath.Join(t.TempDir(), "batch.jsonl")
	require.NoError(t, os.WriteFile(file, []byte("{\"n\":1}\n{\"n\":2}\n{\"n\":\n\n{\"n\":3}\n"), 0o600))
	r = mtmctl(t, env, "", "publish", id, file)
	require.Equal(t, 1, r.code, "%s", r)
	assert.Equal(t, "published 3, failed 1\n", r.stdout)
	assert.Contains(t, r.stderr, "mtmctl: line 3: invalid JSON")
	assert.NotContains(t, r.stderr, "\r", "no progress bar when stderr is not a terminal")

	var msgs []messageJSON
	require.Eventually(t, func() bool {
		okJSON(t, env, &msgs, "messages", "list", id)
		return len(msgs) >= 3
	}, 10*time.Second, 50*time.Millisecond)
	assert.ElementsMatch(t, []string{`{"n":1}`, `{"n":2}`, `{"n":3}`}, payloads(msgs))

	// Running the same command again stores nothing twice.
	r = mtmctl(t, env, "", "publish", id, file)
	require.Equal(t, 1, r.code, "%s", r)
	assert.Equal(t, "published 3, failed 1\n", r.stdout)
	okJSON(t, env, &msgs, "messages", "list", id)
	assert.Len(t, msgs, 3, "a re-run is deduplicated by its idempotency keys")

	table := ok(t, env, "messages", "list", id)
	assert.Regexp(t, `(?m)^ID\s+CREATED\s+PAYLOAD$`, table)
	for _, m := range msgs {
		assert.Regexp(t, `(?m)^`+m.ID+`\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s+`+regexp.QuoteMeta(compact(m.Payload))+`$`, table)
	}
	okJSON(t, env, &msgs, "messages", "list", id, "--limit", "2")
	assert.Len(t, msgs, 2)

	// --follow prints what is there, then what arrives, as JSON lines; SIGTERM ends it with 0.
	follow := proctest.Start(t, filepath.Join(binDir, "mtmctl"), "", env, "-o", "json", "messages", "list", id, "--follow", "--interval", "100ms")
	followed := func() []string {
		var out []string
		for _, line := range strings.Split(strings.TrimSpace(follow.Output()), "\n") {
			var m messageJSON
			if json.Unmarshal([]byte(line), &m) == nil && m.ID != "" {
				out = append(out, compact(m.Payload))
			}
		}
		return out
	}
	require.Eventually(t, func() bool { return len(followed()) == 3 }, 10*time.Second, 50*time.Millisecond)
	r = mtmctl(t, env, "{\"n\":4}\n", "publish", id, "-")
	require.Equal(t, 0, r.code, "%s", r)
	assert.Equal(t, "published 1, failed 0\n", r.stdout)
	require.Eventually(t, func() bool { return len(followed()) == 4 }, 10*time.Second, 50*time.Millisecond, "follow output:\n%s", follow.Output())
	assert.Equal(t, `{"n":4}`, followed()[3])
	code, _ := follow.Terminate(t, 10*time.Second)
	assert.Equal(t, 0, code, follow.Output())
	assert.Len(t, followed(), 4, "nothing printed twice")

	// Standard input publishes anew on every run; with --key-prefix a re-run stores nothing twice.
	for range 2 {
		require.Equal(t, 0, mtmctl(t, env, "{\"n\":4}\n", "publish", id).code)
		require.Equal(t, 0, mtmctl(t, env, "{\"n\":5}\n", "publish", id, "-", "--key-prefix", "batch-1").code)
	}
	require.Eventually(t, func() bool {
		okJSON(t, env, &msgs, "messages", "list", id)
		return len(msgs) >= 7
	}, 10*time.Second, 50*time.Millisecond)
	assert.ElementsMatch(t, []string{`{"n":1}`, `{"n":2}`, `{"n":3}`, `{"n":4}`, `{"n":4}`, `{"n":4}`, `{"n":5}`}, payloads(msgs))

	// Pause and resume.
	assert.Regexp(t, `(?m)^`+id+`\s+paused\s+\d+$`, ok(t, env, "tenants", "pause", id))
	require.Eventually(t, func() bool { okJSON(t, env, &tn, "tenants", "get", id); return tn.Status == "paused" }, 10*time.Second, 50*time.Millisecond)
	assert.Regexp(t, `(?m)^`+id+`\s+active\s+\d+$`, ok(t, env, "tenants", "resume", id))

	// A dead letter: a body that is not JSON, published over AMQP.
	poison := "poison-" + uuid.NewString()[:8]
	publishAMQP(t, id, poison, `{"broken":`)
	var dls []deadLetterJSON
	require.Eventually(t, func() bool {
		okJSON(t, env, &dls, "dlq", "list", id)
		return len(dls) == 1
	}, 10*time.Second, 50*time.Millisecond)
	assert.Equal(t, poison, dls[0].MessageID)
	assert.Equal(t, "invalid_json", dls[0].Reason)
	assert.Equal(t, "pending", dls[0].Status)
	dlTable := ok(t, env, "dlq", "list", id, "--reason", "invalid_json", "--status", "pending")
	assert.Regexp(t, `(?m)^`+dls[0].ID+`\s+`+poison+`\s+invalid_json\s+pending\s+1\s+\S+\s+10\s+base64:`+dls[0].PayloadBase64+`$`, dlTable)
	okJSON(t, env, &dls, "dlq", "list", id, "--status", "redriven")
	assert.Empty(t, dls)
	okJSON(t, env, &tn, "tenants", "get", id)
	assert.Equal(t, 1, tn.DeadLettersPending)

	assert.Equal(t, "would redrive 1 dead letters (dry run)\n", ok(t, env, "dlq", "redrive", id, "--reason", "invalid_json", "--dry-run"))
	assert.Regexp(t, `^redrove 1 dead letters \(tenant version \d+\)\n$`, ok(t, env, "dlq", "redrive", id, "--reason", "invalid_json"))
	// Still not JSON: it comes back pending, with a second death.
	require.Eventually(t, func() bool {
		okJSON(t, env, &dls, "dlq", "list", id)
		return len(dls) == 1 && dls[0].Status == "pending" && dls[0].Deaths == 2
	}, 10*time.Second, 50*time.Millisecond)
	assert.Equal(t, "would purge 1 dead letters (dry run)\n", ok(t, env, "dlq", "purge", id, "--ids", dls[0].ID, "--dry-run"))
	var purged struct{ Purged int }
	okJSON(t, env, &purged, "dlq", "purge", id, "--ids", dls[0].ID)
	assert.Equal(t, 1, purged.Purged)

	// The history shows it all, oldest first.
	var events []struct {
		Type    string `json:"type"`
		Version int    `json:"version"`
	}
	okJSON(t, env, &events, "events", id)
	var types []string
	for i, e := range events {
		assert.Equal(t, i+1, e.Version)
		types = append(types, e.Type)
	}
	assert.Equal(t, []string{"tenant.created.v1", "tenant.concurrency_changed.v1", "tenant.paused.v1", "tenant.resumed.v1",
		"tenant.dead_letters_redriven.v1", "tenant.dead_letters_purged.v1"}, types)
	assert.Regexp(t, `(?m)^1\s+tenant\.created\.v1\s+\S+\s+\S+\s+\{"name":"`+name+`"`, ok(t, env, "events", id))

	// Drain, then delete: the tenant goes once its queue is empty.
	assert.Regexp(t, `(?m)^`+id+`\s+draining\s+\d+$`, ok(t, env, "tenants", "delete", id, "--drain", "--drain-timeout", "1m"))
	r = mtmctl(t, env, "{\"late\":true}\n", "publish", id)
	assert.Equal(t, 1, r.code, "%s", r)
	assert.Contains(t, r.stderr, "mtmctl: line 1: ", "a draining tenant takes no more messages")
	require.Eventually(t, func() bool {
		r := mtmctl(t, env, "", "tenants", "get", id)
		return r.code == 1 && strings.HasPrefix(r.stderr, "mtmctl: ")
	}, 30*time.Second, 100*time.Millisecond)
	okJSON(t, env, &tenants, "tenants", "list")
	assert.Empty(t, tenants)
}

// publishAMQP publishes one body with a message id straight into the tenant's queue, with
// a publisher confirm, as a producer with the services' account would.
func publishAMQP(t *testing.T, tenant, messageID, body string) {
	t.Helper()
	conn := amqptest.Dial(t)
	ch, err := conn.Channel()
	require.NoError(t, err)
	defer ch.Close()
	require.NoError(t, ch.Confirm(false))
	dc, err := ch.PublishWithDeferredConfirm("", rabbit.QueueName(tenant), true, false, amqp.Publishing{
		MessageId: messageID, DeliveryMode: amqp.Persistent, ContentType: "application/json",
		Timestamp: time.Now(), Body: []byte(body),
	})
	require.NoError(t, err)
	confirmed, err := dc.WaitContext(context.Background())
	require.NoError(t, err)
	require.True(t, confirmed)
}

// Tokens minted by mtmctl work against services with JWT_SECRET, and a tenant token sees
// only its own tenant.
func TestTokens(t *testing.T) {
	secret := strings.Repeat("k", 48)
	s := startSystem(t, map[string]string{"JWT_SECRET": secret})
	mint := map[string]string{"JWT_SECRET": secret}

	// Without a token the services refuse, and mtmctl says why.
	r := mtmctl(t, s.ctl, "", "tenants", "list")
	require.Equal(t, 1, r.code, "%s", r)
	assert.Equal(t, "mtmctl: "+problemDetail(t, s.query.URL()+"/tenants", "")+"\n", r.stderr)

	// Minting needs the secret: a usage error without it.
	r = mtmctl(t, map[string]string{"JWT_SECRET": ""}, "", "token")
	assert.Equal(t, 2, r.code, "%s", r)
	assert.Contains(t, r.stderr, "JWT_SECRET")

	admin := strings.TrimSpace(ok(t, mint, "token", "--ttl", "10m"))
	adminEnv := map[string]string{"MTM_COMMAND_URL": s.ctl["MTM_COMMAND_URL"], "MTM_QUERY_URL": s.ctl["MTM_QUERY_URL"], "MTM_TOKEN": admin}
	var a, b struct{ ID string }
	okJSON(t, adminEnv, &a, "tenants", "create", "tok-a-"+uuid.NewString()[:8], "--workers", "1")
	okJSON(t, adminEnv, &b, "tenants", "create", "tok-b-"+uuid.NewString()[:8], "--workers", "1")
	for _, id := range []string{a.ID, b.ID} {
		require.Eventually(t, func() bool { return mtmctl(t, adminEnv, "", "tenants", "get", id).code == 0 }, 10*time.Second, 50*time.Millisecond)
	}

	tenantToken := strings.TrimSpace(ok(t, mint, "token", "--role", "tenant", "--tenant", a.ID))
	// --token wins over MTM_TOKEN.
	asA := func(args ...string) result {
		return mtmctl(t, adminEnv, "", append([]string{"--token", tenantToken}, args...)...)
	}
	r = asA("-o", "json", "tenants", "list")
	require.Equal(t, 0, r.code, "%s", r)
	var listed []tenantJSON
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &listed))
	require.Len(t, listed, 1, "a tenant token lists only its tenant")
	assert.Equal(t, a.ID, listed[0].ID)
	assert.Equal(t, 0, asA("tenants", "get", a.ID).code)

	r = asA("tenants", "get", b.ID)
	require.Equal(t, 1, r.code, "%s", r)
	assert.Equal(t, "mtmctl: "+problemDetail(t, s.query.URL()+"/tenants/"+b.ID, tenantToken)+"\n", r.stderr)
	assert.Equal(t, 1, asA("messages", "list", b.ID).code)
	r = asA("publish", b.ID, "-")
	assert.Equal(t, "published 0, failed 0\n", r.stdout, "empty input publishes nothing")
	r = mtmctl(t, adminEnv, "{\"x\":1}\n", "--token", tenantToken, "publish", b.ID)
	assert.Equal(t, 1, r.code, "%s", r)
	assert.Equal(t, "published 0, failed 1\n", r.stdout, "a tenant token cannot publish to another tenant")
	r = asA("tenants", "pause", a.ID)
	assert.Equal(t, 1, r.code, "pausing is for admins: %s", r)

	// Plain delete, with the admin token.
	assert.Regexp(t, `(?m)^`+b.ID+`\s+deleting\s+\d+$`, ok(t, adminEnv, "tenants", "delete", b.ID))
	ok(t, adminEnv, "tenants", "delete", a.ID)
}
