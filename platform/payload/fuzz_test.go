package payload

import (
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"
)

// FuzzCheck feeds Check arbitrary bodies. It must never panic (its scanner indexes
// ahead of escapes and numbers on the strength of json.Valid), must accept only valid
// UTF-8 JSON, must refuse invalid JSON as ErrNotJSON, and must explain every refusal
// with one of its own errors.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{
		`{"a":1}`, `{"a":"ümlaut ✓"}`, `{"a":"\\u0000"}`, `{"a":"x\u0000y"}`, "{\"a\":\"\xff\"}",
		`{"a":`, ``, `{"a":"\ud800"}`, `{"a":"\ud83d\ude00"}`, `{"a":"\ud800\u`, `{"n":1e131071}`,
		`{"n":1e131072}`, `{"n":1e-16384}`, `{"n":0e1073741823}`, `{"n":1e99999999999999999999}`,
		`{"n":-12.5e-3}`, `[-0.0E+0,-0]`, `"\\"`, `{"a":"\uDBFF\uDFFF"}`, `[1e131071,1e131071,1e131071]`,
	} {
		f.Add([]byte(s))
	}
	reasons := []error{ErrNotJSON, ErrInvalidUTF8, ErrNulChar, ErrSurrogate, ErrNumber, ErrExpansion}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := Check(b)
		if err == nil {
			if !json.Valid(b) || !utf8.Valid(b) {
				t.Fatalf("accepted %q, which is not valid UTF-8 JSON", b)
			}
			return
		}
		if utf8.Valid(b) && !json.Valid(b) && !errors.Is(err, ErrNotJSON) {
			t.Fatalf("invalid JSON %q refused as %v, want ErrNotJSON", b, err)
		}
		for _, r := range reasons {
			if errors.Is(err, r) {
				return
			}
		}
		t.Fatalf("refused %q with an error of no known reason: %v", b, err)
	})
}
