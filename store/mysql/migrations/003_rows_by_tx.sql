-- Branches and events keyed by the creation time of their transaction
-- first (tx_created, then gid) instead of the gid: the rows of the
-- transactions in flight, all created lately, share the last pages of
-- the index, whatever the shape of the gids (a key on gid puts them on as
-- many pages as there are gids in flight). Statements that have only the
-- gid find the creation time in dtx_tx:
-- WHERE tx_created = (SELECT created_at FROM dtx_tx WHERE gid = ?) AND gid = ?.
--
-- Each statement can be run again (DDL commits on its own). The column
-- comes without a default (existing rows get 0, then their transaction's
-- creation time): from the first statement on, a coordinator of an
-- earlier version sharing the database, which knows nothing of
-- tx_created, cannot insert a row this one would not find. Its insert
-- fails under the strict sql_mode dtx sets, and its transactions wait for
-- a coordinator of this version to take them over when their leases
-- expire. Coordinators that share a database are upgraded together.
ALTER TABLE dtx_event ADD COLUMN IF NOT EXISTS tx_created BIGINT NOT NULL;
UPDATE dtx_event JOIN dtx_tx ON dtx_tx.gid = dtx_event.gid SET dtx_event.tx_created = dtx_tx.created_at WHERE dtx_event.tx_created = 0;
CREATE INDEX IF NOT EXISTS dtx_event_tx ON dtx_event (tx_created, gid, id);
DROP INDEX IF EXISTS dtx_event_gid ON dtx_event;

ALTER TABLE dtx_branch ADD COLUMN IF NOT EXISTS tx_created BIGINT NOT NULL;
UPDATE dtx_branch JOIN dtx_tx ON dtx_tx.gid = dtx_branch.gid SET dtx_branch.tx_created = dtx_tx.created_at WHERE dtx_branch.tx_created = 0;
ALTER TABLE dtx_branch DROP PRIMARY KEY, ADD PRIMARY KEY (tx_created, gid, idx);
