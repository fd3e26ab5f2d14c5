package web

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/multitenant/mtm/client"
)

// funcs are the template helpers. Everything they return is a plain string: html/template
// escapes it, so tenant-controlled payloads and names always render as text.
var funcs = template.FuncMap{
	"pretty":    prettyJSON,
	"dlPayload": deadLetterPayload,
	"ts":        timestamp,
	"ago":       ago,
	"lag":       lag,
	"pathq":     pathWithQuery,
}

// prettyJSON indents a JSON value for reading; anything that is not JSON comes back as
// it was. The services escape <, > and & in strings as \u003c, \u003e and \u0026
// (encoding/json's default); they are shown as the characters they are, which the
// template then escapes for HTML like any other text.
func prettyJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return string(raw)
	}
	return unescapeHTMLEscapes(buf.Bytes())
}

// unescapeHTMLEscapes turns \u003c, \u003e and \u0026 back into <, > and & in valid
// JSON text. Backslashes occur only inside strings there, each starting an escape of
// known length, so an escaped backslash followed by "u003c" is left alone.
func unescapeHTMLEscapes(b []byte) string {
	var out strings.Builder
	out.Grow(len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 >= len(b) {
			out.WriteByte(b[i])
			continue
		}
		if b[i+1] == 'u' && i+6 <= len(b) {
			switch strings.ToLower(string(b[i+2 : i+6])) {
			case "003c":
				out.WriteByte('<')
				i += 5
				continue
			case "003e":
				out.WriteByte('>')
				i += 5
				continue
			case "0026":
				out.WriteByte('&')
				i += 5
				continue
			}
		}
		out.WriteByte(b[i])
		out.WriteByte(b[i+1])
		i++
	}
	return out.String()
}

// deadLetterPayload is a dead letter's body for display: pretty JSON, else the raw bytes
// as text when they are UTF-8, else their base64.
func deadLetterPayload(d client.DeadLetter) string {
	if len(d.Payload) > 0 {
		return prettyJSON(d.Payload)
	}
	raw, err := base64.StdEncoding.DecodeString(d.PayloadBase64)
	if err != nil || !utf8.Valid(raw) {
		return d.PayloadBase64
	}
	return string(raw)
}

func timestamp(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// ago is how long before now t was, coarsely ("4s ago", "3m ago", "2h ago", "5d ago").
func ago(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	d := time.Since(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd ago", int(d.Hours()/24))
	}
}

// lag renders a backlog's lag in seconds: "0s", "1.5s", "2m05s".
func lag(seconds float64) string {
	if seconds < 60 {
		return fmt.Sprintf("%.1fs", seconds)
	}
	d := time.Duration(seconds * float64(time.Second)).Round(time.Second)
	return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
}

// pathWithQuery builds a link from a path and key/value pairs, leaving out empty values.
// It is a plain string: html/template escapes it (and checks its scheme) in href.
func pathWithQuery(path string, kv ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			q.Set(kv[i], kv[i+1])
		}
	}
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}
