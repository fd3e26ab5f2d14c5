package cli

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func readAll(t *testing.T, in string) []jsonLine {
	t.Helper()
	var out []jsonLine
	require.NoError(t, readJSONLines(strings.NewReader(in), func(l jsonLine) error {
		out = append(out, l)
		return nil
	}))
	return out
}

func TestReadJSONLinesNumbersLinesAndSkipsBlankOnes(t *testing.T) {
	in := "\xEF\xBB\xBF{\"a\":1}\n\n   \n{\"b\":2}\r\n\t{\"c\":3}  " // BOM, blank lines, CRLF, no final newline
	got := readAll(t, in)
	require.Len(t, got, 3)
	assert.Equal(t, 1, got[0].Num)
	assert.Equal(t, `{"a":1}`, string(got[0].Data))
	assert.Equal(t, 4, got[1].Num)
	assert.Equal(t, `{"b":2}`, string(got[1].Data))
	assert.Equal(t, 5, got[2].Num)
	assert.Equal(t, `{"c":3}`, string(got[2].Data))
	for _, l := range got {
		assert.NoError(t, l.Err)
	}
}

func TestReadJSONLinesReportsInvalidLinesAndGoesOn(t *testing.T) {
	got := readAll(t, "{\"ok\":1}\n{\"broken\":\n{\"ok\":2}\n")
	require.Len(t, got, 3)
	assert.NoError(t, got[0].Err)
	require.Error(t, got[1].Err)
	assert.Equal(t, 2, got[1].Num)
	assert.Contains(t, got[1].Err.Error(), "invalid JSON")
	assert.NoError(t, got[2].Err)
}

func TestReadJSONLinesTakesLinesLongerThanAScannerBuffer(t *testing.T) {
	long := `{"s":"` + strings.Repeat("x", 1<<20) + `"}`
	got := readAll(t, long+"\n{}\n")
	require.Len(t, got, 2)
	assert.Len(t, got[0].Data, len(long))
	assert.NoError(t, got[0].Err)
	assert.Equal(t, 2, got[1].Num)
}

func TestReadJSONLinesStopsAtTheCallersError(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	err := readJSONLines(strings.NewReader("{}\n{}\n{}\n"), func(jsonLine) error {
		n++
		return stop
	})
	assert.ErrorIs(t, err, stop)
	assert.Equal(t, 1, n)
}

func TestIdempotencyKey(t *testing.T) {
	k := idempotencyKey("file:/tmp/a.jsonl", 3, []byte(`{"a":1}`))
	assert.Equal(t, k, idempotencyKey("file:/tmp/a.jsonl", 3, []byte(`{"a":1}`)), "a re-run sends the same key")
	for name, other := range map[string]string{
		"another line":    idempotencyKey("file:/tmp/a.jsonl", 4, []byte(`{"a":1}`)),
		"another content": idempotencyKey("file:/tmp/a.jsonl", 3, []byte(`{"a":2}`)),
		"another file":    idempotencyKey("file:/tmp/b.jsonl", 3, []byte(`{"a":1}`)),
		"a key prefix":    idempotencyKey("prefix:batch-2", 3, []byte(`{"a":1}`)),
		"no separator":    idempotencyKey("file:/tmp/a.jsonl3", 0, []byte(`{"a":1}`)),
	} {
		assert.NotEqual(t, k, other, name)
	}
	// The service takes 1..200 printable ASCII characters.
	assert.LessOrEqual(t, len(k), 200)
	for _, r := range k {
		assert.True(t, r > 0x20 && r < 0x7f, "printable: %q", r)
	}
}
