-- The events of the transactions in flight at the right edge of their
-- index: it leads with the creation time of the event's transaction
-- (tx_created) instead of the gid, so the entries a batch inserts share
-- the last pages whatever the shape of the gids (an index on gid puts
-- them on as many pages as there are gids in flight). Reads go through
-- dtx_tx: WHERE tx_created = (SELECT created_at FROM dtx_tx WHERE gid = ?)
-- AND gid = ?. Each statement can be run again (DDL commits on its own).
ALTER TABLE dtx_event ADD COLUMN IF NOT EXISTS tx_created BIGINT NOT NULL DEFAULT 0;
UPDATE dtx_event JOIN dtx_tx ON dtx_tx.gid = dtx_event.gid SET dtx_event.tx_created = dtx_tx.created_at WHERE dtx_event.tx_created = 0;
CREATE INDEX IF NOT EXISTS dtx_event_tx ON dtx_event (tx_created, gid, id);
DROP INDEX IF EXISTS dtx_event_gid ON dtx_event;
