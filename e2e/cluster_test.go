//go:build integration && cluster

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/pgtest"
	"github.com/multitenant/mtm/platform/rabbit"
)

// clusterScript is scripts/rabbit-cluster.sh; tests run in e2e/.
const clusterScript = "../scripts/rabbit-cluster.sh"

// Within this long of a node's death, every tenant queue has its consumers back.
const consumersBackWithin = 15 * time.Second

// TestClusterSurvivesNodeKill runs the three binaries against a throwaway 3-node
// RabbitMQ cluster (scripts/rabbit-cluster.sh) with RABBITMQ_URL listing every node
// and QUEUE_REPLICAS=3, publishes 30,000 messages through the command's HTTP ingest
// (retrying 503 and 429 with the same Idempotency-Key, as a producer does) and
// SIGKILLs the node that leads most tenant queues part way. Then: every confirmed
// message is stored exactly once, every tenant queue has exactly its workers again
// within 15 s of the kill, and /readyz of each service told the truth throughout (503
// only naming a broker check, only while that service had a connection down according
// to its own log; 200 once reconnected; 200 at the end). Not part of `make test`: it
// starts three RabbitMQ nodes; run it with
// `go test -count=1 -tags=integration,cluster -run TestCluster -v ./e2e/`.
func TestClusterSurvivesNodeKill(t *testing.T) {
	const tenants, total = 20, 30000
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	t.Cleanup(func() {
		out, err := exec.Command(clusterScript, "down").CombinedOutput()
		if err != nil {
			t.Errorf("%s down: %v\n%s", clusterScript, err, out)
		}
	})
	began := time.Now()
	brokerURL := clusterUp(t)
	nodes := rabbit.SplitURLs(brokerURL)
	require.Len(t, nodes, 3)
	t.Logf("cluster up in %s: %s", time.Since(began).Round(time.Millisecond), brokerURL)

	db := pgtest.New(t)
	env := map[string]string{
		"DATABASE_URL":   db.URL,
		"RABBITMQ_URL":   brokerURL,
		"QUEUE_REPLICAS": "3",
		// A classic DLQ lives on one node: while that node is down the consumer
		// cannot declare the tenant's topology, so in a cluster both are quorum.
		"DLQ_QUEUE_TYPE":   "quorum",
		"SHUTDOWN_TIMEOUT": "10s",
		"LOG_LEVEL":        "info",
		"LOG_FORMAT":       "json", // the test reads the services' connection events
	}
	s := startSystemWith(t, env)
	procs := []*Proc{s.command, s.consumer, s.query}

	// Tenants of 1 to 3 workers; deleted at the end while the services still run
	// (cleanups run last-registered first), then the cluster goes.
	var ids []string
	workers := map[string]int{}
	for i := range tenants {
		w := i%3 + 1
		code, _, body := jsonCall(t, "POST", s.command.URL()+"/tenants", map[string]any{"name": fmt.Sprintf("cluster-%d-%s", i, uuid.NewString()[:6]), "workers": w}, nil)
		require.Equal(t, 201, code, "%v", body)
		id := body["id"].(string)
		ids = append(ids, id)
		workers[id] = w
	}
	t.Cleanup(func() {
		for _, id := range ids {
			if code, _, body := jsonCall(t, "DELETE", s.command.URL()+"/tenants/"+id, nil, nil); code != 202 && code != 404 {
				t.Logf("delete tenant %s: %d %v", id, code, body)
			}
		}
	})

	// Every tenant queue and DLQ is replicated on all three nodes; the queues are
	// consumed by their workers.
	queues := listQueues(t, 1)
	for _, id := range ids {
		for _, name := range []string{rabbit.QueueName(id), rabbit.DLQName(id)} {
			q, ok := queues[name]
			require.True(t, ok, "%s listed", name)
			require.Len(t, q.Members, 3, "%s: members %v", q.Name, q.Members)
			require.EqualValues(t, 3, q.Arguments[rabbit.InitialGroupSizeArg])
		}
	}
	watch := newQueueWatch(t, nodes)
	start := time.Now()
	require.Eventually(t, func() bool { return watch.allConsumed(ids, workers, 1) }, 30*time.Second, 100*time.Millisecond, "every tenant queue has its workers")
	t.Logf("%d tenants, %d workers, consumed within %s", tenants, sum(workers), time.Since(start).Round(time.Millisecond))

	ready := pollReadiness(ctx, procs)
	for _, p := range procs {
		p.WaitStatus(t, "/readyz", 200, 10*time.Second)
	}

	// Producers: HTTP ingest, confirmed = 2xx.
	pub := &producer{base: s.command.URL(), tenants: ids, total: total}
	pubDone := make(chan error, 1)
	pubStart := time.Now()
	go func() { pubDone <- pub.run(ctx, 32) }()

	require.Eventually(t, func() bool { return pub.confirmed.Load() >= total/3 }, 90*time.Second, 20*time.Millisecond, "a third published before the kill")

	// The node that leads most tenant queues.
	leaders := map[string]int{}
	for _, q := range listQueues(t, 1) {
		if strings.HasPrefix(q.Name, "tenant_") && strings.HasSuffix(q.Name, "_queue") {
			leaders[q.Leader]++
		}
	}
	victim, most := 0, -1
	for n := 1; n <= 3; n++ {
		if c := leaders[fmt.Sprintf("mtm-c%d@localhost", n)]; c > most {
			victim, most = n, c
		}
	}
	survivor := victim%3 + 1
	t.Logf("leaders per node %v: killing mtm-c%d@localhost after %d confirmed", leaders, victim, pub.confirmed.Load())
	before := connectionNodes(procs)
	killedAt := time.Now()
	clusterCmd(t, "kill-node", strconv.Itoa(victim))

	// Consumers back: exact worker count on every tenant queue, asked of a survivor
	// (active consumers: those of the dead node's channels stay listed, inactive).
	var live map[string]int
	var stale int
	var err error
	for {
		live, stale, err = liveConsumers(survivor)
		if err == nil && exactly(live, ids, workers) {
			break
		}
		if time.Since(killedAt) > consumersBackWithin {
			t.Fatalf("consumers not back within %s of the kill: %v (err %v)", consumersBackWithin, offBy(live, ids, workers), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	back := time.Since(killedAt)
	t.Logf("kill → consumers back on all %d tenant queues: %s (%d inactive consumers of the dead node's channels still listed)", tenants, back.Round(time.Millisecond), stale)
	watch.use(survivor)

	for _, p := range procs {
		p.WaitStatus(t, "/readyz", 200, consumersBackWithin-time.Since(killedAt))
	}

	require.NoError(t, <-pubDone)
	confirmedAt := time.Now()
	t.Logf("published %d in %s (%d retries: %v, the last %s after the kill)", total, time.Since(pubStart).Round(time.Millisecond), pub.retries.Load(), pub.retryCodes(), pub.lastRetryAfter(killedAt))
	t.Logf("command warnings after the kill: %v", warnings(s.command, killedAt))

	// Drained: every confirmed message stored exactly once, nothing else stored.
	conn, err := pgx.Connect(ctx, db.URL)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var rows, distinct int
	for {
		err := conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT id) FROM messages WHERE tenant_id = ANY($1::uuid[])`, ids).Scan(&rows, &distinct)
		require.NoError(t, err)
		if rows >= total {
			break
		}
		if time.Since(confirmedAt) > 2*time.Minute {
			t.Fatalf("stored %d of %d two minutes after the last confirm", rows, total)
		}
		time.Sleep(100 * time.Millisecond)
	}
	drained := time.Now()
	t.Logf("drain: all %d stored %s after the last confirm (%s after the kill)", total,
		drained.Sub(confirmedAt).Round(time.Millisecond), drained.Sub(killedAt).Round(time.Millisecond))
	require.Equal(t, total, rows, "nothing stored twice")
	require.Equal(t, total, distinct)
	want := pub.ids()
	require.Len(t, want, total, "every message has one confirmed id")
	got, err := conn.Query(ctx, `SELECT id::text FROM messages WHERE tenant_id = ANY($1::uuid[])`, ids)
	require.NoError(t, err)
	stored := 0
	for got.Next() {
		var id string
		require.NoError(t, got.Scan(&id))
		require.True(t, want[id], "stored a message nobody confirmed: %s", id)
		stored++
	}
	require.NoError(t, got.Err())
	require.Equal(t, total, stored)

	// Readiness told the truth.
	time.Sleep(300 * time.Millisecond) // a few more polls after the drain
	polls := ready.stop()
	after := connectionNodes(procs)
	victimNode := rabbit.NodeLabel(nodes[victim-1])
	for _, p := range procs {
		checkReadiness(t, p, polls[p.Name], killedAt, victimNode, before[p.Name], after[p.Name])
	}

	// The killed node comes back and rejoins; the cluster shows three running nodes.
	restart := time.Now()
	clusterCmd(t, "start-node", strconv.Itoa(victim))
	require.Eventually(t, func() bool {
		out, err := exec.Command(clusterScript, "ctl", "1", "-q", "eval", "length(rabbit_nodes:all_running()).").Output()
		return err == nil && strings.TrimSpace(string(out)) == "3"
	}, 60*time.Second, 500*time.Millisecond)
	t.Logf("mtm-c%d@localhost restarted and rejoined in %s", victim, time.Since(restart).Round(time.Millisecond))
	// With the node back, its channels' consumers are found dead and dropped: the
	// queues' own counts are exactly the workers again.
	deadline := time.Now().Add(30 * time.Second)
	for !watch.allConsumed(ids, workers, survivor) {
		if time.Now().After(deadline) {
			t.Fatalf("queue consumer counts after the node's return: %s", watch.describe(ids, workers))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("stale consumers gone %s after the restart", time.Since(restart).Round(time.Millisecond))
}

// clusterUp runs the script's up and returns the RABBITMQ_URL it prints last.
func clusterUp(t *testing.T) string {
	t.Helper()
	cmd := exec.Command(clusterScript, "up")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "%s up:\n%s%s", clusterScript, stdout.String(), stderr.String())
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	return lines[len(lines)-1]
}

func clusterCmd(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(clusterScript, args...).CombinedOutput()
	require.NoError(t, err, "%s %s:\n%s", clusterScript, strings.Join(args, " "), out)
}

// queueInfo is one row of rabbitmqctl list_queues.
type queueInfo struct {
	Name      string
	Leader    string
	Members   []string
	Arguments map[string]any
}

// listQueues asks node n for every queue's leader, members and arguments.
func listQueues(t *testing.T, n int) map[string]queueInfo {
	t.Helper()
	out, err := exec.Command(clusterScript, "ctl", strconv.Itoa(n), "-q", "list_queues", "name", "leader", "members", "arguments", "--formatter", "json").Output()
	require.NoError(t, err, "list_queues: %s", out)
	// A classic queue's leader and members are "", a quorum queue's a node and a list;
	// arguments are [name, type, value] triples.
	var rows []struct {
		Name      string          `json:"name"`
		Leader    string          `json:"leader"`
		Members   json.RawMessage `json:"members"`
		Arguments [][]any         `json:"arguments"`
	}
	require.NoError(t, json.Unmarshal(out, &rows), "%s", out)
	byName := map[string]queueInfo{}
	for _, r := range rows {
		q := queueInfo{Name: r.Name, Leader: r.Leader, Arguments: map[string]any{}}
		_ = json.Unmarshal(r.Members, &q.Members) // "" for classic queues
		for _, a := range r.Arguments {
			if len(a) == 3 {
				if k, ok := a[0].(string); ok {
					q.Arguments[k] = a[2]
				}
			}
		}
		byName[r.Name] = q
	}
	return byName
}

// liveConsumers counts, per queue, the active consumers node n lists, and how many
// are not active: a quorum queue keeps the consumers of a dead node's channels
// registered, inactive ("suspected down", given no messages), until the node is back.
func liveConsumers(n int) (map[string]int, int, error) {
	out, err := exec.Command(clusterScript, "ctl", strconv.Itoa(n), "-q", "list_consumers", "queue_name", "active", "--formatter", "json").Output()
	if err != nil {
		return nil, 0, fmt.Errorf("list_consumers: %w: %s", err, out)
	}
	var rows []struct {
		Queue  string `json:"queue_name"`
		Active bool   `json:"active"`
	}
	if err := json.Unmarshal(out, &rows); err != nil {
		return nil, 0, fmt.Errorf("list_consumers: %w: %s", err, out)
	}
	live, stale := map[string]int{}, 0
	for _, r := range rows {
		if !r.Active {
			stale++
			continue
		}
		live[r.Queue]++
	}
	return live, stale, nil
}

func exactly(live map[string]int, ids []string, workers map[string]int) bool {
	return len(offBy(live, ids, workers)) == 0
}

func offBy(live map[string]int, ids []string, workers map[string]int) []string {
	var off []string
	for _, id := range ids {
		if got := live[rabbit.QueueName(id)]; got != workers[id] {
			off = append(off, fmt.Sprintf("%s: %d of %d", id, got, workers[id]))
		}
	}
	return off
}

// queueWatch reads consumer counts (passive declare) through one node of the cluster.
type queueWatch struct {
	t     *testing.T
	nodes []string
	mu    sync.Mutex
	node  int
	conn  *amqp.Connection
	last  map[string]int
}

func newQueueWatch(t *testing.T, nodes []string) *queueWatch {
	w := &queueWatch{t: t, nodes: nodes, node: 1, last: map[string]int{}}
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.conn != nil {
			_ = w.conn.Close()
		}
	})
	return w
}

// use makes later counts come from node n.
func (w *queueWatch) use(n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conn != nil {
		_ = w.conn.Close()
		w.conn = nil
	}
	w.node = n
}

// allConsumed reports whether every tenant queue has exactly its workers as consumers,
// as node n sees it.
func (w *queueWatch) allConsumed(ids []string, workers map[string]int, n int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.node != n || w.conn == nil || w.conn.IsClosed() {
		w.node = n
		c, err := amqp.DialConfig(w.nodes[n-1], amqp.Config{Dial: amqp.DefaultDial(3 * time.Second)})
		if err != nil {
			return false
		}
		w.conn = c
	}
	ok := true
	for _, id := range ids {
		ch, err := w.conn.Channel()
		if err != nil {
			return false
		}
		q, err := ch.QueueDeclarePassive(rabbit.QueueName(id), true, false, false, false, nil)
		_ = ch.Close()
		if err != nil {
			w.last[id] = -1
			ok = false
			continue
		}
		w.last[id] = q.Consumers
		ok = ok && q.Consumers == workers[id]
	}
	return ok
}

func (w *queueWatch) describe(ids []string, workers map[string]int) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var off []string
	for _, id := range ids {
		if w.last[id] != workers[id] {
			off = append(off, fmt.Sprintf("%s: %d of %d", id, w.last[id], workers[id]))
		}
	}
	return fmt.Sprintf("queues off: %v", off)
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// producer publishes total messages round-robin over the tenants through POST
// /tenants/{id}/messages. Message i always carries Idempotency-Key cluster-i, so a
// retry (after 503, 429 or a failed request) is the same message, stored once.
type producer struct {
	base    string
	tenants []string
	total   int

	confirmed atomic.Int64
	retries   atomic.Int64
	mu        sync.Mutex
	got       map[string]bool // confirmed message ids
	codes     map[string]int  // retried answers by status and problem code ("0": no answer)
	lastRetry time.Time
}

func (p *producer) run(ctx context.Context, concurrency int) error {
	p.got = map[string]bool{}
	p.codes = map[string]int{}
	client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: concurrency}}
	var next atomic.Int64
	errs := make(chan error, concurrency)
	var wg sync.WaitGroup
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= p.total {
					return
				}
				if err := p.publish(ctx, client, i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return errors.Join(collect(errs)...)
}

func collect(errs <-chan error) []error {
	var out []error
	for err := range errs {
		out = append(out, err)
	}
	return out
}

// publish sends message i until it is confirmed (2xx), honouring Retry-After.
func (p *producer) publish(ctx context.Context, client *http.Client, i int) error {
	tenant := p.tenants[i%len(p.tenants)]
	body := []byte(fmt.Sprintf(`{"seq":%d}`, i))
	for {
		if ctx.Err() != nil {
			return fmt.Errorf("message %d not confirmed: %w", i, ctx.Err())
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.base+"/tenants/"+tenant+"/messages", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "cluster-"+strconv.Itoa(i))
		resp, err := client.Do(req)
		code, problem, wait := 0, "", 200*time.Millisecond
		if err == nil {
			raw, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			code = resp.StatusCode
			if code/100 == 2 {
				var ok struct {
					ID string `json:"id"`
				}
				if err := json.Unmarshal(raw, &ok); err != nil || ok.ID == "" {
					return fmt.Errorf("message %d: %d with body %s", i, code, raw)
				}
				p.mu.Lock()
				p.got[ok.ID] = true
				p.mu.Unlock()
				p.confirmed.Add(1)
				return nil
			}
			if code != http.StatusServiceUnavailable && code != http.StatusTooManyRequests {
				return fmt.Errorf("message %d: %d %s", i, code, raw)
			}
			var pr struct {
				Code string `json:"code"`
			}
			_ = json.Unmarshal(raw, &pr)
			problem = pr.Code
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
				wait = time.Duration(s) * time.Second
			}
		}
		p.retries.Add(1)
		p.mu.Lock()
		p.codes[strings.TrimSpace(strconv.Itoa(code)+" "+problem)]++
		p.lastRetry = time.Now()
		p.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

func (p *producer) ids() map[string]bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.got
}

func (p *producer) retryCodes() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.codes
}

// lastRetryAfter is how long after t the last retry was ("none" without retries).
func (p *producer) lastRetryAfter(t time.Time) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return durationOrNone(p.lastRetry, t)
}

// readinessPoll is one /readyz answer.
type readinessPoll struct {
	at, answered time.Time
	code         int
	failing      []string // checks not ok
}

type readinessPoller struct {
	stopped chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	polls   map[string][]readinessPoll
}

// pollReadiness polls /readyz of every process every 100 ms until stop.
func pollReadiness(ctx context.Context, procs []*Proc) *readinessPoller {
	r := &readinessPoller{stopped: make(chan struct{}), polls: map[string][]readinessPoll{}}
	client := &http.Client{Timeout: 3 * time.Second}
	for _, p := range procs {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			for {
				poll := readinessPoll{at: time.Now()}
				if resp, err := client.Get(p.URL() + "/readyz"); err == nil {
					var probe struct {
						Checks map[string]string `json:"checks"`
					}
					_ = json.NewDecoder(resp.Body).Decode(&probe)
					_ = resp.Body.Close()
					poll.code = resp.StatusCode
					for name, state := range probe.Checks {
						if state != "ok" {
							poll.failing = append(poll.failing, name)
						}
					}
				}
				poll.answered = time.Now()
				r.mu.Lock()
				r.polls[p.Name] = append(r.polls[p.Name], poll)
				r.mu.Unlock()
				select {
				case <-r.stopped:
					return
				case <-ctx.Done():
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		}()
	}
	return r
}

func (r *readinessPoller) stop() map[string][]readinessPoll {
	close(r.stopped)
	r.wg.Wait()
	return r.polls
}

// connEvent is a service's log line about one of its AMQP connections.
type connEvent struct {
	at   time.Time
	conn string
	node string
	up   bool
}

// connEvents reads the connection log lines (LOG_FORMAT=json) of a process.
func connEvents(p *Proc) []connEvent {
	var out []connEvent
	sc := bufio.NewScanner(strings.NewReader(p.Output()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l struct {
			Time time.Time `json:"time"`
			Msg  string    `json:"msg"`
			Conn string    `json:"amqp_conn"`
			Node string    `json:"node"`
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.Conn == "" {
			continue
		}
		switch l.Msg {
		case "rabbitmq connected":
			out = append(out, connEvent{at: l.Time, conn: l.Conn, node: l.Node, up: true})
		case "rabbitmq connection lost, reconnecting":
			out = append(out, connEvent{at: l.Time, conn: l.Conn, node: l.Node})
		}
	}
	return out
}

// warnings counts p's WARN and ERROR log lines (LOG_FORMAT=json) after since, by message
// and the first words of the error.
func warnings(p *Proc, since time.Time) map[string]int {
	out := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(p.Output()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l struct {
			Time  time.Time `json:"time"`
			Level string    `json:"level"`
			Msg   string    `json:"msg"`
			Err   string    `json:"err"`
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.Time.Before(since) || (l.Level != "WARN" && l.Level != "ERROR") {
			continue
		}
		words := strings.Fields(l.Err)
		out[l.Msg+": "+strings.Join(words[:min(len(words), 8)], " ")]++
	}
	return out
}

// connectionNodes is, per process, the node each of its connections is on now.
func connectionNodes(procs []*Proc) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, p := range procs {
		now := map[string]string{}
		for _, e := range connEvents(p) {
			if e.up {
				now[e.conn] = e.node
			} else {
				delete(now, e.conn)
			}
		}
		out[p.Name] = now
	}
	return out
}

// downWindow is a span in which at least one of a process's connections was down.
type downWindow struct{ from, to time.Time }

// downWindows are the spans, after since, in which any connection of p was lost and
// not yet reconnected (to is zero while still down).
func downWindows(p *Proc, since time.Time) []downWindow {
	down := map[string]time.Time{}
	var out []downWindow
	var open time.Time
	for _, e := range connEvents(p) {
		if e.at.Before(since) {
			continue
		}
		if !e.up {
			if len(down) == 0 {
				open = e.at
			}
			down[e.conn] = e.at
			continue
		}
		if _, ok := down[e.conn]; ok {
			delete(down, e.conn)
			if len(down) == 0 {
				out = append(out, downWindow{open, e.at})
			}
		}
	}
	if len(down) > 0 {
		out = append(out, downWindow{from: open})
	}
	return out
}

// checkReadiness asserts that p's /readyz told the truth: 200 before the kill; after
// it, a 503 only names broker checks and only while one of p's connections was down
// (by its log, with a second of slack for the poll's own latency); 200 again within
// consumersBackWithin, and for good once the last connection was back.
func checkReadiness(t *testing.T, p *Proc, polls []readinessPoll, killedAt time.Time, victim string, before, after map[string]string) {
	t.Helper()
	const slack = time.Second
	require.NotEmpty(t, polls, p.Name)
	onVictim := 0
	for _, node := range before {
		if node == victim {
			onVictim++
		}
	}
	for conn, node := range after {
		require.NotEqual(t, victim, node, "%s: connection %s still on the killed node", p.Name, conn)
	}
	windows := downWindows(p, killedAt.Add(-slack))
	if onVictim > 0 {
		require.NotEmpty(t, windows, "%s had %d connections on the killed node: its log shows them lost", p.Name, onVictim)
	}
	var lastBack time.Time
	for _, w := range windows {
		require.False(t, w.to.IsZero(), "%s: a connection lost at %s never came back", p.Name, w.from)
		lastBack = w.to
	}
	notReady := 0
	var lastNotReady time.Time
	for _, poll := range polls {
		if poll.code == 200 {
			continue
		}
		require.False(t, poll.answered.Before(killedAt), "%s: /readyz %d (failing %v) before the kill", p.Name, poll.code, poll.failing)
		notReady++
		lastNotReady = poll.answered
		for _, name := range poll.failing {
			require.True(t, strings.HasPrefix(name, "rabbitmq"), "%s: /readyz %d names %q: only the broker was disturbed", p.Name, poll.code, name)
		}
		explained := false
		for _, w := range windows {
			if poll.answered.After(w.from.Add(-slack)) && poll.at.Before(w.to.Add(slack)) {
				explained = true
			}
		}
		require.True(t, explained, "%s: /readyz %d (failing %v) at %s while none of its connections was down (down: %v)",
			p.Name, poll.code, poll.failing, poll.at.Format("15:04:05.000"), windows)
	}
	if !lastBack.IsZero() {
		for _, poll := range polls {
			if poll.at.After(lastBack.Add(slack)) {
				require.Equal(t, 200, poll.code, "%s: /readyz after its connections were back at %s", p.Name, lastBack.Format("15:04:05.000"))
			}
		}
	}
	require.Equal(t, 200, polls[len(polls)-1].code, "%s ready at the end", p.Name)
	if notReady > 0 {
		require.Less(t, lastNotReady.Sub(killedAt), consumersBackWithin, "%s ready again within %s", p.Name, consumersBackWithin)
	}
	t.Logf("%s: %d of its %d connections on the killed node; %d not-ready answers of %d polls (last %s after the kill); connections now on %v",
		p.Name, onVictim, len(before), notReady, len(polls), durationOrNone(lastNotReady, killedAt), after)
}

func durationOrNone(at, since time.Time) string {
	if at.IsZero() {
		return "none"
	}
	return at.Sub(since).Round(time.Millisecond).String()
}
