package eventstore

import (
	"context"
	"database/sql"
	"fmt"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v3/pkg/sql"

	"github.com/multitenant/mtm/events"
)

// appendLockKey is the transaction-level advisory lock every append takes right before it
// writes to the outbox. Appends therefore commit in outbox-offset order: a reader that sees
// offset n also sees every committed offset below n.
const appendLockKey int64 = 0x6d746d5f6f7574 // "mtm_out"

// The outbox tables of events.Topic, as watermill-sql names them.
var (
	outboxTable        = wsql.DefaultPostgreSQLSchema{}.MessagesTable(events.Topic)
	outboxOffsetsTable = wsql.DefaultPostgreSQLOffsetsAdapter{}.MessagesOffsetsTable(events.Topic)
)

// StartGroupAtHead creates consumer group's offset at the current outbox head M, so a
// subscription does not re-read history: every event at or below M is committed
// (appends commit in offset order) and so readable from the event store; everything
// after M arrives through the subscription. watermill's own "zero offset" insert then
// does nothing. Idempotent: an existing group keeps its offset.
func StartGroupAtHead(ctx context.Context, db *sql.DB, group string) error {
	_, err := db.ExecContext(ctx, `
		INSERT INTO `+outboxOffsetsTable+` (consumer_group, offset_acked, last_processed_transaction_id)
		SELECT $1, COALESCE(max("offset"), 0), '0' FROM `+outboxTable+`
		ON CONFLICT (consumer_group) DO NOTHING`, group)
	if err != nil {
		return fmt.Errorf("start consumer group %s at the outbox head: %w", group, err)
	}
	return nil
}

// DeleteGroup forgets a consumer group's offset (a per-process group at shutdown).
func DeleteGroup(ctx context.Context, db *sql.DB, group string) error {
	if _, err := db.ExecContext(ctx, `DELETE FROM `+outboxOffsetsTable+` WHERE consumer_group = $1`, group); err != nil {
		return fmt.Errorf("delete consumer group %s: %w", group, err)
	}
	return nil
}

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
