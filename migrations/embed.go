// Package migrations holds the database schema as embedded, numbered goose SQL files.
//
// Numbering: 0001-0010 foundation; new files take the next free number.
package migrations

import "embed"

// FS holds every migration file.
//
//go:embed *.sql
var FS embed.FS
