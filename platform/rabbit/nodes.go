package rabbit

import (
	"errors"
	"net/url"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// SplitURLs splits RABBITMQ_URL, a comma-separated list of the broker nodes of one
// cluster, into its URLs in order (surrounding spaces trimmed; empty elements kept, so
// validation can name their position). A single URL is a list of one.
func SplitURLs(s string) []string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		parts[i] = strings.TrimSpace(p)
	}
	return parts
}

// VHost is the vhost of the first node of RABBITMQ_URL: the services use one vhost,
// and validation makes every node name the same one.
func VHost(urls string) (string, error) {
	uri, err := amqp.ParseURI(SplitURLs(urls)[0])
	if err != nil {
		// ParseURI's errors can quote the URL, password included.
		return "", errors.New("first URL is not a valid amqp or amqps URL")
	}
	return uri.Vhost, nil
}

// NodeLabel names a node for logs and errors: scheme, host, port and vhost, never the
// credentials.
func NodeLabel(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "<invalid URL>"
	}
	return u.Scheme + "://" + u.Host + u.EscapedPath()
}

// Dial timing: the first wait after a whole round of the node list failed, and the
// longest (it doubles per failed round).
const (
	initialBackoff = 200 * time.Millisecond
	maxBackoff     = 5 * time.Second
)

// failover walks the node list: after a failed dial it moves to the next node at once,
// and only when every node failed since the last wait does the caller wait (with
// doubling backoff); a connection that is lost also moves to the next node, since its
// node is the one most likely to be gone. Not safe for concurrent use.
type failover struct {
	n       int // nodes in the list
	next    int // node to dial next
	failed  int // failed dials since the last wait or success
	backoff time.Duration
	initial time.Duration
	max     time.Duration
}

func newFailover(n int, initial, maxWait time.Duration) *failover {
	return &failover{n: n, backoff: initial, initial: initial, max: maxWait}
}

// node is the index of the node to dial now.
func (f *failover) node() int { return f.next }

// dialFailed records a failed dial of node() and returns how long to wait before the
// next dial: 0 while untried nodes remain in this round, else the backoff (doubled for
// the round after).
func (f *failover) dialFailed() time.Duration {
	f.next = (f.next + 1) % f.n
	f.failed++
	if f.failed < f.n {
		return 0
	}
	f.failed = 0
	wait := f.backoff
	f.backoff = min(f.backoff*2, f.max)
	return wait
}

// connected records a successful dial of node(): the backoff starts over.
func (f *failover) connected() {
	f.failed = 0
	f.backoff = f.initial
}

// lost records that the connection to node() was lost: the next dial goes to the next
// node (with one node, the same one again).
func (f *failover) lost() { f.next = (f.next + 1) % f.n }
