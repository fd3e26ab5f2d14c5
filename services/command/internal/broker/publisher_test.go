//go:build integration

package broker_test

import (
	"context"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/amqptest"
	"github.com/multitenant/mtm/platform/rabbit"
	"github.com/multitenant/mtm/services/command/internal/broker"
	"github.com/multitenant/mtm/services/command/internal/commandtest"
)

func declareTenant(t *testing.T, conn *amqp.Connection) string {
	t.Helper()
	id := uuid.NewString()
	amqptest.CleanupTenant(t, id)
	ch, err := conn.Channel()
	require.NoError(t, err)
	defer ch.Close()
	require.NoError(t, rabbit.DefaultTopology.DeclareTenant(ch, id))
	return id
}

func TestPublishConfirmsConcurrently(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	admin := amqptest.Dial(t)
	id := declareTenant(t, admin)
	pub := broker.NewPublisher(commandtest.RunConn(t, amqptest.URL(t)), commandtest.Log, broker.PublisherOptions{Channels: 2})
	t.Cleanup(pub.Close)

	const n = 200
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = pub.Publish(ctx, broker.Message{ID: uuid.NewString(), TenantID: id, Body: []byte(`{"i":1}`), CorrelationID: "c"})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	// Every confirmed message is in the queue (quorum queues count it once confirmed).
	q, err := amqptest.Inspect(t, admin, rabbit.QueueName(id))
	require.NoError(t, err)
	assert.Equal(t, n, q.Messages)

	ch, err := admin.Channel()
	require.NoError(t, err)
	defer ch.Close()
	d, ok, err := ch.Get(rabbit.QueueName(id), false)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, "application/json", d.ContentType)
	assert.Equal(t, amqp.Persistent, d.DeliveryMode)
	assert.Equal(t, `{"i":1}`, string(d.Body))
	_, err = uuid.Parse(d.MessageId)
	assert.NoError(t, err)
	require.NoError(t, d.Nack(false, true))
}

func TestPublishToMissingQueueIsReturned(t *testing.T) {
	t.Parallel()
	pub := broker.NewPublisher(commandtest.RunConn(t, amqptest.URL(t)), commandtest.Log, broker.PublisherOptions{Channels: 1})
	t.Cleanup(pub.Close)
	for range 3 { // the channel stays usable after a return
		err := pub.Publish(context.Background(), broker.Message{ID: uuid.NewString(), TenantID: uuid.NewString(), Body: []byte(`{}`)})
		require.ErrorIs(t, err, broker.ErrNoQueue)
	}
}

func TestPublishWithBrokerDownFailsAndRecovers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	admin := amqptest.Dial(t)
	id := declareTenant(t, admin)

	proxy := newProxy(t, amqptest.URL(t))
	pub := broker.NewPublisher(commandtest.RunConn(t, proxy.url), commandtest.Log, broker.PublisherOptions{Channels: 2, ConfirmTimeout: 2 * time.Second})
	t.Cleanup(pub.Close)
	msg := func() broker.Message {
		return broker.Message{ID: uuid.NewString(), TenantID: id, Body: []byte(`{}`)}
	}
	require.NoError(t, pub.Publish(ctx, msg()))

	proxy.cut()
	// Each publish fails within the confirm timeout instead of hanging; once the
	// connection is known to be down it fails at once.
	for range 3 {
		err := pub.Publish(ctx, msg())
		require.ErrorIs(t, err, broker.ErrUnavailable)
	}

	proxy.restore()
	require.Eventually(t, func() bool { return pub.Publish(ctx, msg()) == nil }, 20*time.Second, 50*time.Millisecond,
		"publisher must reopen its channels after the connection comes back")
	q, err := amqptest.Inspect(t, admin, rabbit.QueueName(id))
	require.NoError(t, err)
	assert.GreaterOrEqual(t, q.Messages, 2)
}

// A property AMQP cannot carry is refused before anything is sent: amqp091 would fail
// the frame and close the connection every tenant's publishes share.
func TestInvalidPropertyNeverResetsTheSharedConnection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	admin := amqptest.Dial(t)
	id := declareTenant(t, admin)
	conn := commandtest.RunConn(t, amqptest.URL(t))
	pub := broker.NewPublisher(conn, commandtest.Log, broker.PublisherOptions{Channels: 1})
	t.Cleanup(pub.Close)
	require.NoError(t, pub.Publish(ctx, broker.Message{ID: uuid.NewString(), TenantID: id, Body: []byte(`{}`)}))
	before, err := conn.Connection()
	require.NoError(t, err)

	for _, m := range []broker.Message{
		{ID: uuid.NewString(), TenantID: id, Body: []byte(`{}`), CorrelationID: strings.Repeat("c", 300)},
		{ID: strings.Repeat("i", 256), TenantID: id, Body: []byte(`{}`)},
	} {
		require.ErrorIs(t, pub.Publish(ctx, m), broker.ErrInvalidMessage)
	}
	require.Never(t, before.IsClosed, 500*time.Millisecond, 10*time.Millisecond, "the shared connection must stay up")
	require.NoError(t, pub.Publish(ctx, broker.Message{ID: uuid.NewString(), TenantID: id, Body: []byte(`{}`), CorrelationID: strings.Repeat("c", 255)}))
	q, err := amqptest.Inspect(t, admin, rabbit.QueueName(id))
	require.NoError(t, err)
	assert.Equal(t, 2, q.Messages, "only the valid messages were sent")
}

// A publish whose confirm never arrives is unconfirmed, not "nothing published": the
// broker has it, so only a retry under the same message id is safe.
func TestLostConfirmIsUnconfirmedNotUnpublished(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	admin := amqptest.Dial(t)
	id := declareTenant(t, admin)
	proxy := newProxy(t, amqptest.URL(t))
	pub := broker.NewPublisher(commandtest.RunConn(t, proxy.url), commandtest.Log, broker.PublisherOptions{Channels: 1, ConfirmTimeout: 500 * time.Millisecond})
	t.Cleanup(pub.Close)
	require.NoError(t, pub.Publish(ctx, broker.Message{ID: uuid.NewString(), TenantID: id, Body: []byte(`{}`)}))

	proxy.freeze()
	err := pub.Publish(ctx, broker.Message{ID: uuid.NewString(), TenantID: id, Body: []byte(`{}`)})
	require.ErrorIs(t, err, broker.ErrUnconfirmed)
	require.Eventually(t, func() bool {
		q, err := amqptest.Inspect(t, admin, rabbit.QueueName(id))
		return err == nil && q.Messages == 2
	}, 5*time.Second, 20*time.Millisecond, "the unconfirmed message did reach the queue")
	proxy.thaw()
}

func TestPublishWithoutConnectionIsUnavailable(t *testing.T) {
	t.Parallel()
	pub := broker.NewPublisher(commandtest.DownConn(), commandtest.Log, broker.PublisherOptions{})
	err := pub.Publish(context.Background(), broker.Message{ID: uuid.NewString(), TenantID: uuid.NewString(), Body: []byte(`{}`)})
	require.ErrorIs(t, err, broker.ErrUnavailable)
}

// proxy is a TCP relay to the broker that a test can cut (dropping every
// connection and refusing new ones) and restore, to simulate a broker outage
// without touching the shared broker.
type proxy struct {
	url    string
	target string
	ln     net.Listener

	mu    sync.Mutex
	down  bool
	conns []net.Conn
	wg    sync.WaitGroup
	// gate is open (closed channel) unless frozen: then nothing from the broker reaches
	// the client, as when confirms are lost in a congested network.
	gate chan struct{}
}

func newProxy(t *testing.T, brokerURL string) *proxy {
	t.Helper()
	u, err := url.Parse(brokerURL)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &proxy{target: u.Host, ln: ln, gate: make(chan struct{})}
	close(p.gate)
	u.Host = ln.Addr().String()
	p.url = u.String()
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		p.conns = append(p.conns, c, up)
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pipe(c, up, true)
		go p.pipe(up, c, false)
	}
}

func (p *proxy) pipe(dst, src net.Conn, fromBroker bool) {
	defer p.wg.Done()
	defer func() { _ = dst.Close(); _ = src.Close() }()
	if !fromBroker {
		_, _ = io.Copy(dst, src)
		return
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			gate := p.gate
			p.mu.Unlock()
			<-gate
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// freeze holds everything the broker sends until thaw (or cut).
func (p *proxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gate = make(chan struct{})
}

func (p *proxy) thaw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.gate:
	default:
		close(p.gate)
	}
}

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.gate:
	default:
		close(p.gate)
	}
	p.down = true
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

func (p *proxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}
