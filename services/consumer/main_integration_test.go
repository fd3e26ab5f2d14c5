//go:build integration

package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/events"
	"github.com/multitenant/mtm/platform/amqptest"
	"github.com/multitenant/mtm/platform/eventstore"
	"github.com/multitenant/mtm/platform/pgtest"
	"github.com/multitenant/mtm/platform/postgres"
	"github.com/multitenant/mtm/platform/rabbit"
)

// proc is one run of the consumer binary.
type proc struct {
	cmd  *exec.Cmd
	done chan error
}

// TestSIGKILLStoresEveryMessageOnce publishes 5,000 messages over 5 tenants, kills the
// consumer with SIGKILL twice while it works, restarts it, and checks every message is
// stored exactly once. It ends with SIGTERM, which must exit 0.
func TestSIGKILLStoresEveryMessageOnce(t *testing.T) {
	t.Parallel()
	const tenants, perTenant = 5, 1000
	const total = tenants * perTenant
	ctx := context.Background()
	db := pgtest.New(t)
	es := eventstore.New(postgres.OpenDB(db.Pool), watermill.NopLogger{})
	conn := amqptest.Dial(t)

	dir := t.TempDir()
	bin := filepath.Join(dir, "consumer")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run(), "build consumer")

	// Registered before the process cleanup, so the consumer is killed before its
	// queues are deleted.
	ids := make([]string, tenants)
	for i := range ids {
		ids[i] = uuid.NewString()
		amqptest.CleanupTenant(t, ids[i])
	}
	addr := freeAddr(t)
	logFile, err := os.Create(filepath.Join(dir, "consumer.log"))
	require.NoError(t, err)
	var mu sync.Mutex
	var current *proc
	start := func() {
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(),
			"DATABASE_URL="+db.URL, "RABBITMQ_URL="+amqptest.URL(t), "HTTP_ADDR="+addr,
			"LOG_LEVEL=warn", "SHUTDOWN_TIMEOUT=10s", "CONFIG_FILE=")
		cmd.Stdout, cmd.Stderr = logFile, logFile
		require.NoError(t, cmd.Start())
		p := &proc{cmd: cmd, done: make(chan error, 1)}
		go func() { p.done <- cmd.Wait() }()
		mu.Lock()
		current = p
		mu.Unlock()
		waitReady(t, addr, p)
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if current != nil && current.cmd.ProcessState == nil {
			_ = current.cmd.Process.Kill()
			<-current.done
		}
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("consumer log:\n%s", b)
		}
	})
	kill := func() {
		mu.Lock()
		p := current
		mu.Unlock()
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
		<-p.done
	}

	start()
	for i := range ids {
		env, err := events.NewEnvelope(ids[i], 1, events.Metadata{EventID: uuid.NewString(), OccurredAt: time.Now()},
			events.TenantCreated{Name: "kill-" + ids[i][:8], Workers: 3})
		require.NoError(t, err)
		_, err = es.Append(ctx, []events.Envelope{env}, nil)
		require.NoError(t, err)
	}
	for _, id := range ids {
		require.Eventually(t, func() bool {
			q, err := amqptest.Inspect(t, conn, rabbit.QueueName(id))
			return err == nil && q.Consumers == 3
		}, 5*time.Second, 20*time.Millisecond)
	}

	// The producer runs independently of the consumer's crashes.
	pubDone := make(chan error, 1)
	go func() { pubDone <- publishAll(conn, ids, perTenant) }()

	stored := func() int {
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM messages`).Scan(&n))
		return n
	}
	began := time.Now()
	for _, at := range []int{total / 5, total / 2} {
		require.Eventually(t, func() bool { return stored() >= at }, 30*time.Second, 2*time.Millisecond)
		before := stored()
		kill()
		t.Logf("SIGKILL at %d stored", before)
		start()
	}
	require.NoError(t, <-pubDone)
	require.Eventually(t, func() bool { return stored() >= total }, 60*time.Second, 20*time.Millisecond)
	t.Logf("all %d messages stored %s after publishing began", total, time.Since(began).Round(time.Millisecond))

	var rows, distinct int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT (tenant_id, id)) FROM messages`).Scan(&rows, &distinct))
	require.Equal(t, total, rows)
	require.Equal(t, total, distinct)
	for _, id := range ids {
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM messages WHERE tenant_id = $1`, id).Scan(&n))
		require.Equal(t, perTenant, n, "tenant %s", id)
		q, err := amqptest.Inspect(t, conn, rabbit.DLQName(id))
		require.NoError(t, err)
		require.Zero(t, q.Messages, "nothing dead-lettered for %s", id)
	}

	// queue_messages_pending is sampled every RECONCILE_INTERVAL, so poll.
	require.Eventually(t, func() bool {
		metrics := httpGet(t, "http://"+addr+"/metrics")
		for _, name := range []string{"tenant_workers_current{", "queue_messages_pending{", "messages_processed_total{", "consumer_message_processing_seconds_bucket"} {
			if !strings.Contains(metrics, name) {
				return false
			}
		}
		return true
	}, 10*time.Second, 100*time.Millisecond, "metrics exposed")

	// Graceful shutdown exits 0.
	mu.Lock()
	p := current
	mu.Unlock()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-p.done:
		require.NoError(t, err, "exit status after SIGTERM")
	case <-time.After(15 * time.Second):
		t.Fatal("consumer did not exit within SHUTDOWN_TIMEOUT after SIGTERM")
	}
	// Queues survive shutdown.
	_, err = amqptest.Inspect(t, conn, rabbit.QueueName(ids[0]))
	require.NoError(t, err)
}

// publishAll publishes perTenant persistent messages to each tenant with confirms,
// interleaving tenants in batches.
func publishAll(conn *amqp.Connection, ids []string, perTenant int) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		return err
	}
	const batch = 100
	for off := 0; off < perTenant; off += batch {
		var confs []*amqp.DeferredConfirmation
		for _, id := range ids {
			for i := off; i < off+batch && i < perTenant; i++ {
				c, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), "", rabbit.QueueName(id), true, false, amqp.Publishing{
					MessageId: uuid.NewString(), DeliveryMode: amqp.Persistent, ContentType: "application/json",
					Body: []byte(fmt.Sprintf(`{"tenant":%q,"n":%d}`, id, i)),
				})
				if err != nil {
					return err
				}
				confs = append(confs, c)
			}
		}
		for _, c := range confs {
			ok, err := c.WaitContext(context.Background())
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("publish nacked")
			}
		}
	}
	return nil
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

func waitReady(t *testing.T, addr string, p *proc) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-p.done:
			t.Fatalf("consumer exited during start: %v", err)
		default:
		}
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("consumer never became ready")
}

func httpGet(t *testing.T, url string) string {
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return strings.TrimSpace(string(b))
}
