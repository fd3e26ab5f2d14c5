package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/multitenant/mtm/client"
)

const publishLong = `Publish a JSON-lines file (or standard input, for - or no FILE) to a tenant: every
non-blank line is one message, sent through the command service, which answers only once
the broker confirmed it. Up to --concurrency lines are in flight at once. A line that is
not valid JSON, or that the service refuses, is reported on stderr with its line number
and counted as failed; the others are still published. The last line of output is
"published N, failed M"; the exit code is 1 if any line failed.

Each line is sent with an Idempotency-Key derived from a scope, its line number and its
content; the service turns the key into the message id, so a key is stored once,
whatever happens (a line already stored counts as published again). The scope is
--key-prefix when given, else the file's absolute path; for standard input without
--key-prefix it is new on every run. So:

  * after a failure (bad lines, broker down, Ctrl+C), fix what failed and run the same
    command on the same file again: only the lines not yet stored are added;
  * a line you changed or added is a new message;
  * the same content at the same line of the same file is the same message, forever:
    to publish a file's content again as new messages (a recurring batch reusing a
    path), give each run its own --key-prefix, e.g. --key-prefix batch-2024-06-01;
  * standard input publishes anew on every run (retries within the run are still safe);
    give --key-prefix to make re-running a pipeline safe too.

Refused for being over the rate limit (429) or while the broker is unavailable or slow to
confirm (503), a line is retried with backoff, with the same key, up to 5 times.`

// publishAttempts bounds the retries of one line on 429 and 503 answers and network
// errors: transient trouble is ridden out, a broker down for longer fails the line (and
// a re-run with the same keys finishes the job).
const publishAttempts = 5

func (a *app) publishCmd() *cobra.Command {
	var (
		keyPrefix   string
		concurrency int
	)
	c := &cobra.Command{
		Use:   "publish TENANT [FILE|-]",
		Short: "Publish JSON lines to a tenant, with publisher confirms, a progress bar and a final count",
		Long:  publishLong,
		Args:  cobra.RangeArgs(1, 2),
		RunE: a.run(func(cmd *cobra.Command, args []string) error {
			if concurrency < 1 || concurrency > 64 {
				return usagef("--concurrency: must be 1..64, got %d", concurrency)
			}
			ctx, cl := cmd.Context(), a.client()
			id, err := a.resolveTenant(ctx, cl, args[0])
			if err != nil {
				return err
			}
			in, scope, total, closeIn, err := a.publishInput(args[1:])
			if err != nil {
				return err
			}
			defer closeIn()
			if keyPrefix != "" {
				scope = "prefix:" + keyPrefix
			}
			p := &publisher{
				publish: func(ctx context.Context, body []byte, key string) error {
					_, err := cl.Publish(ctx, id, body, key)
					return err
				},
				scope: scope, concurrency: concurrency, errOut: a.streams.Err, backoff: 250 * time.Millisecond,
			}
			if a.streams.errIsTerminal() {
				p.bar = newPublishBar(a.streams.Err, total)
			}
			sum, err := p.run(ctx, in)
			if err != nil {
				return err
			}
			if err := a.writePublishSummary(sum); err != nil {
				return err
			}
			switch {
			case sum.Interrupted:
				return errors.New("interrupted: run the same command again to publish the rest (nothing is stored twice)")
			case sum.Failed > 0:
				return errReported
			}
			return nil
		}),
	}
	c.Flags().StringVar(&keyPrefix, "key-prefix", "", "scope of the lines' idempotency keys instead of the file's path (a batch id: a new prefix publishes the same lines again)")
	c.Flags().IntVar(&concurrency, "concurrency", 8, "lines in flight at once, 1..64")
	return c
}

// publishInput opens the file (or standard input) and, for a regular file, counts its
// messages so the progress bar can show a total.
func (a *app) publishInput(args []string) (in io.Reader, scope string, total int64, closeFn func(), err error) {
	if len(args) == 0 || args[0] == "-" {
		// No name to recognise a re-run by: the keys only make this run's retries safe.
		run := make([]byte, 16)
		if _, err := rand.Read(run); err != nil {
			return nil, "", 0, nil, fmt.Errorf("key scope: %w", err)
		}
		return a.streams.In, "stdin:" + hex.EncodeToString(run), -1, func() {}, nil
	}
	path, err := filepath.Abs(args[0])
	if err != nil {
		return nil, "", 0, nil, fmt.Errorf("open %s: %w", args[0], err)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, "", 0, nil, fmt.Errorf("open input: %w", err)
	}
	total = -1
	if a.streams.errIsTerminal() {
		if n, cerr := countLines(f); cerr == nil {
			total = n
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			_ = f.Close()
			return nil, "", 0, nil, fmt.Errorf("rewind %s: %w", path, err)
		}
	}
	return f, "file:" + path, total, func() { _ = f.Close() }, nil
}

// countLines counts non-blank lines, the messages readJSONLines will yield.
func countLines(r io.Reader) (int64, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var n int64
	for {
		raw, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(raw)) > 0 {
			n++
		}
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("count lines: %w", err)
		}
	}
}

func newPublishBar(w io.Writer, total int64) *progressbar.ProgressBar {
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("publishing"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("msg"),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetWidth(30),
	)
}

// lineFailure is one line that was not published.
type lineFailure struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

// publishSummary is the outcome of a publish; -o json prints it as is.
type publishSummary struct {
	Published   int           `json:"published"`
	Failed      int           `json:"failed"`
	Interrupted bool          `json:"interrupted,omitempty"`
	Failures    []lineFailure `json:"failures"`
}

// publisher sends lines with bounded concurrency and counts the outcome.
type publisher struct {
	publish     func(ctx context.Context, body []byte, key string) error
	scope       string
	concurrency int
	errOut      io.Writer
	bar         *progressbar.ProgressBar // nil: no progress bar
	backoff     time.Duration            // first retry delay, doubled up to 5s

	mu  sync.Mutex // guards sum and writes to errOut (shared with the bar)
	sum publishSummary
}

type publishJob struct {
	num  int
	data []byte
}

// run publishes every line of in. Only a failure to read the input is an error; failed
// lines are in the summary. Ctrl+C stops sending, waits for the lines in flight and
// returns the summary so far.
func (p *publisher) run(ctx context.Context, in io.Reader) (publishSummary, error) {
	jobs := make(chan publishJob)
	var wg sync.WaitGroup
	for range p.concurrency {
		wg.Go(func() {
			for j := range jobs {
				err := p.send(ctx, j)
				if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
					// Interrupted in flight: neither published nor a failure of the line.
					continue
				}
				p.record(j.num, err)
			}
		})
	}
	readErr := readJSONLines(in, func(l jsonLine) error {
		if !l.valid() {
			p.record(l.Num, l.Err)
			return nil
		}
		select {
		case jobs <- publishJob{num: l.Num, data: l.Data}:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	close(jobs)
	wg.Wait()
	if p.bar != nil {
		_ = p.bar.Finish()
	}
	sum := p.sum
	sort.Slice(sum.Failures, func(i, j int) bool { return sum.Failures[i].Line < sum.Failures[j].Line })
	if sum.Failures == nil {
		sum.Failures = []lineFailure{}
	}
	if done(ctx) {
		sum.Interrupted = true
		return sum, nil
	}
	if readErr != nil {
		return sum, fmt.Errorf("read input: %w", readErr)
	}
	return sum, nil
}

func (p *publisher) record(num int, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil {
		p.sum.Published++
	} else {
		p.sum.Failed++
		msg := message(err)
		p.sum.Failures = append(p.sum.Failures, lineFailure{Line: num, Error: msg})
		if p.bar != nil {
			_ = p.bar.Clear()
		}
		fmt.Fprintf(p.errOut, "mtmctl: line %d: %s\n", num, msg)
	}
	if p.bar != nil {
		_ = p.bar.Add(1)
	}
}

// send publishes one line, retrying what may pass later with the same key.
func (p *publisher) send(ctx context.Context, j publishJob) error {
	key := idempotencyKey(p.scope, j.num, j.data)
	wait := p.backoff
	for attempt := 1; ; attempt++ {
		err := p.publish(ctx, j.data, key)
		if err == nil || attempt == publishAttempts || !retryable(err) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// retryable: rate limited, broker unavailable or unconfirmed, a proxy's gateway error,
// or no answer at all. The key makes each retry safe even when an attempt was stored.
func retryable(err error) bool {
	var pr *client.Problem
	if errors.As(err, &pr) {
		switch pr.Status {
		case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	return true
}

func (a *app) writePublishSummary(sum publishSummary) error {
	if a.output == outputJSON {
		return writeJSON(a.streams.Out, sum)
	}
	_, err := fmt.Fprintf(a.streams.Out, "published %d, failed %d\n", sum.Published, sum.Failed)
	return writeErr(err)
}
