-- Keys and compared identifiers (gid, lease_owner) are VARBINARY: they match
-- byte for byte, as in SQLite and PostgreSQL, where a utf8mb4 collation
-- would fold case and ignore trailing spaces. due_at stands in for the
-- partial indexes of the other dialects: it is NULL for finished
-- transactions, so the claim scan reads only unfinished ones.
CREATE TABLE IF NOT EXISTS dtx_tx (
    gid         VARBINARY(255) NOT NULL,
    pattern     VARCHAR(64)    NOT NULL,
    status      VARCHAR(32)    NOT NULL,
    reason      TEXT           NOT NULL,
    spec        LONGTEXT       NOT NULL,
    digest      VARCHAR(255)   NOT NULL,
    created_at  BIGINT         NOT NULL,
    updated_at  BIGINT         NOT NULL,
    deadline    BIGINT         NOT NULL DEFAULT 0,
    lease_owner VARBINARY(255) NOT NULL DEFAULT '',
    lease_until BIGINT         NOT NULL DEFAULT 0,
    due_at      BIGINT GENERATED ALWAYS AS (CASE WHEN status IN ('running', 'compensating') THEN lease_until END) STORED,
    PRIMARY KEY (gid),
    KEY dtx_tx_due (due_at),
    KEY dtx_tx_owner (lease_owner, status),
    KEY dtx_tx_created (created_at),
    KEY dtx_tx_status (status, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS dtx_branch (
    gid                 VARBINARY(255) NOT NULL,
    idx                 BIGINT         NOT NULL,
    name                TEXT           NOT NULL,
    action              VARCHAR(32)    NOT NULL,
    compensate          VARCHAR(32)    NOT NULL,
    action_attempts     BIGINT         NOT NULL DEFAULT 0,
    compensate_attempts BIGINT         NOT NULL DEFAULT 0,
    last_error          TEXT           NOT NULL,
    updated_at          BIGINT         NOT NULL,
    PRIMARY KEY (gid, idx)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS dtx_event (
    id          BIGINT         NOT NULL AUTO_INCREMENT,
    gid         VARBINARY(255) NOT NULL,
    at          BIGINT         NOT NULL,
    branch      BIGINT         NOT NULL,
    op          VARCHAR(64)    NOT NULL,
    outcome     VARCHAR(64)    NOT NULL,
    detail      TEXT           NOT NULL,
    duration_us BIGINT         NOT NULL,
    PRIMARY KEY (id),
    KEY dtx_event_gid (gid, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
