-- The rows a commit touches at the right edge of their b-trees, whatever
-- the shape of the gids: a commit writes one WAL frame per page it
-- touches, and a b-tree keyed by gid puts the rows of the transactions in
-- flight on as many pages as there are gids in flight (or, for random
-- gids, anywhere in the tree). Measured with 32 clients whose gids
-- interleave (TCC, `dtx bench --compare --pattern tcc`): 45 frames per
-- commit of about 11 writes, 31 of them in dtx_event_gid and dtx_branch.
--
-- Branches and events are keyed by the creation time of their
-- transaction first (tx_created, then gid): the rows of the transactions
-- in flight, all created lately, share the last pages. Statements that
-- have only the gid find the creation time in dtx_tx:
-- WHERE tx_created = (SELECT created_at FROM dtx_tx WHERE gid = ?) AND gid = ?.
ALTER TABLE dtx_event ADD COLUMN tx_created INTEGER NOT NULL DEFAULT 0;
UPDATE dtx_event SET tx_created = COALESCE((SELECT created_at FROM dtx_tx WHERE dtx_tx.gid = dtx_event.gid), 0);
CREATE INDEX dtx_event_tx ON dtx_event (tx_created, gid, id);
DROP INDEX dtx_event_gid;

CREATE TABLE dtx_branch_by_tx (
    tx_created          INTEGER NOT NULL,
    gid                 TEXT NOT NULL,
    idx                 INTEGER NOT NULL,
    name                TEXT NOT NULL,
    action              TEXT NOT NULL,
    compensate          TEXT NOT NULL,
    action_attempts     INTEGER NOT NULL DEFAULT 0,
    compensate_attempts INTEGER NOT NULL DEFAULT 0,
    last_error          TEXT NOT NULL DEFAULT '',
    updated_at          INTEGER NOT NULL,
    PRIMARY KEY (tx_created, gid, idx)
) WITHOUT ROWID;
INSERT INTO dtx_branch_by_tx (tx_created, gid, idx, name, action, compensate, action_attempts, compensate_attempts, last_error, updated_at)
    SELECT COALESCE((SELECT created_at FROM dtx_tx WHERE dtx_tx.gid = b.gid), 0),
        gid, idx, name, action, compensate, action_attempts, compensate_attempts, last_error, updated_at
    FROM dtx_branch b;
DROP TABLE dtx_branch;
ALTER TABLE dtx_branch_by_tx RENAME TO dtx_branch;
