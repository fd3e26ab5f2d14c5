package consumer

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"
)

// maxHeadersJSON bounds the archived headers of one dead letter. Headers are the
// producer's (and the broker's x-death, which grows with every death); past the bound
// whole entries are left out and headersTruncatedKey says so.
const maxHeadersJSON = 64 << 10

// headersTruncatedKey marks archived headers that left entries out (over maxHeadersJSON).
const headersTruncatedKey = "x-archive-headers-truncated"

// maxHeaderDepth bounds nested tables and arrays (deeper values become a marker string).
const maxHeaderDepth = 16

// headersJSON renders AMQP headers as a JSON object jsonb accepts, whatever they hold:
// strings are made valid UTF-8 without NUL (jsonb refuses \u0000), []byte becomes
// base64, timestamps RFC 3339, decimals and non-finite floats strings, nested tables
// objects and arrays arrays. Entries are in key order, x- (broker and archive) headers
// first so a truncation drops the producer's own first.
func headersJSON(h amqp.Table) []byte {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		xi, xj := strings.HasPrefix(keys[i], "x-"), strings.HasPrefix(keys[j], "x-")
		if xi != xj {
			return xi
		}
		return keys[i] < keys[j]
	})
	// Room for the truncation marker is kept back.
	budget := maxHeadersJSON - len(`,"`+headersTruncatedKey+`":true}`)
	var buf bytes.Buffer
	buf.WriteByte('{')
	truncated := false
	for _, k := range keys {
		kb, _ := json.Marshal(cleanText(k))
		vb, err := json.Marshal(jsonValue(h[k], 0))
		if err != nil {
			vb, _ = json.Marshal(cleanText(fmt.Sprint(h[k])))
		}
		if buf.Len()+1+len(kb)+1+len(vb) > budget {
			truncated = true
			continue // a smaller entry may still fit
		}
		if buf.Len() > 1 {
			buf.WriteByte(',')
		}
		buf.Write(kb)
		buf.WriteByte(':')
		buf.Write(vb)
	}
	if truncated {
		if buf.Len() > 1 {
			buf.WriteByte(',')
		}
		buf.WriteString(`"` + headersTruncatedKey + `":true`)
	}
	buf.WriteByte('}')
	return buf.Bytes()
}

// jsonValue maps one AMQP field value to something json.Marshal renders as valid jsonb.
func jsonValue(v any, depth int) any {
	if depth > maxHeaderDepth {
		return "(nested too deep)"
	}
	switch x := v.(type) {
	case nil, bool, int8, uint8, int16, uint16, int32, uint32, int64, uint64, int:
		return x
	case float32:
		return finite(float64(x))
	case float64:
		return finite(x)
	case string:
		return cleanText(x)
	case []byte:
		return base64.StdEncoding.EncodeToString(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339)
	case amqp.Decimal:
		return decimalString(x)
	case amqp.Table:
		return jsonObject(x, depth)
	case map[string]any:
		return jsonObject(x, depth)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonValue(e, depth+1)
		}
		return out
	default:
		return cleanText(fmt.Sprint(x))
	}
}

func jsonObject(t map[string]any, depth int) map[string]any {
	out := make(map[string]any, len(t))
	for k, e := range t {
		out[cleanText(k)] = jsonValue(e, depth+1)
	}
	return out
}

// finite keeps a float JSON can carry; NaN and infinities become strings.
func finite(f float64) any {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Sprint(f)
	}
	return f
}

func decimalString(d amqp.Decimal) string {
	s := fmt.Sprint(d.Value)
	if d.Scale == 0 {
		return s
	}
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	if pad := int(d.Scale) + 1 - len(s); pad > 0 {
		s = strings.Repeat("0", pad) + s
	}
	s = s[:len(s)-int(d.Scale)] + "." + s[len(s)-int(d.Scale):]
	if neg {
		s = "-" + s
	}
	return s
}

// cleanText makes s storable in a Postgres text or jsonb string: invalid UTF-8 and NUL
// become U+FFFD.
func cleanText(s string) string {
	if utf8.ValidString(s) && !strings.ContainsRune(s, 0) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// fingerprint hashes parts unambiguously (each is length-prefixed).
func fingerprint(parts ...[]byte) string {
	h := sha256.New()
	for _, p := range parts {
		_, _ = fmt.Fprintf(h, "%d:", len(p))
		_, _ = h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil))
}
