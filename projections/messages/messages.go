// Package messages is the tenant messages read model: the partitioned `messages` table
// (written by the consumer, read by the query service).
package messages

import (
	"strings"

	"github.com/jackc/pgx/v5"
)

// Table is the partitioned parent table.
const Table = "messages"

// PartitionName is the tenant's partition of messages: "messages_" + the tenant UUID
// without dashes (a valid unquoted identifier, stable across services).
func PartitionName(tenantID string) string {
	return Table + "_" + strings.ReplaceAll(strings.ToLower(tenantID), "-", "")
}

// PartitionIdent is PartitionName quoted for SQL.
func PartitionIdent(tenantID string) string {
	return pgx.Identifier{PartitionName(tenantID)}.Sanitize()
}
