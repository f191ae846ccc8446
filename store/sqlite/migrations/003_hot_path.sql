-- Fewer b-trees on the writer's hot path: a commit writes one WAL frame
-- per page it touches, and each saga touches a page of every index its
-- row goes into (on creation, and again when it finishes and leaves the
-- partial indexes).
--
-- dtx_tx_due and dtx_tx_owner go: the queries on unfinished transactions
-- (backlog, claim, lease renewal) run on dtx_tx_status (status 'running'
-- or 'compensating'), which holds them together. SQLite's planner already
-- chose dtx_tx_status over dtx_tx_due for backlog and claim, and a renewal
-- rewrites each of its owner's unfinished rows anyway.
--
-- (Measured and not kept: dtx_tx WITHOUT ROWID. It saves the rowid
-- b-tree, but every secondary index entry then carries the gid instead of
-- an 8-byte rowid, and the saga's writes touched more pages, not fewer.)
DROP INDEX dtx_tx_due;
DROP INDEX dtx_tx_owner;
