//go:build integration

package httpapi_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/events"
	"github.com/multitenant/mtm/platform/amqptest"
	"github.com/multitenant/mtm/platform/rabbit"
	"github.com/multitenant/mtm/services/command/internal/commandtest"
)

// queueDeliveries acks every message of the tenant's queue away and returns them.
func queueDeliveries(t *testing.T, tenantID string) []amqp.Delivery {
	t.Helper()
	ch, err := amqptest.Dial(t).Channel()
	require.NoError(t, err)
	defer ch.Close()
	var out []amqp.Delivery
	for {
		d, ok, err := ch.Get(rabbit.QueueName(tenantID), true)
		require.NoError(t, err)
		if !ok {
			return out
		}
		out = append(out, d)
	}
}

func requireCode(t *testing.T, r response, status int, code string) {
	t.Helper()
	requireProblem(t, r, status)
	assert.Equal(t, code, r.body["code"], r.raw)
}

func TestPauseAndResume(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	id := f.createTenant("pause-"+uuid.NewString()[:8], 2)

	r := f.do("POST", "/tenants/"+id+"/pause", "", "", "X-Correlation-ID", "pause-1")
	require.Equal(t, http.StatusOK, r.status, r.raw)
	assert.Equal(t, map[string]any{"id": id, "status": "paused", "version": 2.0}, r.body)
	assert.Equal(t, `"2"`, r.header.Get("ETag"))
	r = f.do("POST", "/tenants/"+id+"/pause", "", "")
	require.Equal(t, http.StatusOK, r.status, r.raw)
	assert.EqualValues(t, 2, r.body["version"], "pausing again records nothing")

	// A paused tenant's queue keeps accepting, with the AMQP timestamp set.
	before := time.Now().Add(-time.Second)
	r = f.json("POST", "/tenants/"+id+"/messages", `{"while":"paused"}`)
	require.Equal(t, http.StatusAccepted, r.status, r.raw)
	got := queueDeliveries(t, id)
	require.Len(t, got, 1)
	assert.WithinRange(t, got[0].Timestamp, before.Truncate(time.Second), time.Now().Add(time.Second))

	requireCode(t, f.do("POST", "/tenants/"+id+"/resume", "", "", "If-Match", `"1"`), http.StatusPreconditionFailed, "version_mismatch")
	r = f.do("POST", "/tenants/"+id+"/resume", "", "", "If-Match", `"2"`)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	assert.Equal(t, map[string]any{"id": id, "status": "active", "version": 3.0}, r.body)
	r = f.do("POST", "/tenants/"+id+"/resume", "", "")
	require.Equal(t, http.StatusOK, r.status, r.raw)
	assert.EqualValues(t, 3, r.body["version"], "resuming an active tenant records nothing")

	requireCode(t, f.do("POST", "/tenants/"+uuid.NewString()+"/pause", "", ""), http.StatusNotFound, "tenant_not_found")
	requireProblem(t, f.do("POST", "/tenants/nope/resume", "", ""), http.StatusNotFound)
	stored, err := f.env.Store.Load(t.Context(), id)
	require.NoError(t, err)
	require.Len(t, stored, 3)
	assert.Equal(t, "pause-1", stored[1].Metadata.CorrelationID)
}

func TestDrainRequest(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	id := f.createTenant("drain-"+uuid.NewString()[:8], 2)
	path := "/tenants/" + id

	for _, q := range []string{"?drain=yes", "?drain=1", "?drain=true&drain_timeout=0s", "?drain=true&drain_timeout=25h",
		"?drain=true&drain_timeout=5", "?drain_timeout=5m", "?drain=false&drain_timeout=1m"} {
		requireCode(t, f.do("DELETE", path+q, "", ""), http.StatusBadRequest, "invalid_query")
	}
	assert.Equal(t, []int{1}, f.env.Versions(t, id), "bad queries record nothing")

	r := f.do("DELETE", path+"?drain=true&drain_timeout=90s", "", "", "If-Match", `"1"`)
	require.Equal(t, http.StatusAccepted, r.status, r.raw)
	assert.Equal(t, map[string]any{"id": id, "status": "draining", "version": 2.0}, r.body)
	assert.Equal(t, `"2"`, r.header.Get("ETag"))
	stored, err := f.env.Store.Load(t.Context(), id)
	require.NoError(t, err)
	ev, ok := stored[1].Event.(events.TenantDeletionRequested)
	require.True(t, ok)
	assert.Equal(t, 90, ev.DrainTimeoutSeconds)
	assert.WithinDuration(t, time.Now().Add(90*time.Second), ev.Deadline, 10*time.Second)

	// Draining: no more messages over HTTP, no pause, resume, resize or redrive.
	requireCode(t, f.json("POST", path+"/messages", `{"a":1}`), http.StatusConflict, "tenant_draining")
	requireCode(t, f.do("POST", path+"/pause", "", ""), http.StatusConflict, "tenant_draining")
	requireCode(t, f.do("POST", path+"/resume", "", ""), http.StatusConflict, "tenant_draining")
	requireCode(t, f.json("PUT", path+"/config/concurrency", `{"workers":4}`), http.StatusConflict, "tenant_draining")
	requireCode(t, f.json("POST", path+"/dead-letters/redrive", `{"max":5}`), http.StatusConflict, "tenant_draining")
	assert.Empty(t, queueDeliveries(t, id))
	// A purge still works.
	r = f.json("DELETE", path+"/dead-letters", `{"max":5}`)
	require.Equal(t, http.StatusOK, r.status, r.raw)

	// Asked again: re-armed (default 5 minutes).
	r = f.do("DELETE", path+"?drain=true", "", "")
	require.Equal(t, http.StatusAccepted, r.status, r.raw)
	assert.EqualValues(t, 3, r.body["version"])
	// A plain delete of a draining tenant deletes it at once and ends the drain.
	r = f.do("DELETE", path, "", "")
	require.Equal(t, http.StatusAccepted, r.status, r.raw)
	assert.Equal(t, map[string]any{"id": id, "status": "deleting", "version": 4.0}, r.body)
	var drains int
	require.NoError(t, f.env.DB.QueryRow(`SELECT count(*) FROM tenant_drains`).Scan(&drains))
	assert.Zero(t, drains)
	requireProblem(t, f.do("DELETE", path+"?drain=true", "", ""), http.StatusNotFound)
}

// seedRedrivable seeds a tenant's dead letters: three invalid_json (one with a body
// that is not JSON, one whose message id is not a UUID), one expired, and one
// invalid_json already redriven. It returns their ids in that order.
func seedRedrivable(t *testing.T, f *fixture, id string) []string {
	t.Helper()
	t0 := time.Now().Add(-time.Hour)
	ids := []string{uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString()}
	f.env.SeedDeadLetters(t, id,
		commandtest.DeadLetter{ID: ids[0], MessageID: ids[0], Reason: "invalid_json", Body: []byte("not json \x00\xff"), FirstAt: t0},
		commandtest.DeadLetter{ID: ids[1], MessageID: "order-7", Reason: "invalid_json", Body: []byte(`{"n":7}`), FirstAt: t0.Add(time.Second)},
		commandtest.DeadLetter{ID: ids[2], MessageID: ids[2], Reason: "invalid_json", Body: []byte(`{"n":2}`), FirstAt: t0.Add(2 * time.Second)},
		commandtest.DeadLetter{ID: ids[3], MessageID: ids[3], Reason: "expired", Body: []byte(`{"n":3}`), FirstAt: t0.Add(3 * time.Second)},
		commandtest.DeadLetter{ID: ids[4], MessageID: ids[4], Reason: "invalid_json", Body: []byte(`{"n":4}`), Status: "redriven", FirstAt: t0},
	)
	return ids
}

func TestRedriveDeadLetters(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	id := f.createTenant("redrive-"+uuid.NewString()[:8], 1)
	ids := seedRedrivable(t, f, id)
	path := "/tenants/" + id + "/dead-letters/redrive"

	// A dry run counts and moves nothing.
	r := f.json("POST", path, `{"reason":"invalid_json","dry_run":true}`)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	assert.Equal(t, map[string]any{"matched": 3.0}, r.body)
	assert.Empty(t, queueDeliveries(t, id))
	assert.Equal(t, "pending", f.env.DeadLetterStatus(t, id, ids[0]))
	assert.Equal(t, []int{1}, f.env.Versions(t, id))

	r = f.json("POST", path, `{"reason":"invalid_json"}`, "X-Correlation-ID", "redrive-1", "If-Match", `"1"`)
	require.Equal(t, http.StatusAccepted, r.status, r.raw)
	assert.Equal(t, map[string]any{"matched": 3.0, "version": 2.0}, r.body)
	assert.Equal(t, `"2"`, r.header.Get("ETag"))
	got := queueDeliveries(t, id)
	require.Len(t, got, 3, "exactly the selected ones, in the tenant's queue")
	want := map[string]string{ids[0]: "not json \x00\xff", "order-7": `{"n":7}`, ids[2]: `{"n":2}`}
	for i, d := range got {
		assert.Equal(t, want[d.MessageId], string(d.Body), "raw body of %s (%d)", d.MessageId, i)
		assert.Equal(t, "redrive-1", d.CorrelationId)
		assert.False(t, d.Timestamp.IsZero())
	}
	assert.Equal(t, []string{ids[0], "order-7", ids[2]}, []string{got[0].MessageId, got[1].MessageId, got[2].MessageId}, "oldest first")
	for i, wantStatus := range []string{"redriven", "redriven", "redriven", "pending", "redriven"} {
		assert.Equal(t, wantStatus, f.env.DeadLetterStatus(t, id, ids[i]), "dead letter %d", i)
	}
	stored, err := f.env.Store.Load(t.Context(), id)
	require.NoError(t, err)
	require.Len(t, stored, 2)
	assert.Equal(t, events.DeadLettersRedriven{Selector: events.DeadLetterSelector{Reason: "invalid_json", Max: 1000}, Count: 3}, stored[1].Event)
	assert.Equal(t, "redrive-1", stored[1].Metadata.CorrelationID)

	// The same redrive again moves nothing and records nothing.
	r = f.json("POST", path, `{"reason":"invalid_json"}`)
	require.Equal(t, http.StatusAccepted, r.status, r.raw)
	assert.Equal(t, map[string]any{"matched": 0.0, "version": 2.0}, r.body)
	assert.Empty(t, queueDeliveries(t, id))
	assert.Equal(t, []int{1, 2}, f.env.Versions(t, id))

	// By id: only pending ones of this tenant move.
	r = f.json("POST", path, fmt.Sprintf(`{"ids":[%q,%q,%q]}`, ids[3], ids[0], uuid.NewString()))
	require.Equal(t, http.StatusAccepted, r.status, r.raw)
	assert.EqualValues(t, 1, r.body["matched"])
	got = queueDeliveries(t, id)
	require.Len(t, got, 1)
	assert.Equal(t, ids[3], got[0].MessageId)
	requireCode(t, f.json("POST", path, `{"ids":[]}`, "If-Match", `"2"`), http.StatusBadRequest, "invalid_selector")
}

func TestDeadLetterSelectorErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	id := f.createTenant("selector-"+uuid.NewString()[:8], 1)
	for _, method := range []string{"POST /dead-letters/redrive", "DELETE /dead-letters"} {
		var verb, suffix string
		_, _ = fmt.Sscanf(method, "%s %s", &verb, &suffix)
		path := "/tenants/" + id + suffix
		for body, status := range map[string]int{
			`{}`:               400,
			`{"dry_run":true}`: 400,
			`{"ids":["` + uuid.NewString() + `"],"reason":"expired"}`: 400,
			`{"ids":["` + uuid.NewString() + `"],"max":3}`:            400,
			`{"ids":["NOT-A-UUID"]}`:                                  400,
			`{"max":0}`:                                               400,
			`{"max":10001}`:                                           400,
			`{"max":-1}`:                                              400,
			`{"max":2.5}`:                                             400,
			`{"max":"5"}`:                                             400,
			`{"max":null}`:                                            400,
			`{"ids":"x"}`:                                             422,
			`{"reason":1}`:                                            422,
			`{"selector":{}}`:                                         422,
			`{"max":`:                                                 400,
		} {
			r := f.json(verb, path, body)
			requireProblem(t, r, status)
		}
		requireProblem(t, f.do(verb, path, "text/plain", `{"max":1}`), http.StatusUnsupportedMediaType)
		requireProblem(t, f.json(verb, "/tenants/"+uuid.NewString()+suffix, `{"max":1}`), http.StatusNotFound)
	}
	assert.Equal(t, []int{1}, f.env.Versions(t, id))
}

func TestPurgeDeadLetters(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	id := f.createTenant("purge-"+uuid.NewString()[:8], 1)
	ids := seedRedrivable(t, f, id)
	path := "/tenants/" + id + "/dead-letters"

	r := f.json("DELETE", path, `{"reason":"invalid_json","max":2,"dry_run":true}`)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	assert.Equal(t, map[string]any{"purged": 2.0, "version": 1.0}, r.body)
	assert.Equal(t, "pending", f.env.DeadLetterStatus(t, id, ids[0]))

	requireCode(t, f.json("DELETE", path, `{"reason":"invalid_json","max":2}`, "If-Match", `"7"`), http.StatusPreconditionFailed, "version_mismatch")
	r = f.json("DELETE", path, `{"reason":"invalid_json","max":2}`, "X-Correlation-ID", "purge-1")
	require.Equal(t, http.StatusOK, r.status, r.raw)
	assert.Equal(t, map[string]any{"purged": 2.0, "version": 2.0}, r.body)
	assert.Equal(t, `"2"`, r.header.Get("ETag"))
	for i, want := range []string{"purged", "purged", "pending", "pending", "redriven"} {
		assert.Equal(t, want, f.env.DeadLetterStatus(t, id, ids[i]), "dead letter %d", i)
	}
	stored, err := f.env.Store.Load(t.Context(), id)
	require.NoError(t, err)
	require.Len(t, stored, 2)
	assert.Equal(t, events.DeadLettersPurged{Selector: events.DeadLetterSelector{Reason: "invalid_json", Max: 2}, Count: 2}, stored[1].Event)
	assert.Equal(t, "purge-1", stored[1].Metadata.CorrelationID)

	// Purged dead letters are never redriven.
	r = f.json("POST", path+"/redrive", fmt.Sprintf(`{"ids":[%q]}`, ids[0]))
	require.Equal(t, http.StatusAccepted, r.status, r.raw)
	assert.EqualValues(t, 0, r.body["matched"])
	assert.Empty(t, queueDeliveries(t, id))

	r = f.json("DELETE", path, fmt.Sprintf(`{"ids":[%q,%q]}`, ids[0], ids[2]))
	require.Equal(t, http.StatusOK, r.status, r.raw)
	assert.Equal(t, map[string]any{"purged": 1.0, "version": 3.0}, r.body)
	r = f.json("DELETE", path, fmt.Sprintf(`{"ids":[%q,%q]}`, ids[0], ids[2]))
	require.Equal(t, http.StatusOK, r.status, r.raw)
	assert.Equal(t, map[string]any{"purged": 0.0, "version": 3.0}, r.body, "again: nothing, nothing recorded")
	assert.Equal(t, []int{1, 2, 3}, f.env.Versions(t, id))
}
