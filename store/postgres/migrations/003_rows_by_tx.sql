-- Branches and events keyed by the creation time of their transaction
-- first (tx_created, then gid) instead of the gid: the rows of the
-- transactions in flight, all created lately, share the last pages of
-- the index, whatever the shape of the gids (a key on gid puts them on as
-- many pages as there are gids in flight). Statements that have only the
-- gid find the creation time in dtx_tx:
-- WHERE tx_created = (SELECT created_at FROM dtx_tx WHERE gid = $1) AND gid = $1.
ALTER TABLE dtx_event ADD COLUMN tx_created BIGINT NOT NULL DEFAULT 0;
UPDATE dtx_event SET tx_created = dtx_tx.created_at FROM dtx_tx WHERE dtx_tx.gid = dtx_event.gid;
CREATE INDEX dtx_event_tx ON dtx_event (tx_created, gid, id);
DROP INDEX dtx_event_gid;

ALTER TABLE dtx_branch ADD COLUMN tx_created BIGINT NOT NULL DEFAULT 0;
UPDATE dtx_branch SET tx_created = dtx_tx.created_at FROM dtx_tx WHERE dtx_tx.gid = dtx_branch.gid;
ALTER TABLE dtx_branch DROP CONSTRAINT dtx_branch_pkey, ADD PRIMARY KEY (tx_created, gid, idx);

-- No default from now on (the migration is one transaction): a coordinator of an earlier version, which
-- knows nothing of tx_created, cannot insert rows this one would not find
-- (its insert fails, and its transactions wait for a coordinator of this
-- version to take them over when their leases expire). Coordinators that
-- share a database are upgraded together.
ALTER TABLE dtx_event ALTER COLUMN tx_created DROP DEFAULT;
ALTER TABLE dtx_branch ALTER COLUMN tx_created DROP DEFAULT;
