-- Fewer b-trees on the writer's hot path: a commit writes one WAL frame
-- per page it touches, and each saga touches the end page of every b-tree
-- its rows go into.
--
-- dtx_tx becomes WITHOUT ROWID: the row lives in its gid b-tree instead
-- of a rowid table plus a gid index. dtx_tx_due and dtx_tx_owner go: the
-- queries on unfinished transactions (backlog, claim, lease renewal) run
-- on dtx_tx_status (status = 'running' / 'compensating'), which holds them
-- together -- SQLite's planner chose it over dtx_tx_due already, and a
-- renewal rewrites each of the owner's unfinished rows anyway.
CREATE TABLE dtx_tx_new (
    gid         TEXT PRIMARY KEY,
    pattern     TEXT NOT NULL,
    status      TEXT NOT NULL,
    reason      TEXT NOT NULL DEFAULT '',
    spec        TEXT NOT NULL,
    digest      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    deadline    INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT NOT NULL DEFAULT '',
    lease_until INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
INSERT INTO dtx_tx_new (gid, pattern, status, reason, spec, digest, created_at, updated_at, deadline, lease_owner, lease_until)
    SELECT gid, pattern, status, reason, spec, digest, created_at, updated_at, deadline, lease_owner, lease_until FROM dtx_tx;
DROP TABLE dtx_tx;
ALTER TABLE dtx_tx_new RENAME TO dtx_tx;
CREATE INDEX dtx_tx_created ON dtx_tx (created_at);
CREATE INDEX dtx_tx_status ON dtx_tx (status, created_at);
