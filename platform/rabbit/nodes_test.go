package rabbit

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"
)

func TestSplitURLs(t *testing.T) {
	t.Parallel()
	require.Equal(t, []string{"amqp://a/"}, SplitURLs("amqp://a/"))
	require.Equal(t, []string{"amqp://a:5681/", "amqp://b:5682/", "amqps://c/"},
		SplitURLs("amqp://a:5681/, amqp://b:5682/ ,amqps://c/"))
	require.Equal(t, []string{"amqp://a/", "", ""}, SplitURLs("amqp://a/,,"), "empty elements are kept for validation to name")
}

func TestNodeLabelHidesCredentials(t *testing.T) {
	t.Parallel()
	require.Equal(t, "amqp://127.0.0.1:5681/", NodeLabel("amqp://guest:s3cret@127.0.0.1:5681/"))
	require.Equal(t, "amqps://mq.example:5671/prod%2Fa", NodeLabel("amqps://u:s3cret@mq.example:5671/prod%2Fa"))
	require.Equal(t, "<invalid URL>", NodeLabel("amqp://u:s3cret@mq host/"))
	require.NotContains(t, NodeLabel("amqp://u:s3cret@:5672/"), "s3cret")
}

func TestVHostIsTheFirstURLs(t *testing.T) {
	t.Parallel()
	v, err := VHost("amqp://u:p@a:5681/prod,amqp://u:p@b:5682/other")
	require.NoError(t, err)
	require.Equal(t, "prod", v)
	v, err = VHost("amqp://u:p@a/")
	require.NoError(t, err)
	require.Equal(t, "/", v)
	_, err = VHost("http://u:s3cret@a/")
	require.Error(t, err)
	require.NotContains(t, err.Error(), "s3cret")
}

// The walk over three nodes: a failed dial moves on at once, a whole failed round
// waits with doubling backoff (capped), a success resets the backoff, and a lost
// connection redials the next node first.
func TestFailoverOrder(t *testing.T) {
	t.Parallel()
	f := newFailover(3, 100*time.Millisecond, 300*time.Millisecond)
	type step struct {
		node int
		wait time.Duration
	}
	fail := func() step { n := f.node(); return step{n, f.dialFailed()} }

	require.Equal(t, []step{{0, 0}, {1, 0}, {2, 100 * time.Millisecond}, {0, 0}, {1, 0}, {2, 200 * time.Millisecond}, {0, 0}, {1, 0}, {2, 300 * time.Millisecond}, {0, 0}, {1, 0}, {2, 300 * time.Millisecond}},
		[]step{fail(), fail(), fail(), fail(), fail(), fail(), fail(), fail(), fail(), fail(), fail(), fail()})

	require.Equal(t, 0, f.node())
	f.connected()
	f.lost()
	require.Equal(t, 1, f.node(), "a lost connection tries the next node first")
	// Node 1 is down too: on to node 2 at once; node 2 answers.
	require.Equal(t, step{1, 0}, fail())
	require.Equal(t, 2, f.node())
	f.connected()
	f.lost()
	require.Equal(t, 0, f.node(), "around the list")
	require.Equal(t, []step{{0, 0}, {1, 0}, {2, 100 * time.Millisecond}}, []step{fail(), fail(), fail()}, "backoff starts over after a connection")

	one := newFailover(1, 100*time.Millisecond, time.Second)
	require.Equal(t, 100*time.Millisecond, one.dialFailed(), "one node: every failure waits, as before")
	require.Equal(t, 200*time.Millisecond, one.dialFailed())
	one.connected()
	one.lost()
	require.Equal(t, 0, one.node())
}

// Run dials the nodes in order and waits only after a whole round failed.
func TestConnDialsNodesInOrder(t *testing.T) {
	t.Parallel()
	c := NewConn("amqp://guest:guest@n1:5681/, amqp://guest:guest@n2:5682/,amqp://guest:guest@n3:5683/", "t", slog.New(slog.NewTextHandler(io.Discard, nil)))
	c.initial, c.maxWait = 30*time.Millisecond, 30*time.Millisecond
	var mu sync.Mutex
	var tried []string
	var at []time.Time
	c.dial = func(url string, _ amqp.Config) (*amqp.Connection, error) {
		mu.Lock()
		defer mu.Unlock()
		tried = append(tried, url)
		at = append(at, time.Now())
		return nil, errors.New("connection refused")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(tried) >= 7 }, 5*time.Second, 5*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []string{
		"amqp://guest:guest@n1:5681/", "amqp://guest:guest@n2:5682/", "amqp://guest:guest@n3:5683/",
		"amqp://guest:guest@n1:5681/", "amqp://guest:guest@n2:5682/", "amqp://guest:guest@n3:5683/",
		"amqp://guest:guest@n1:5681/",
	}, tried[:7])
	require.Less(t, at[1].Sub(at[0]), 25*time.Millisecond, "the next node is dialled at once")
	require.GreaterOrEqual(t, at[3].Sub(at[2]), 30*time.Millisecond, "a whole failed round waits the backoff")
	require.ErrorIs(t, c.Ping(context.Background()), ErrNotConnected)
	require.Empty(t, c.Node())
}

func TestOtherGroupSize(t *testing.T) {
	t.Parallel()
	refusal := func(reason string) error {
		return &amqp.Error{Code: amqp.PreconditionFailed, Reason: reason}
	}
	for reason, want := range map[string]int{
		"PRECONDITION_FAILED - inequivalent arg 'x-quorum-initial-group-size' for queue 'q' in vhost '/': received '1' but current is '3'":                                                           3,
		"PRECONDITION_FAILED - inequivalent arg 'x-quorum-initial-group-size' for queue 'q' in vhost '/': received none but current is the value '3' of type 'signedint'":                            3,
		"PRECONDITION_FAILED - inequivalent arg 'x-quorum-initial-group-size' for queue 'q' in vhost '/': received the value '1' of type 'signedint' but current is none":                            0,
		"PRECONDITION_FAILED - inequivalent arg 'x-quorum-initial-group-size' for queue 'q' in vhost 'a b': received the value '5' of type 'long' but current is the value '12' of type 'signedint'": 12,
	} {
		got, ok := otherGroupSize(refusal(reason))
		require.True(t, ok, reason)
		require.Equal(t, want, got, reason)
	}
	for _, err := range []error{
		nil,
		errors.New("inequivalent arg 'x-quorum-initial-group-size' for queue 'q' in vhost '/': received '1' but current is '3'"),
		refusal("PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'q' in vhost '/': received 'classic' but current is 'quorum'"),
		refusal("PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit' for queue 'q' in vhost '/': received the value '5' of type 'signedint' but current is none"),
		&amqp.Error{Code: amqp.NotFound, Reason: "inequivalent arg 'x-quorum-initial-group-size' for queue 'q' in vhost '/': received '1' but current is '3'"},
	} {
		_, ok := otherGroupSize(err)
		require.False(t, ok, "%v", err)
	}
}

func TestKeptNamesReplicaDifferences(t *testing.T) {
	t.Parallel()
	const id = "00000000-0000-0000-0000-000000000001"
	want := Topology{Queue: Quorum, DLQ: Quorum, Replicas: 3}
	require.Empty(t, Declared{Queue: Quorum, DLQ: Quorum, QueueReplicas: 3, DLQReplicas: 3}.Kept(want, id))
	require.Equal(t, []string{
		QueueName(id) + " keeps the broker's default initial replica count",
		DLQName(id) + " keeps 5 initial replicas",
	}, Declared{Queue: Quorum, DLQ: Quorum, QueueReplicas: 0, DLQReplicas: 5}.Kept(want, id))
	require.Equal(t, []string{DLQName(id) + " is classic"}, Declared{Queue: Quorum, DLQ: Classic, QueueReplicas: 3}.Kept(want, id),
		"a classic queue has no replicas to differ")
}
