package cli

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// jsonLine is one non-blank line of a JSON-lines input: Num counts from 1 over every line,
// blank ones included, so it is the line number an editor shows.
type jsonLine struct {
	Num  int
	Data []byte // the line without surrounding whitespace
	Err  error  // set when Data is not valid JSON
}

// valid reports whether the line is JSON to send.
func (l jsonLine) valid() bool { return l.Err == nil }

// utf8BOM is skipped at the start of the input: some editors write it, and it is not JSON.
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// readJSONLines calls fn for every non-blank line of r, in order, stopping at fn's first
// error. Lines of any length are read (a message may be up to the service's limit, far
// beyond bufio.Scanner's default). An invalid line is passed with Err set, not a reason
// to stop: the caller counts it and goes on.
func readJSONLines(r io.Reader, fn func(jsonLine) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for num := 1; ; num++ {
		raw, err := br.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read line %d: %w", num, err)
		}
		if num == 1 {
			raw = bytes.TrimPrefix(raw, utf8BOM)
		}
		if data := bytes.TrimSpace(raw); len(data) > 0 {
			l := jsonLine{Num: num, Data: data}
			var v json.RawMessage
			if uerr := json.Unmarshal(data, &v); uerr != nil {
				l.Err = fmt.Errorf("invalid JSON: %w", uerr)
			}
			if ferr := fn(l); ferr != nil {
				return ferr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
	}
}

// idempotencyKey names one line's message for the command service: the same scope, line
// number and line content always give the same key, hence the same message id, so a
// re-run stores nothing twice; a changed or added line gets a new key. The line number is
// part of it so that two equal lines of one input are two messages.
func idempotencyKey(scope string, num int, data []byte) string {
	h := sha256.New()
	h.Write([]byte(scope))
	h.Write([]byte{0})
	h.Write([]byte(strconv.Itoa(num)))
	h.Write([]byte{0})
	h.Write(data)
	return "mtmctl-" + hex.EncodeToString(h.Sum(nil)[:20])
}
