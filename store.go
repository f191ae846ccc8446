package dtx

import (
	"context"
	"time"
)

// Store is the durable log of global transactions. Implementations live in
// store/sqlite, store/postgres and store/mysql and pass the conformance suite in
// store/storetest. All methods are safe for concurrent use.
type Store interface {
	TxLog
	LeaseStore
	// Close releases the store's resources. It is idempotent.
	Close() error
}

// TxLog records transactions, their branches and their history.
type TxLog interface {
	// Create durably records a new transaction, its branches and an initial
	// event, leased to tx.LeaseOwner until tx.LeaseUntil. It returns
	// ErrExists (and writes nothing) when the gid is taken.
	Create(ctx context.Context, tx *Tx, branches []Branch) error
	// Get returns a transaction and its branches ordered by index, or
	// ErrNotFound.
	Get(ctx context.Context, gid string) (*Tx, []Branch, error)
	// Events returns a transaction's history in order.
	Events(ctx context.Context, gid string) ([]Event, error)
	// List returns transactions matching f, newest first, without their
	// specs (Tx.Spec is nil: lists are read often and a spec can be
	// large); Get returns the full record.
	List(ctx context.Context, f ListFilter) ([]Tx, error)
	// Counts returns the number of transactions per status.
	Counts(ctx context.Context) (map[Status]int, error)
	// Attention returns unfinished transactions an operator should look
	// at (see AttentionFilter), oldest first, each with its branches
	// ordered by index (as Get returns them; no events), so that the
	// caller can tell why without reading each one again.
	Attention(ctx context.Context, f AttentionFilter) ([]TxDetail, error)
	// Apply writes one step of progress atomically, fenced by the lease: if
	// u.Owner does not hold the lease on u.GID, nothing is written and
	// ErrLeaseLost is returned. Implementations may group concurrent Apply
	// calls into one database commit; Apply returns only once its change is
	// durable.
	Apply(ctx context.Context, u Update) error
}

// LeaseStore hands out leases on unfinished transactions.
type LeaseStore interface {
	// Claim leases up to limit unfinished transactions whose lease has
	// expired (or that have none) to owner until `until`, and returns their
	// gids. Concurrent callers never receive the same gid.
	Claim(ctx context.Context, owner string, now, until time.Time, limit int) ([]string, error)
	// ClaimOne leases gid to owner until `until` if it is unfinished and
	// its lease has expired by now (or was released), and reports whether
	// it did. It lets an operator act on a transaction nobody drives
	// without waiting for recovery to reach it.
	ClaimOne(ctx context.Context, owner, gid string, now, until time.Time) (bool, error)
	// Renew extends every lease owner holds on an unfinished transaction to
	// `until` and returns how many it extended.
	Renew(ctx context.Context, owner string, until time.Time) (int, error)
	// Release gives up owner's lease on gid (no-op if not held), so another
	// coordinator can claim it at once.
	Release(ctx context.Context, owner, gid string) error
	// Backlog counts the unfinished transactions no coordinator drives at
	// `now`: their lease expired or was released, so recovery will claim
	// them.
	Backlog(ctx context.Context, now time.Time) (int, error)
}

// ListFilter selects transactions for Store.List.
type ListFilter struct {
	Status Status // empty: any
	Limit  int    // 0: a default of 100
	// Before pages backwards: only transactions created before it.
	Before time.Time
	// Pattern, when non-empty, keeps only transactions of that pattern.
	Pattern Pattern
	// Since, when non-zero, keeps only transactions created at or after it.
	Since time.Time
	// GIDContains, when non-empty, keeps only transactions whose gid
	// contains it (byte for byte, case-sensitive, in every store).
	GIDContains string
}

// AttentionFilter selects unfinished (running or compensating)
// transactions for Store.Attention: those matching either criterion that is
// set.
type AttentionFilter struct {
	// MinAttempts (0: off) selects transactions with an operation that is
	// still pending after at least this many calls: an action of a running
	// transaction (retried on unknown outcomes; past the pivot, retried on
	// any failure), or a compensation that keeps failing.
	MinAttempts int
	// CreatedBefore (zero: off) selects transactions created before it.
	CreatedBefore time.Time
	// Limit is 100 when 0.
	Limit int
}

// Update is one atomic step of progress on a transaction.
type Update struct {
	GID   string
	Owner string
	At    time.Time
	// Branches to overwrite (matched by Index).
	Branches []Branch
	// Status, when non-empty, is the transaction's new status.
	Status Status
	// Reason, when non-empty, replaces the transaction's reason.
	Reason string
	// Events to append to the history.
	Events []Event
	// Release clears the lease (the transaction is finished or handed back).
	Release bool
}
