package eventstore

import (
	"fmt"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v3/pkg/sql"
)

// appendLockKey is the transaction-level advisory lock every append takes right before it
// writes to the outbox. Appends therefore commit in outbox-offset order: a reader that sees
// offset n also sees every committed offset below n.
const appendLockKey int64 = 0x6d746d5f6f7574 // "mtm_out"

// outboxSchema reads the outbox by offset instead of watermill-sql's default
// `transaction_id < pg_snapshot_xmin(pg_current_snapshot())`. The default is gap-free
// without serialised writers, but the snapshot xmin is cluster-wide: one long transaction
// in any database on the server (a replay, a report, another application, a stuck
// subscriber) would stall every event subscription until it ended. With appends serialised
// by appendLockKey, offset order is commit order and no xmin is needed.
type outboxSchema struct {
	wsql.DefaultPostgreSQLSchema
}

// SelectQuery returns the next batch after the consumer group's acked offset. The
// offsets row is locked FOR UPDATE (as watermill does) so concurrent subscribers of one
// group take turns instead of delivering twice.
func (s outboxSchema) SelectQuery(topic string, consumerGroup string, offsets wsql.OffsetsAdapter) wsql.Query {
	next := offsets.NextOffsetQuery(topic, consumerGroup)
	q := `
		WITH last_processed AS (` + next.Query + `)
		SELECT "offset", transaction_id, uuid, payload, metadata FROM ` + s.MessagesTable(topic) + `
		WHERE "offset" > (SELECT offset_acked FROM last_processed)
		ORDER BY "offset"
		LIMIT ` + fmt.Sprint(s.batch())
	return wsql.Query{Query: q, Args: next.Args}
}

func (s outboxSchema) batch() int {
	if s.SubscribeBatchSize > 0 {
		return s.SubscribeBatchSize
	}
	return 100
}
