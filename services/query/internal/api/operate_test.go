//go:build integration

package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/events"
	"github.com/multitenant/mtm/platform/auth"
	"github.com/multitenant/mtm/platform/pgtest"
	"github.com/multitenant/mtm/projections/cursor"
	"github.com/multitenant/mtm/projections/tenants"
	"github.com/multitenant/mtm/services/query/internal/api"
)

// deadLetter is a row to archive directly (the consumer writes them in production).
type deadLetter struct {
	id      uuid.UUID
	reason  string
	status  string
	body    []byte
	headers string
	at      time.Time
}

func (e *env) archive(t *testing.T, tenant uuid.UUID, rows ...deadLetter) {
	t.Helper()
	for _, d := range rows {
		headers := d.headers
		if headers == "" {
			headers = "{}"
		}
		_, err := e.pool.Exec(context.Background(), `
			INSERT INTO dead_letters (tenant_id, id, message_id, reason, reason_detail, body, body_size, headers, deaths,
				death_key, status, first_dead_lettered_at, last_dead_lettered_at)
			VALUES ($1, $2, $3, $4, 'detail of '||$4, $5, $6, $7, 2, $8, $9, $10, $11)`,
			tenant, d.id, "msg-"+d.id.String()[:8], d.reason, d.body, len(d.body), headers, uuid.NewString(), d.status, d.at, d.at.Add(time.Minute))
		require.NoError(t, err)
	}
}

// record appends an event to the store as the command service would and applies it to
// the read model as the projector would.
func (e *env) record(t *testing.T, id uuid.UUID, version int, at time.Time, correlation string, ev events.Event) events.Envelope {
	t.Helper()
	envl, err := events.NewEnvelope(id.String(), version, events.Metadata{EventID: uuid.NewString(), OccurredAt: at, CorrelationID: correlation}, ev)
	require.NoError(t, err)
	e.storeRaw(t, id, envl)
	e.apply(t, id, version, at, ev)
	return envl
}

func (e *env) storeRaw(t *testing.T, stream uuid.UUID, envl events.Envelope) {
	t.Helper()
	payload, err := envl.Marshal()
	require.NoError(t, err)
	_, err = e.pool.Exec(context.Background(), `
		INSERT INTO event_store (stream_id, version, event_id, event_type, payload, occurred_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, stream, envl.Version, envl.Metadata.EventID, envl.Type, payload, envl.Metadata.OccurredAt)
	require.NoError(t, err)
}

type drainJSON struct {
	RequestedAt time.Time `json:"requested_at"`
	Deadline    time.Time `json:"deadline"`
	TimedOut    bool      `json:"timed_out"`
}

type tenantOpsJSON struct {
	ID                 string     `json:"id"`
	Status             string     `json:"status"`
	Version            int        `json:"version"`
	Drain              *drainJSON `json:"drain"`
	DeadLettersPending *int       `json:"dead_letters_pending"`
}

type deadLetterJSON struct {
	ID                  string          `json:"id"`
	MessageID           string          `json:"message_id"`
	Reason              string          `json:"reason"`
	ReasonDetail        string          `json:"reason_detail"`
	Status              string          `json:"status"`
	Deaths              int             `json:"deaths"`
	FirstDeadLetteredAt time.Time       `json:"first_dead_lettered_at"`
	LastDeadLetteredAt  time.Time       `json:"last_dead_lettered_at"`
	Headers             json.RawMessage `json:"headers"`
	Size                int             `json:"size"`
	Payload             json.RawMessage `json:"payload"`
	PayloadBase64       *string         `json:"payload_base64"`
	PayloadEncoding     string          `json:"payload_encoding"`
}

type eventJSON struct {
	Type          string          `json:"type"`
	Version       int             `json:"version"`
	OccurredAt    time.Time       `json:"occurred_at"`
	CorrelationID string          `json:"correlation_id"`
	Data          json.RawMessage `json:"data"`
}

// Status, drain and pending dead letters on GET /tenants/{id} and GET /tenants follow the
// read model through pause, resume, drain, a re-armed drain past its deadline and deletion.
func TestTenantStatusDrainAndPending(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	e := start(t, db.Pool)
	t0 := time.Date(2025, 5, 6, 7, 8, 9, 0, time.UTC)
	a, b := uuid.New(), uuid.New()
	e.apply(t, a, 1, t0, events.TenantCreated{Name: "a", Workers: 2})
	e.apply(t, b, 1, t0.Add(time.Second), events.TenantCreated{Name: "b", Workers: 2})
	get := func(id uuid.UUID) tenantOpsJSON {
		t.Helper()
		return decode[tenantOpsJSON](t, e.get(t, "/tenants/"+id.String()))
	}
	listed := func() map[string]tenantOpsJSON {
		t.Helper()
		out := map[string]tenantOpsJSON{}
		for _, tn := range decode[pageJSON[tenantOpsJSON]](t, e.get(t, "/tenants?limit=100")).Data {
			out[tn.ID] = tn
		}
		return out
	}

	got := get(a)
	require.Equal(t, tenants.StatusActive, got.Status)
	require.Nil(t, got.Drain)
	require.NotNil(t, got.DeadLettersPending, "always present")
	require.Zero(t, *got.DeadLettersPending)

	e.apply(t, a, 2, t0.Add(time.Minute), events.TenantPaused{})
	got = get(a)
	require.Equal(t, "paused", got.Status)
	require.Equal(t, 2, got.Version)
	require.Nil(t, got.Drain)
	require.Equal(t, "paused", listed()[a.String()].Status)
	e.apply(t, a, 3, t0.Add(2*time.Minute), events.TenantResumed{})
	require.Equal(t, "active", get(a).Status)

	// Pending dead letters: only status pending counts, per tenant, in the list too.
	at := t0.Add(time.Hour)
	e.archive(t, a,
		deadLetter{id: uuid.New(), reason: "invalid_json", status: "pending", body: []byte("x"), at: at},
		deadLetter{id: uuid.New(), reason: "expired", status: "pending", body: []byte("{}"), at: at},
		deadLetter{id: uuid.New(), reason: "expired", status: "redriven", body: []byte("{}"), at: at},
		deadLetter{id: uuid.New(), reason: "expired", status: "purged", body: []byte("{}"), at: at})
	e.archive(t, b, deadLetter{id: uuid.New(), reason: "expired", status: "pending", body: []byte("{}"), at: at})
	require.Equal(t, 2, *get(a).DeadLettersPending)
	all := listed()
	require.Equal(t, 2, *all[a.String()].DeadLettersPending)
	require.Equal(t, 1, *all[b.String()].DeadLettersPending)

	// Draining with a deadline ahead: not timed out.
	future := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
	e.apply(t, a, 4, t0.Add(3*time.Minute), events.TenantDeletionRequested{DrainTimeoutSeconds: 3600, Deadline: future})
	got = get(a)
	require.Equal(t, "draining", got.Status)
	require.NotNil(t, got.Drain)
	require.True(t, t0.Add(3*time.Minute).Equal(got.Drain.RequestedAt))
	require.True(t, future.Equal(got.Drain.Deadline))
	require.False(t, got.Drain.TimedOut)
	require.Equal(t, got, listed()[a.String()], "the list shows what GET shows")
	// A pause does not undo it; re-armed with a deadline already past: timed out.
	e.apply(t, a, 5, t0.Add(4*time.Minute), events.TenantPaused{})
	require.Equal(t, "draining", get(a).Status)
	past := t0.Add(5 * time.Minute)
	e.apply(t, a, 6, t0.Add(4*time.Minute), events.TenantDeletionRequested{DrainTimeoutSeconds: 60, Deadline: past})
	got = get(a)
	require.Equal(t, "draining", got.Status)
	require.True(t, past.Equal(got.Drain.Deadline))
	require.True(t, got.Drain.TimedOut, "the deadline has passed; it stays draining and says so")
	require.Nil(t, listed()[b.String()].Drain)

	e.apply(t, a, 7, t0.Add(6*time.Minute), events.TenantDeleted{Name: "a"})
	requireProblem(t, e.get(t, "/tenants/"+a.String()), http.StatusNotFound, "tenant_not_found")
	require.NotContains(t, listed(), a.String())
}

// walkDeadLetters follows next_cursor from path (which has a query string) to the end.
func walkDeadLetters(t *testing.T, e *env, path, token string) ([]deadLetterJSON, int) {
	t.Helper()
	var got []deadLetterJSON
	pages := 0
	next := path
	for {
		p := decode[pageJSON[deadLetterJSON]](t, e.getAs(t, next, token))
		pages++
		got = append(got, p.Data...)
		if p.NextCursor == nil {
			return got, pages
		}
		require.NotEmpty(t, p.Data)
		next = path + "&cursor=" + url.QueryEscape(*p.NextCursor)
	}
}

func deadLetterIDs(list []deadLetterJSON) []string {
	out := make([]string, 0, len(list))
	for _, d := range list {
		out = append(out, d.ID)
	}
	return out
}

func TestDeadLetters(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	e := start(t, db.Pool)
	t0 := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	a, b := uuid.New(), uuid.New()
	for _, id := range []uuid.UUID{a, b} {
		e.apply(t, id, 1, t0, events.TenantCreated{Name: id.String(), Workers: 1})
	}
	// 12 of A's: three reasons, two statuses, pairs sharing a timestamp; ids ascending
	// within a pair so the expected order is known.
	reasons := []string{"invalid_json", "delivery_limit", "expired"}
	var want []deadLetter
	for i := range 12 {
		id := uuid.New()
		id[0] = byte(i) // ascending ids: the tie-break order is the insertion order
		d := deadLetter{id: id, reason: reasons[i%3], status: []string{"pending", "redriven"}[i/6],
			body: []byte(fmt.Sprintf(`{"n":%d}`, i)), headers: fmt.Sprintf(`{"x-n": %d}`, i), at: t0.Add(time.Duration(i/2) * time.Second)}
		want = append(want, d)
	}
	e.archive(t, a, want...)
	e.archive(t, b, deadLetter{id: uuid.New(), reason: "expired", status: "pending", body: []byte("{}"), at: t0})

	base := "/tenants/" + a.String() + "/dead-letters?limit=2"
	for _, f := range []struct{ query, reason, status string }{
		{"", "", ""},
		{"&reason=expired", "expired", ""},
		{"&status=pending", "", "pending"},
		{"&status=redriven&reason=invalid_json", "invalid_json", "redriven"},
		{"&reason=nothing", "nothing", ""},
	} {
		t.Run(f.query, func(t *testing.T) {
			ids := []string{}
			for _, d := range want {
				if (f.reason == "" || d.reason == f.reason) && (f.status == "" || d.status == f.status) {
					ids = append(ids, d.id.String())
				}
			}
			got, pages := walkDeadLetters(t, e, base+f.query, "")
			require.Equal(t, ids, deadLetterIDs(got), "exactly the matching rows, oldest first")
			require.Equal(t, max(1, (len(ids)+1)/2), pages)
		})
	}

	all, _ := walkDeadLetters(t, e, base, "")
	first := all[0]
	require.Equal(t, want[0].id.String(), first.ID)
	require.Equal(t, "msg-"+want[0].id.String()[:8], first.MessageID)
	require.Equal(t, "invalid_json", first.Reason)
	require.Equal(t, "detail of invalid_json", first.ReasonDetail)
	require.Equal(t, "pending", first.Status)
	require.Equal(t, 2, first.Deaths)
	require.True(t, t0.Equal(first.FirstDeadLetteredAt))
	require.True(t, t0.Add(time.Minute).Equal(first.LastDeadLetteredAt))
	require.JSONEq(t, `{"x-n": 0}`, string(first.Headers))
	require.Equal(t, len(`{"n":0}`), first.Size)
	require.Equal(t, `{"n":0}`, string(first.Payload))
	require.Nil(t, first.PayloadBase64)
	require.Empty(t, first.PayloadEncoding)

	// Unknown status, bad cursors, unknown and deleted tenants.
	requireProblem(t, e.get(t, base+"&status=lost"), http.StatusBadRequest, "invalid_status")
	requireProblem(t, e.get(t, base+"&status=PENDING"), http.StatusBadRequest, "invalid_status")
	aPage := decode[pageJSON[deadLetterJSON]](t, e.get(t, base))
	aCursor := *aPage.NextCursor
	raw, err := base64.RawURLEncoding.DecodeString(aCursor)
	require.NoError(t, err)
	raw[30] ^= 0x01
	for name, c := range map[string]string{
		"bit-flipped":     base64.RawURLEncoding.EncodeToString(raw),
		"truncated":       aCursor[:len(aCursor)-3],
		"messages cursor": e.codec.Encode(cursor.KindMessages, a, cursor.Position{CreatedAt: t0, ID: uuid.New()}),
		"events cursor":   e.codec.Encode(cursor.KindEvents, a, cursor.Position{CreatedAt: time.Unix(0, 1)}),
	} {
		t.Run(name, func(t *testing.T) {
			requireProblem(t, e.get(t, base+"&cursor="+url.QueryEscape(c)), http.StatusBadRequest, "invalid_cursor")
		})
	}
	requireProblem(t, e.get(t, "/tenants/"+b.String()+"/dead-letters?cursor="+url.QueryEscape(aCursor)), http.StatusBadRequest, "invalid_cursor")
	requireProblem(t, e.get(t, "/tenants/"+a.String()+"/messages?cursor="+url.QueryEscape(aCursor)), http.StatusBadRequest, "invalid_cursor")
	requireProblem(t, e.get(t, "/tenants/"+uuid.NewString()+"/dead-letters"), http.StatusNotFound, "tenant_not_found")
	requireProblem(t, e.get(t, "/tenants/not-a-uuid/dead-letters"), http.StatusNotFound, "tenant_not_found")
	e.apply(t, b, 2, t0.Add(time.Hour), events.TenantDeleted{})
	requireProblem(t, e.get(t, "/tenants/"+b.String()+"/dead-letters"), http.StatusNotFound, "tenant_not_found")
}

// A JSON body goes out byte for byte (whitespace, key order, HTML characters and all);
// anything else (not JSON, invalid UTF-8, empty) as base64 with the flag.
func TestDeadLetterPayloads(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	e := start(t, db.Pool)
	t0 := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	id := uuid.New()
	e.apply(t, id, 1, t0, events.TenantCreated{Name: "p", Workers: 1})
	bodies := [][]byte{
		[]byte(" {\n  \"b\": 1,  \"a\": \"<tag> & \\u00e9\" }\n"),
		[]byte(`{"broken":`),
		{0xff, 0xfe, '"', 'x', '"'},
		[]byte(`"` + string([]byte{0xc3}) + `"`), // valid JSON to encoding/json, but not UTF-8
		{},
		[]byte(`[1, 2e400]`),
	}
	for i, body := range bodies {
		e.archive(t, id, deadLetter{id: uuid.New(), reason: "invalid_json", status: "pending", body: body, at: t0.Add(time.Duration(i) * time.Second)})
	}
	r := e.get(t, "/tenants/"+id.String()+"/dead-letters")
	require.Equal(t, "application/json", r.contentType)
	require.True(t, json.Valid(r.body), string(r.body))
	require.Contains(t, string(r.body), `"payload":`+string(bodies[0])+`}`, "the JSON body is spliced in unchanged")
	require.Contains(t, string(r.body), `"payload":`+string(bodies[5])+`}`)
	p := decode[pageJSON[deadLetterJSON]](t, r)
	require.Len(t, p.Data, len(bodies))
	for i, d := range p.Data {
		require.Equal(t, len(bodies[i]), d.Size)
		if i == 0 || i == 5 {
			// (json.Unmarshal trims the whitespace around a RawMessage; the Contains above
			// checked the bytes on the wire.)
			require.Equal(t, bytes.TrimSpace(bodies[i]), []byte(d.Payload))
			require.Nil(t, d.PayloadBase64)
			continue
		}
		require.Nil(t, d.Payload, "body %d", i)
		require.Equal(t, "base64", d.PayloadEncoding, "body %d", i)
		require.NotNil(t, d.PayloadBase64, "body %d: present even when empty", i)
		decoded, err := base64.StdEncoding.DecodeString(*d.PayloadBase64)
		require.NoError(t, err)
		require.True(t, bytes.Equal(bodies[i], decoded), "body %d round-trips", i)
	}
}

// PAGE_MAX_BYTES bounds a page of large dead letters and events: fewer items, and the
// walk still reaches every one.
func TestOperatePagesStopAtByteCap(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	e := startWith(t, db.Pool, nil, func(h *api.Handler) { h.WithPageBytes(5000) })
	t0 := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	id := uuid.New()
	e.record(t, id, 1, t0, "", events.TenantCreated{Name: strings.Repeat("n", 2000), Workers: 1})
	for v := 2; v <= 10; v++ {
		e.record(t, id, v, t0, "", events.DeadLettersPurged{Selector: events.DeadLetterSelector{Reason: strings.Repeat("r", 2000)}, Count: v})
	}
	for i := range 10 {
		e.archive(t, id, deadLetter{id: uuid.New(), reason: "too_large", status: "pending",
			body: []byte(`"` + strings.Repeat("x", 2000) + `"`), at: t0.Add(time.Duration(i) * time.Second)})
	}
	p := decode[pageJSON[deadLetterJSON]](t, e.get(t, "/tenants/"+id.String()+"/dead-letters?limit=100"))
	require.Len(t, p.Data, 2, "two ~2 KB bodies fit in 5000 bytes")
	require.NotNil(t, p.NextCursor)
	got, _ := walkDeadLetters(t, e, "/tenants/"+id.String()+"/dead-letters?limit=100", "")
	require.Len(t, got, 10)

	ev := decode[pageJSON[eventJSON]](t, e.get(t, "/tenants/"+id.String()+"/events?limit=100"))
	require.Len(t, ev.Data, 2)
	require.NotNil(t, ev.NextCursor)
}

func TestEvents(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	e := start(t, db.Pool)
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 123456000, time.UTC)
	a, b := uuid.New(), uuid.New()
	history := []events.Event{
		events.TenantCreated{Name: "acme", Workers: 2},
		events.TenantConcurrencyChanged{Workers: 4, PreviousWorkers: 2},
		events.TenantPaused{},
		events.TenantResumed{},
		events.DeadLettersRedriven{Selector: events.DeadLetterSelector{IDs: []string{uuid.NewString()}}, Count: 1},
		events.TenantDeletionRequested{DrainTimeoutSeconds: 300, Deadline: t0.Add(time.Hour)},
	}
	var want []events.Envelope
	for i, ev := range history {
		want = append(want, e.record(t, a, i+1, t0.Add(time.Duration(i)*time.Minute), fmt.Sprintf("corr-%d", i+1), ev))
	}
	// A type this build does not know is history too.
	unknown := events.Envelope{Type: "tenant.renamed.v9", TenantID: a.String(), Version: 7,
		Metadata: events.Metadata{EventID: uuid.NewString(), OccurredAt: t0.Add(time.Hour)}, Data: json.RawMessage(`{"name":"acme2"}`)}
	e.storeRaw(t, a, unknown)
	want = append(want, unknown)
	e.record(t, b, 1, t0, "other", events.TenantCreated{Name: "b", Workers: 1})

	var got []eventJSON
	path := "/tenants/" + a.String() + "/events?limit=3"
	pages := 0
	for next := path; ; {
		p := decode[pageJSON[eventJSON]](t, e.get(t, next))
		pages++
		got = append(got, p.Data...)
		if p.NextCursor == nil {
			break
		}
		next = path + "&cursor=" + url.QueryEscape(*p.NextCursor)
	}
	require.Equal(t, 3, pages)
	require.Len(t, got, len(want), "every event, once")
	for i, w := range want {
		g := got[i]
		require.Equal(t, w.Type, g.Type)
		require.Equal(t, i+1, g.Version, "oldest first by version")
		require.True(t, w.Metadata.OccurredAt.Equal(g.OccurredAt), "%d: %s vs %s", i, w.Metadata.OccurredAt, g.OccurredAt)
		require.Equal(t, w.Metadata.CorrelationID, g.CorrelationID)
		require.JSONEq(t, string(w.Data), string(g.Data))
	}
	require.Equal(t, "tenant.deletion_requested.v1", got[5].Type)
	require.JSONEq(t, `{"drain_timeout_seconds":300,"deadline":"`+t0.Add(time.Hour).Format(time.RFC3339Nano)+`"}`, string(got[5].Data))
	require.Empty(t, got[6].CorrelationID)

	def := decode[pageJSON[eventJSON]](t, e.get(t, "/tenants/"+b.String()+"/events"))
	require.Len(t, def.Data, 1, "only B's own stream")
	require.Equal(t, "other", def.Data[0].CorrelationID)
	require.Nil(t, def.NextCursor)

	aCursor := *decode[pageJSON[eventJSON]](t, e.get(t, path)).NextCursor
	requireProblem(t, e.get(t, "/tenants/"+b.String()+"/events?cursor="+url.QueryEscape(aCursor)), http.StatusBadRequest, "invalid_cursor")
	requireProblem(t, e.get(t, "/tenants/"+a.String()+"/dead-letters?cursor="+url.QueryEscape(aCursor)), http.StatusBadRequest, "invalid_cursor")
	requireProblem(t, e.get(t, "/tenants/"+a.String()+"/events?cursor="+url.QueryEscape(aCursor[:len(aCursor)-2])), http.StatusBadRequest, "invalid_cursor")
	requireProblem(t, e.get(t, "/tenants/"+uuid.NewString()+"/events"), http.StatusNotFound, "tenant_not_found")
	requireProblem(t, e.get(t, "/tenants/x/events"), http.StatusNotFound, "tenant_not_found")
	e.record(t, b, 2, t0.Add(time.Hour), "", events.TenantDeleted{Name: "b"})
	requireProblem(t, e.get(t, "/tenants/"+b.String()+"/events"), http.StatusNotFound, "tenant_not_found")
}

// A tenant token reads its own dead letters and history; another tenant's are the unknown
// tenant's 404, even with a cursor the admin got for them.
func TestOperateTenantIsolation(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	cfg := auth.Config{Secret: "isolation-test"}
	e := startWith(t, db.Pool, &cfg)
	t0 := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	a, b := uuid.New(), uuid.New()
	for _, id := range []uuid.UUID{a, b} {
		e.record(t, id, 1, t0, "", events.TenantCreated{Name: id.String(), Workers: 1})
		e.record(t, id, 2, t0, "", events.TenantPaused{})
		e.archive(t, id,
			deadLetter{id: uuid.New(), reason: "expired", status: "pending", body: []byte("{}"), at: t0},
			deadLetter{id: uuid.New(), reason: "expired", status: "pending", body: []byte("{}"), at: t0.Add(time.Second)})
	}
	admin, err := auth.Mint(cfg, auth.RoleAdmin, "", time.Hour)
	require.NoError(t, err)
	tenantA, err := auth.Mint(cfg, auth.RoleTenant, a.String(), time.Hour)
	require.NoError(t, err)

	for _, suffix := range []string{"/dead-letters", "/events"} {
		require.Equal(t, http.StatusUnauthorized, e.get(t, "/tenants/"+a.String()+suffix).status)
		require.Len(t, decode[pageJSON[json.RawMessage]](t, e.getAs(t, "/tenants/"+a.String()+suffix, tenantA)).Data, 2)
		require.Len(t, decode[pageJSON[json.RawMessage]](t, e.getAs(t, "/tenants/"+b.String()+suffix, admin)).Data, 2)

		unknown := e.getAs(t, "/tenants/"+uuid.NewString()+suffix, tenantA)
		r := e.getAs(t, "/tenants/"+b.String()+suffix, tenantA)
		requireProblem(t, r, http.StatusNotFound, "tenant_not_found")
		var p1, p2 map[string]any
		require.NoError(t, json.Unmarshal(r.body, &p1))
		require.NoError(t, json.Unmarshal(unknown.body, &p2))
		delete(p1, "instance")
		delete(p2, "instance")
		require.Equal(t, p2, p1, "another tenant looks exactly like an unknown one")

		bCursor := *decode[pageJSON[json.RawMessage]](t, e.getAs(t, "/tenants/"+b.String()+suffix+"?limit=1", admin)).NextCursor
		requireProblem(t, e.getAs(t, "/tenants/"+b.String()+suffix+"?cursor="+url.QueryEscape(bCursor), tenantA), http.StatusNotFound, "tenant_not_found")
		requireProblem(t, e.getAs(t, "/tenants/"+a.String()+suffix+"?cursor="+url.QueryEscape(bCursor), tenantA), http.StatusBadRequest, "invalid_cursor")
	}
	// The tenant sees its own pending count on itself.
	mine := decode[tenantOpsJSON](t, e.getAs(t, "/tenants/"+a.String(), tenantA))
	require.Equal(t, "paused", mine.Status)
	require.Equal(t, 2, *mine.DeadLettersPending)
}
