// Package logging builds the structured slog logger every service uses.
package logging

import (
	"io"
	"log/slog"
	"os"
	"strings"
)

// New returns a logger writing text or JSON at the given level to stderr, tagged with the service name.
func New(service, level, format string) *slog.Logger {
	return NewTo(os.Stderr, service, level, format)
}

// NewTo is New with an explicit destination (tests).
func NewTo(w io.Writer, service, level, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: ParseLevel(level)}
	var h slog.Handler
	if strings.EqualFold(format, "json") {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(h).With("service", service)
}

// ParseLevel maps debug/info/warn/error to a slog level; config validation rejects anything else.
func ParseLevel(level string) slog.Level {
	switch strings.ToLower(level) {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}
