package web

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"net/url"
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

// prettyJSON indents a JSON value; anything that is not JSON comes back as it was.
func prettyJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return string(raw)
	}
	return buf.String()
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
