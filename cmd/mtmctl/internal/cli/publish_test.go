package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/client"
)

// fakeBroker stands in for the command service's publish: it stores a key once, like the
// service's key-derived message ids, and can refuse chosen lines.
type fakeBroker struct {
	mu                    sync.Mutex
	stored                map[string]string // key -> body
	attempts              map[string]int    // body -> attempts
	refuse                func(body string, attempt int) error
	inFlight, maxInFlight atomic.Int32
}

func newFakeBroker() *fakeBroker {
	return &fakeBroker{stored: map[string]string{}, attempts: map[string]int{}}
}

func (b *fakeBroker) publish(_ context.Context, body []byte, key string) error {
	n := b.inFlight.Add(1)
	defer b.inFlight.Add(-1)
	for {
		m := b.maxInFlight.Load()
		if n <= m || b.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(time.Millisecond) // let concurrent sends overlap
	b.mu.Lock()
	defer b.mu.Unlock()
	b.attempts[string(body)]++
	if b.refuse != nil {
		if err := b.refuse(string(body), b.attempts[string(body)]); err != nil {
			return err
		}
	}
	b.stored[key] = string(body)
	return nil
}

func newTestPublisher(b *fakeBroker, scope string, errOut *bytes.Buffer) *publisher {
	return &publisher{publish: b.publish, scope: scope, concurrency: 4, errOut: errOut, backoff: time.Millisecond}
}

func TestPublisherCountsBadLinesAndPublishesTheRest(t *testing.T) {
	b := newFakeBroker()
	b.refuse = func(body string, _ int) error {
		if body == `[1]` {
			return &client.Problem{Status: 422, Detail: "message must be a JSON object"}
		}
		return nil
	}
	var errOut bytes.Buffer
	in := "{\"n\":1}\n{\"n\":2\n\n[1]\n{\"n\":3}\n"
	sum, err := newTestPublisher(b, "stdin", &errOut).run(context.Background(), strings.NewReader(in))
	require.NoError(t, err)
	assert.Equal(t, 2, sum.Published)
	assert.Equal(t, 2, sum.Failed)
	require.Len(t, sum.Failures, 2)
	assert.Equal(t, 2, sum.Failures[0].Line)
	assert.Contains(t, sum.Failures[0].Error, "invalid JSON")
	assert.Equal(t, lineFailure{Line: 4, Error: "message must be a JSON object"}, sum.Failures[1])
	assert.Contains(t, errOut.String(), "mtmctl: line 2: invalid JSON")
	assert.Contains(t, errOut.String(), "mtmctl: line 4: message must be a JSON object\n")
	assert.Len(t, b.stored, 2)
	assert.Equal(t, 1, b.attempts[`[1]`], "a refusal that will not change is not retried")
}

func TestPublisherRetriesTransientRefusalsWithTheSameKey(t *testing.T) {
	b := newFakeBroker()
	b.refuse = func(body string, attempt int) error {
		switch {
		case body == `{"n":1}` && attempt < 3:
			return &client.Problem{Status: http.StatusTooManyRequests, Detail: "rate limited"}
		case body == `{"n":2}` && attempt == 1:
			return errors.New("connection reset by peer")
		case body == `{"n":3}`:
			return &client.Problem{Status: http.StatusServiceUnavailable, Detail: "broker unavailable"}
		}
		return nil
	}
	var errOut bytes.Buffer
	sum, err := newTestPublisher(b, "stdin", &errOut).run(context.Background(), strings.NewReader("{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n"))
	require.NoError(t, err)
	assert.Equal(t, 2, sum.Published)
	assert.Equal(t, []lineFailure{{Line: 3, Error: "broker unavailable"}}, sum.Failures)
	assert.Equal(t, 3, b.attempts[`{"n":1}`])
	assert.Equal(t, 2, b.attempts[`{"n":2}`])
	assert.Equal(t, publishAttempts, b.attempts[`{"n":3}`], "gives up after a bounded number of attempts")
}

func TestPublisherBoundsConcurrencyAndRerunsStoreNothingTwice(t *testing.T) {
	b := newFakeBroker()
	var in strings.Builder
	for i := range 200 {
		fmt.Fprintf(&in, "{\"n\":%d}\n", i%10) // equal lines are still distinct messages
	}
	var errOut bytes.Buffer
	p := newTestPublisher(b, "file:/data/batch.jsonl", &errOut)
	sum, err := p.run(context.Background(), strings.NewReader(in.String()))
	require.NoError(t, err)
	assert.Equal(t, 200, sum.Published)
	assert.Len(t, b.stored, 200)
	assert.LessOrEqual(t, b.maxInFlight.Load(), int32(4))
	assert.Greater(t, b.maxInFlight.Load(), int32(1), "lines are sent concurrently")

	sum, err = newTestPublisher(b, "file:/data/batch.jsonl", &errOut).run(context.Background(), strings.NewReader(in.String()))
	require.NoError(t, err)
	assert.Equal(t, 200, sum.Published)
	assert.Len(t, b.stored, 200, "the same keys again: nothing new stored")

	_, err = newTestPublisher(b, "prefix:batch-2", &errOut).run(context.Background(), strings.NewReader(in.String()))
	require.NoError(t, err)
	assert.Len(t, b.stored, 400, "a new key prefix publishes the lines again")
}

func TestPublisherStopsOnCancel(t *testing.T) {
	b := newFakeBroker()
	ctx, cancel := context.WithCancel(context.Background())
	b.refuse = func(body string, _ int) error {
		if body == `{"n":50}` {
			cancel()
		}
		return nil
	}
	var in strings.Builder
	for i := range 10000 {
		fmt.Fprintf(&in, "{\"n\":%d}\n", i)
	}
	var errOut bytes.Buffer
	sum, err := newTestPublisher(b, "stdin", &errOut).run(ctx, strings.NewReader(in.String()))
	require.NoError(t, err)
	assert.True(t, sum.Interrupted)
	assert.Less(t, sum.Published, 10000)
	assert.Equal(t, len(b.stored), sum.Published)
	assert.Zero(t, sum.Failed)
}

func TestPublishCommandSummaryAndExitCode(t *testing.T) {
	_, env := fakeEnv(t)
	var out, errb bytes.Buffer
	code := Execute(context.Background(), []string{"publish", tenantA, "-"},
		Streams{In: strings.NewReader("{\"a\":1}\nnot json\n"), Out: &out, Err: &errb}, func(k string) string { return env[k] })
	// The fake API answers 404 to publishing: both lines fail, one locally, one remotely.
	assert.Equal(t, ExitFailure, code)
	assert.Equal(t, "published 0, failed 2\n", out.String())
	assert.Contains(t, errb.String(), "mtmctl: line 1: tenant not found\n")
	assert.Contains(t, errb.String(), "mtmctl: line 2: invalid JSON")
	assert.Equal(t, 2, strings.Count(errb.String(), "\n"), "one line per failure, nothing more: %s", errb.String())
}
