package payload

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCheck(t *testing.T) {
	cases := []struct {
		body string
		want error
	}{
		{`{"a":1}`, nil},
		{`{"a":"ümlaut ✓"}`, nil},
		{`{"a":"\\u0000"}`, nil},   // an escaped backslash followed by text
		{`{"a":"\\\\u0000"}`, nil}, // two escaped backslashes, then text
		{`{"a":"\u0001"}`, nil},
		{`{"a":"x\u0000y"}`, ErrNulChar},
		{`{"a":"\\\u0000"}`, ErrNulChar}, // escaped backslash, then a real NUL escape
		{`{"\u0000":1}`, ErrNulChar},
		{"{\"a\":\"\xff\"}", ErrInvalidUTF8},
		{`{"a":`, ErrNotJSON},
		{``, ErrNotJSON},
		{`{"a":"\ud800"}`, ErrSurrogate},
		{`{"a":"\udc00x"}`, ErrSurrogate},
		{`{"a":"\ud800\ud800"}`, ErrSurrogate},
		{`{"a":"\udc00\ud800"}`, ErrSurrogate},
		{`{"a":"\ud800x\udc00"}`, ErrSurrogate},
		{`["\ud800"]`, ErrSurrogate},
		{`{"\ud800":1}`, ErrSurrogate},
		{`{"a":"\ud83d\ude00"}`, nil},
		{`{"a":"\uD800\uDC00"}`, nil},
		{`{"a":"\\ud800"}`, nil}, // an escaped backslash, then text
		{`{"n":1e131071}`, nil},
		{`{"n":1e131072}`, ErrNumber},
		{`{"n":1e-16383}`, nil},
		{`{"n":1e-16384}`, ErrNumber},
		{`{"n":0.0e-16383}`, ErrNumber},
		{`{"n":0e131072}`, nil},
		{`{"n":0e1073741823}`, ErrNumber},
		{`{"n":1e99999999999999999999}`, ErrNumber},
		{`{"n":-12.5e-3}`, nil},
	}
	for _, tc := range cases {
		require.ErrorIs(t, Check([]byte(tc.body)), tc.want, "%q", tc.body)
		if tc.want == nil {
			require.NoError(t, Check([]byte(tc.body)), "%q", tc.body)
		}
	}
}

// A small body whose numbers print huge is refused: 1000 × 1e131071 is 9 KB sent and
// would read back as 131 MB.
func TestNumberGrowthIsBounded(t *testing.T) {
	body := `{"n":[` + strings.TrimSuffix(strings.Repeat("1e131071,", 1000), ",") + `]}`
	require.Less(t, len(body), 10_000)
	require.ErrorIs(t, Check([]byte(body)), ErrExpansion)
	// Two such numbers stay within the bound; three do not.
	require.NoError(t, Check([]byte(`[1e131071,1e131071]`)))
	require.ErrorIs(t, Check([]byte(`[1e131071,1e131071,1e131071]`)), ErrExpansion)
	// Ordinary numbers never come near it.
	require.NoError(t, Check([]byte(`{"n":[`+strings.TrimSuffix(strings.Repeat("1.7976931348623157e308,", 500), ",")+`]}`)))
}

func TestRenderedLength(t *testing.T) {
	for lit, want := range map[string]int{
		"0": 1, "-0": 1, "-0.0": 3, "-2": 2, "1e3": 4, "1.50": 4, "1.5e1": 2, "0.001": 5, "1e-3": 5,
		"123.456e2": 7, "-1e131071": 131073, "0e5": 1, "0.000e2": 3,
	} {
		got, err := renderedLength([]byte(lit))
		require.NoError(t, err, lit)
		require.Equal(t, want, got, lit)
	}
}
