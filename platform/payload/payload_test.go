package payload

import (
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
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, Check([]byte(tc.body)), "%q", tc.body)
	}
}
