// Package xa runs participant branches as XA (two-phase commit) branches of
// the participant's own database, driven by the TCC protocol (package tcc):
//
//   - try runs the branch's local work and the barrier row of (gid, branch,
//     "try") in one database transaction and prepares it (PostgreSQL
//     PREPARE TRANSACTION, MySQL/MariaDB XA PREPARE): the work holds its
//     locks and stays invisible, but survives a crash of either side;
//   - confirm commits the prepared branch (COMMIT PREPARED / XA COMMIT);
//   - cancel rolls it back (ROLLBACK PREPARED / XA ROLLBACK), or, if the try
//     never ran, records the null-cancel marker so that a late try does
//     nothing and returns participant.ErrHanging.
//
// Branches left prepared by a crash are listed by Branches.InDoubt and
// finished by Branches.Recover.
//
// PostgreSQL needs max_prepared_transactions > 0 (a server restart setting).
// MariaDB needs 10.5 or later, so that a prepared branch survives the
// disconnection of the session that prepared it.
package xa

import (
	"errors"

	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/participant"
)

// ErrBusy is wrapped by the error Cancel (or a duplicate Try) returns when
// the branch's barrier row is locked by a try still in progress. It is not
// permanent: the coordinator retries the call later.
var ErrBusy = errors.New("xa: the branch's try is still in progress; retry later")

// lockWait bounds how long Cancel (and the barrier step of Try) waits for
// the barrier row of a try in progress. MySQL and MariaDB only take whole
// seconds.
const (
	pgLockWait    = "200ms"
	mysqlLockWait = 1 // seconds
)

// Branches runs XA branches on a PostgreSQL, MySQL or MariaDB database.
//
// Dialect is appdb.Postgres or appdb.MySQL; it overrides
// Barrier.Dialect, so only Barrier.Table needs to be set (default
// participant.DefaultTable). Branches whose XID is a hash (see XID) keep the
// hash's gid and branch in the table Barrier.Table + "_xid"; Migrate creates
// both tables.
type Branches struct {
	Dialect appdb.Dialect
	Barrier participant.Barrier
}
