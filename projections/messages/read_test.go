//go:build integration

package messages_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/pgtest"
	"github.com/multitenant/mtm/projections/cursor"
	"github.com/multitenant/mtm/projections/messages"
	"github.com/multitenant/mtm/projections/messages/messagestest"
)

// A walk over 10,000 rows sharing one created_at, while 1,000 more rows (same
// timestamp, random ids, so they land all over the key space) arrive concurrently,
// returns each original row exactly once. The walk goes through encoded cursors as a
// client would.
func TestPageWalkSameTimestampWhileInserting(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	tenant, other := uuid.New(), uuid.New()
	messagestest.CreatePartition(t, db.Pool, tenant)
	messagestest.CreatePartition(t, db.Pool, other)
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	original := messagestest.InsertSameTime(t, db.Pool, tenant, at, 10_000)
	messagestest.InsertSameTime(t, db.Pool, other, at, 50) // must never show up
	codec, err := cursor.NewCodec([]byte("test"))
	require.NoError(t, err)

	// The writer inserts 100 batches of 10 while the walk runs. The unbuffered channel
	// paces the two: the walk fetches a page while the next batch is being inserted, so
	// all 1,000 rows arrive during the walk (which has at least 100 pages).
	progress := make(chan struct{})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var insertErr error
	// Stops the writer if the walk fails early; runs before the database is dropped.
	t.Cleanup(func() { close(stop); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(progress)
		for range 100 {
			_, insertErr = db.Pool.Exec(ctx, `
				INSERT INTO messages (tenant_id, id, payload, created_at)
				SELECT $1, gen_random_uuid(), '{"late":true}', $2 FROM generate_series(1, 10)`, tenant, at)
			if insertErr != nil {
				return
			}
			select {
			case progress <- struct{}{}:
			case <-stop:
				return
			}
		}
	}()
	inserted := 0

	seen := map[uuid.UUID]int{}
	next := ""
	pages := 0
	for {
		var after *cursor.Position
		if next != "" {
			p, err := codec.Decode(next, cursor.KindMessages, tenant)
			require.NoError(t, err)
			after = &p
		}
		if _, ok := <-progress; ok {
			inserted += 10
		}
		page, more, err := messages.Page(ctx, db.Pool, tenant, after, 100, 0)
		require.NoError(t, err)
		pages++
		for _, m := range page {
			require.Equal(t, tenant, m.TenantID)
			seen[m.ID]++
		}
		if !more {
			break
		}
		require.Len(t, page, 100, "every page but the last is full")
		next = codec.Encode(cursor.KindMessages, tenant, page[len(page)-1].Position())
	}
	wg.Wait()

	require.NoError(t, insertErr)
	require.Equal(t, 1_000, inserted, "all 1,000 rows were inserted during the walk")
	for _, id := range original {
		require.Equal(t, 1, seen[id], "original row %s seen %d times", id, seen[id])
	}
	for id, n := range seen {
		require.Equal(t, 1, n, "row %s repeated", id)
	}
	t.Logf("walked %d pages, %d rows (%d original, %d inserted during the walk)", pages, len(seen), len(original), inserted)
}

func TestPageOrderAndEnd(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	tenant := uuid.New()

	// A tenant without a partition yet (consumer not there) reads as empty, not as an error.
	page, more, err := messages.Page(ctx, db.Pool, tenant, nil, 10, 0)
	require.NoError(t, err)
	require.Empty(t, page)
	require.False(t, more)

	messagestest.CreatePartition(t, db.Pool, tenant)
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	messagestest.InsertSeries(t, db.Pool, tenant, start, time.Second, 5)

	page, more, err = messages.Page(ctx, db.Pool, tenant, nil, 3, 0)
	require.NoError(t, err)
	require.True(t, more)
	require.Len(t, page, 3)
	for i, m := range page {
		require.True(t, start.Add(time.Duration(i)*time.Second).Equal(m.CreatedAt), "oldest first")
		var body map[string]int
		require.NoError(t, json.Unmarshal(m.Payload, &body))
		require.Equal(t, i+1, body["n"])
	}
	last := page[2].Position()
	page, more, err = messages.Page(ctx, db.Pool, tenant, &last, 3, 0)
	require.NoError(t, err)
	require.False(t, more, "exactly the rest: no next page")
	require.Len(t, page, 2)

	// Exactly limit rows left: more is false, so the client gets no empty extra page.
	page, more, err = messages.Page(ctx, db.Pool, tenant, nil, 5, 0)
	require.NoError(t, err)
	require.Len(t, page, 5)
	require.False(t, more)

	_, _, err = messages.Page(ctx, db.Pool, tenant, nil, 0, 0)
	require.Error(t, err)
}

// explainNode is the part of EXPLAIN (FORMAT JSON) the test looks at.
type explainNode struct {
	NodeType     string        `json:"Node Type"`
	RelationName string        `json:"Relation Name"`
	IndexName    string        `json:"Index Name"`
	IndexCond    string        `json:"Index Cond"`
	Filter       string        `json:"Filter"`
	ActualRows   float64       `json:"Actual Rows"`
	Plans        []explainNode `json:"Plans"`
}

func walkPlan(n explainNode, visit func(explainNode)) {
	visit(n)
	for _, c := range n.Plans {
		walkPlan(c, visit)
	}
}

// Page 1,000 of a 100,000-row tenant (limit 100) is an index range scan on the
// tenant's partition that stops after limit+1 entries: no OFFSET, no sort.
func TestDeepPagePlan(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	tenant, neighbour := uuid.New(), uuid.New()
	messagestest.CreatePartition(t, db.Pool, tenant)
	messagestest.CreatePartition(t, db.Pool, neighbour)
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	messagestest.InsertSeries(t, db.Pool, tenant, start, time.Millisecond, 100_000)
	messagestest.InsertSeries(t, db.Pool, neighbour, start, time.Millisecond, 1_000)
	_, err := db.Pool.Exec(ctx, "ANALYZE messages")
	require.NoError(t, err)

	const limit = 100
	// Position after page 999, i.e. the 99,900th row: found the slow way, once, for the test.
	var after cursor.Position
	require.NoError(t, db.Pool.QueryRow(ctx,
		`SELECT created_at, id FROM messages WHERE tenant_id = $1 ORDER BY created_at, id OFFSET $2 LIMIT 1`,
		tenant, 999*limit-1).Scan(&after.CreatedAt, &after.ID))

	require.NotContains(t, strings.ToUpper(messages.NextPageSQL), "OFFSET")
	require.NotContains(t, strings.ToUpper(messages.FirstPageSQL), "OFFSET")

	partition := messages.PartitionName(tenant.String())
	nextPage := fmt.Sprintf(messages.NextPageSQL, messages.PartitionIdent(tenant.String()))
	var raw []byte
	require.NoError(t, db.Pool.QueryRow(ctx, "EXPLAIN (ANALYZE, FORMAT JSON) "+nextPage,
		tenant, after.CreatedAt, after.ID, limit+1).Scan(&raw))
	requireKeysetPlan(t, raw, partition, limit)
	t.Logf("custom plan: %s", compact(raw))

	// A server that caches a generic plan for the statement (as it may after five
	// executions of a prepared statement) still reads this partition through the index.
	conn, err := db.Pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, "SET plan_cache_mode = force_generic_plan")
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "PREPARE next_page AS "+nextPage)
	require.NoError(t, err)
	// EXECUTE takes literals, not bind parameters; these come from typed values.
	execute := fmt.Sprintf("EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE next_page('%s', '%s', '%s', %d)",
		tenant, after.CreatedAt.Format(time.RFC3339Nano), after.ID, limit+1)
	require.NoError(t, conn.QueryRow(ctx, execute).Scan(&raw))
	requireKeysetPlan(t, raw, partition, limit)
	t.Logf("generic plan: %s", compact(raw))
	_, err = conn.Exec(ctx, "DEALLOCATE next_page; RESET plan_cache_mode")
	require.NoError(t, err)

	page, more, err := messages.Page(ctx, db.Pool, tenant, &after, limit, 0)
	require.NoError(t, err)
	require.Len(t, page, limit)
	require.False(t, more, "page 1,000 is the last")
	require.True(t, start.Add(99_999*time.Millisecond).Equal(page[limit-1].CreatedAt))
}

// requireKeysetPlan asserts on EXPLAIN (ANALYZE, FORMAT JSON) output: a Limit over an
// index range scan of the tenant's partition only, no sort, no sequential scan, and at
// most limit+1 index entries read.
func requireKeysetPlan(t *testing.T, raw []byte, partition string, limit int) {
	t.Helper()
	var plans []struct {
		Plan explainNode `json:"Plan"`
	}
	require.NoError(t, json.Unmarshal(raw, &plans), string(raw))
	require.Len(t, plans, 1)
	root := plans[0].Plan
	require.Equal(t, "Limit", root.NodeType, string(raw))

	var scans []explainNode
	walkPlan(root, func(n explainNode) {
		require.NotContains(t, n.NodeType, "Sort", "no sort node: %s", raw)
		require.NotEqual(t, "Seq Scan", n.NodeType, "no sequential scan: %s", raw)
		if n.RelationName != "" {
			scans = append(scans, n)
		}
	})
	require.Len(t, scans, 1, "exactly one relation scanned (the tenant's partition): %s", raw)
	scan := scans[0]
	require.Contains(t, []string{"Index Scan", "Index Only Scan"}, scan.NodeType, string(raw))
	require.Equal(t, partition, scan.RelationName)
	// The keyset bound is part of the index condition (a range scan), not a filter.
	require.Contains(t, scan.IndexCond, "created_at", string(raw))
	require.Contains(t, scan.IndexCond, "tenant_id", string(raw))
	require.Empty(t, scan.Filter, string(raw))
	// The scan stops after limit+1 entries: a deep page costs what the first page costs.
	require.LessOrEqual(t, scan.ActualRows, float64(limit+1), string(raw))
}

func compact(raw []byte) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	return b.String()
}

// A page of large bodies ends early (fewer rows, more=true) instead of carrying
// limit × body bytes; a walk still returns every row once, and a single row larger than
// the cap still comes alone so the walk advances.
func TestPageStopsAtByteCap(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	tenant := uuid.New()
	messagestest.CreatePartition(t, db.Pool, tenant)
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var rows []messages.Row
	for i := range 10 {
		body := fmt.Sprintf(`{"i": %d, "pad": "%s"}`, i, strings.Repeat("x", 1000))
		rows = append(rows, messages.Row{TenantID: tenant, ID: uuid.New(), Payload: []byte(body), CreatedAt: start.Add(time.Duration(i) * time.Second)})
	}
	_, err := messages.Insert(ctx, db.Pool, rows)
	require.NoError(t, err)

	page, more, err := messages.Page(ctx, db.Pool, tenant, nil, 100, 3500)
	require.NoError(t, err)
	require.True(t, more, "the cap ended the page, not the rows")
	require.Len(t, page, 3, "three ~1 KB bodies fit in 3500 bytes")

	seen := 0
	var after *cursor.Position
	for {
		page, more, err := messages.Page(ctx, db.Pool, tenant, after, 100, 500)
		require.NoError(t, err)
		require.Len(t, page, 1, "a row over the cap comes alone")
		seen += len(page)
		if !more {
			break
		}
		p := page[len(page)-1].Position()
		after = &p
	}
	require.Equal(t, 10, seen)
}
