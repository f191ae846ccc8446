-- The events of the transactions in flight at the right edge of their
-- index: it leads with the creation time of the event's transaction
-- (tx_created) instead of the gid, so the entries a batch inserts share
-- the last pages whatever the shape of the gids (an index on gid puts
-- them on as many pages as there are gids in flight). Reads go through
-- dtx_tx: WHERE tx_created = (SELECT created_at FROM dtx_tx WHERE gid = $1)
-- AND gid = $1.
ALTER TABLE dtx_event ADD COLUMN tx_created BIGINT NOT NULL DEFAULT 0;
UPDATE dtx_event SET tx_created = dtx_tx.created_at FROM dtx_tx WHERE dtx_tx.gid = dtx_event.gid;
CREATE INDEX dtx_event_tx ON dtx_event (tx_created, gid, id);
DROP INDEX dtx_event_gid;
