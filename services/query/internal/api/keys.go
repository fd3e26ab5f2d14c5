package api

import (
	"log/slog"

	"github.com/multitenant/mtm/projections/cursor"
)

// NewCodec picks the cursor signing secret: CURSOR_SECRET, else JWT_SECRET (the codec
// derives a separate key from it), else a random per-process key. With the random
// key, cursors stop working when the process restarts and are not shared between
// replicas, so it is logged as a warning.
func NewCodec(cursorSecret, jwtSecret string, log *slog.Logger) (*cursor.Codec, error) {
	switch {
	case cursorSecret != "":
		return cursor.NewCodec([]byte(cursorSecret))
	case jwtSecret != "":
		log.Info("cursor key derived from JWT_SECRET; set CURSOR_SECRET to rotate them separately")
		return cursor.NewCodec([]byte(jwtSecret))
	default:
		log.Warn("CURSOR_SECRET and JWT_SECRET are unset: cursors are signed with a random per-process key and will be rejected (400) after a restart or by another replica")
		return cursor.NewRandomCodec()
	}
}
