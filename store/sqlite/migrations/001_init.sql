CREATE TABLE dtx_tx (
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
);
CREATE INDEX dtx_tx_due ON dtx_tx (lease_until) WHERE status IN ('running', 'compensating');
CREATE INDEX dtx_tx_owner ON dtx_tx (lease_owner) WHERE status IN ('running', 'compensating');
CREATE INDEX dtx_tx_created ON dtx_tx (created_at);
CREATE INDEX dtx_tx_status ON dtx_tx (status, created_at);

CREATE TABLE dtx_branch (
    gid                 TEXT NOT NULL,
    idx                 INTEGER NOT NULL,
    name                TEXT NOT NULL,
    action              TEXT NOT NULL,
    compensate          TEXT NOT NULL,
    action_attempts     INTEGER NOT NULL DEFAULT 0,
    compensate_attempts INTEGER NOT NULL DEFAULT 0,
    last_error          TEXT NOT NULL DEFAULT '',
    updated_at          INTEGER NOT NULL,
    PRIMARY KEY (gid, idx)
) WITHOUT ROWID;

CREATE TABLE dtx_event (
    id          INTEGER PRIMARY KEY,
    gid         TEXT NOT NULL,
    at          BIGINT NOT NULL,
    branch      BIGINT NOT NULL,
    op          TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    detail      TEXT NOT NULL,
    duration_us BIGINT NOT NULL
);
CREATE INDEX dtx_event_gid ON dtx_event (gid, id);
