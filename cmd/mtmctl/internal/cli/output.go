package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/multitenant/mtm/client"
)

// writeJSON prints v as one indented JSON document.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}

// writeJSONLine prints v as one compact line (--follow streams JSON lines).
func writeJSONLine(w io.Writer, v any) error {
	if err := json.NewEncoder(w).Encode(v); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}

// newTable returns a tabwriter whose columns are separated by two spaces; write rows as
// tab-separated cells and Flush once.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
}

// writeTable prints header and rows as aligned columns.
func writeTable(w io.Writer, header []string, rows [][]string) error {
	tw := newTable(w)
	writeRow(tw, header)
	for _, r := range rows {
		writeRow(tw, r)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}

func writeRow(w io.Writer, cells []string) {
	clean := make([]string, len(cells))
	for i, c := range cells {
		clean[i] = cell(c)
	}
	fmt.Fprintln(w, strings.Join(clean, "\t"))
}

// cell keeps a value on one table line: tabs and newlines (names, payload strings) would
// break the columns, and control characters could drive the terminal.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// writeFields prints label/value pairs, one per line, values aligned (a single object).
func writeFields(w io.Writer, fields [][2]string) error {
	tw := newTable(w)
	for _, f := range fields {
		fmt.Fprintf(tw, "%s:\t%s\n", f[0], cell(f[1]))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}

// timeText is a table timestamp: UTC to the second, "-" when unset.
func timeText(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// lagText shows seconds of lag rounded for reading: 0.25 → 250ms, 75 → 1m15s.
func lagText(seconds float64) string {
	d := time.Duration(seconds * float64(time.Second))
	switch {
	case d <= 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}

// payloadWidth bounds JSON shown in a table cell; -o json has the whole value.
const payloadWidth = 60

// compactJSON renders raw on one line, shortened to payloadWidth runes with "…".
func compactJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var b bytes.Buffer
	s := string(raw)
	if err := json.Compact(&b, raw); err == nil {
		s = b.String()
	}
	return truncate(s, payloadWidth)
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// statusText adds what a bare status hides: a drain that ran out of time.
func statusText(t client.Tenant) string {
	if t.Drain != nil && t.Drain.TimedOut {
		return t.Status + " (timed out)"
	}
	return t.Status
}

func itoa(n int) string { return strconv.Itoa(n) }

func tenantRows(ts []client.Tenant) (header []string, rows [][]string) {
	header = []string{"ID", "NAME", "STATUS", "WORKERS", "READY", "UNACKED", "LAG", "DEAD LETTERS"}
	for _, t := range ts {
		ready, unacked, lag := "-", "-", "-"
		if b := t.Backlog; b != nil {
			ready, unacked, lag = strconv.FormatInt(b.Ready, 10), strconv.FormatInt(b.Unacked, 10), lagText(b.LagSeconds)
		}
		rows = append(rows, []string{t.ID, t.Name, statusText(t),
			fmt.Sprintf("%d/%d", t.Workers.Current, t.Workers.Desired), ready, unacked, lag, itoa(t.DeadLettersPending)})
	}
	return header, rows
}

func tenantFields(t client.Tenant) [][2]string {
	backlog := "not reported yet"
	if b := t.Backlog; b != nil {
		backlog = fmt.Sprintf("%d ready, %d unacked, lag %s (sampled %s)", b.Ready, b.Unacked, lagText(b.LagSeconds), timeText(b.SampledAt))
	}
	rate := "service default"
	if r := t.RateLimit; r != nil {
		rate = fmt.Sprintf("%d/s, burst %d", r.PerSecond, r.Burst)
		if r.PerSecond == 0 {
			rate = "unlimited"
		}
	}
	f := [][2]string{
		{"ID", t.ID},
		{"Name", t.Name},
		{"Status", statusText(t)},
		{"Workers", fmt.Sprintf("%d running of %d desired", t.Workers.Current, t.Workers.Desired)},
		{"Replica", ownerText(t.Workers)},
		{"Backlog", backlog},
		{"Dead letters", fmt.Sprintf("%d pending", t.DeadLettersPending)},
		{"Rate limit", rate},
	}
	if d := t.Drain; d != nil {
		state := "waiting for an empty queue"
		if d.TimedOut {
			state = "timed out: nothing deleted; drain again or delete"
		}
		f = append(f, [2]string{"Drain", fmt.Sprintf("requested %s, deadline %s, %s", timeText(d.RequestedAt), timeText(d.Deadline), state)})
	}
	return append(f,
		[2]string{"Queue", t.Queue},
		[2]string{"Created", timeText(t.CreatedAt)},
		[2]string{"Updated", timeText(t.UpdatedAt)},
		[2]string{"Version", itoa(t.Version)},
	)
}

var messageHeader = []string{"ID", "CREATED", "PAYLOAD"}

func messageRow(m client.Message) []string {
	return []string{m.ID, timeText(m.CreatedAt), compactJSON(m.Payload)}
}

// writeMessageLine prints one message row with fixed-width columns (a UUID, a timestamp),
// not a tabwriter: --follow prints rows poll by poll, and they must line up with the
// header printed before the first.
func writeMessageLine(w io.Writer, row []string) error {
	if _, err := fmt.Fprintf(w, "%-36s  %-20s  %s\n", cell(row[0]), cell(row[1]), cell(row[2])); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}

// writeMessageLines prints the header and one row per message.
func writeMessageLines(w io.Writer, ms []client.Message) error {
	if err := writeMessageLine(w, messageHeader); err != nil {
		return err
	}
	for _, m := range ms {
		if err := writeMessageLine(w, messageRow(m)); err != nil {
			return err
		}
	}
	return nil
}

func deadLetterRows(ds []client.DeadLetter) (header []string, rows [][]string) {
	header = []string{"ID", "MESSAGE ID", "REASON", "STATUS", "DEATHS", "LAST DEAD-LETTERED", "SIZE", "PAYLOAD"}
	for _, d := range ds {
		rows = append(rows, []string{d.ID, d.MessageID, d.Reason, d.Status, itoa(d.Deaths),
			timeText(d.LastDeadLetteredAt), itoa(d.Size), deadLetterPayload(d)})
	}
	return header, rows
}

// deadLetterPayload shows a body that is not JSON as its base64, marked as such.
func deadLetterPayload(d client.DeadLetter) string {
	if len(d.Payload) > 0 {
		return compactJSON(d.Payload)
	}
	if d.PayloadBase64 != "" {
		return truncate("base64:"+d.PayloadBase64, payloadWidth)
	}
	return ""
}

func eventRows(es []client.Event) (header []string, rows [][]string) {
	header = []string{"VERSION", "TYPE", "OCCURRED", "CORRELATION ID", "DATA"}
	for _, e := range es {
		rows = append(rows, []string{itoa(e.Version), e.Type, timeText(e.OccurredAt), e.CorrelationID, compactJSON(e.Data)})
	}
	return header, rows
}

// ownerText names the consumer replica running a tenant, and the previous one while a
// hand-over is under way.
func ownerText(w client.Workers) string {
	if w.Owner == nil {
		return "none yet"
	}
	others := make([]string, 0, len(w.Replicas))
	for _, r := range w.Replicas {
		if r != *w.Owner {
			others = append(others, r)
		}
	}
	if len(others) == 0 {
		return *w.Owner
	}
	return fmt.Sprintf("%s (handing over from %s)", *w.Owner, strings.Join(others, ", "))
}
