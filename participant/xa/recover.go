package xa

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/participant"
)

// Decision is how Recover finishes an in-doubt branch.
type Decision int

// Decisions.
const (
	// Unknown leaves the branch prepared (e.g. the coordinator has not
	// decided yet, or could not be asked).
	Unknown Decision = iota
	// Commit commits the branch (the global transaction succeeded).
	Commit
	// Rollback rolls the branch back (the global transaction failed).
	Rollback
)

func (d Decision) String() string {
	switch d {
	case Unknown:
		return "unknown"
	case Commit:
		return "commit"
	case Rollback:
		return "rollback"
	}
	return fmt.Sprintf("Decision(%d)", int(d))
}

// InDoubt lists the prepared branches of db whose transaction id XID
// produced, oldest first on PostgreSQL, with their gid and branch index (Op
// is "try"). Prepared transactions with other ids are ignored, and so are
// those of other databases of the server (on MySQL, whose XA RECOVER lists
// the whole server's, by the XID table that Try fills in).
func (b Branches) InDoubt(ctx context.Context, db *sql.DB) ([]participant.Branch, error) {
	if _, err := b.dialect(); err != nil {
		return nil, err
	}
	xids, err := b.preparedXIDs(ctx, db)
	if err != nil {
		return nil, err
	}
	t, err := b.table()
	if err != nil {
		return nil, err
	}
	var out []participant.Branch
	for _, x := range xids {
		if br, ok := parsePlain(x); ok && b.Dialect == appdb.Postgres {
			out = append(out, br)
			continue
		} else if !ok && !hashRE.MatchString(x) {
			continue
		}
		br := participant.Branch{Op: dtx.OpTry}
		err = db.QueryRowContext(ctx, b.sql(t, `SELECT gid, branch FROM {table}_xid WHERE xid = ?`), x).Scan(&br.GID, &br.Index)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("xa: look up xid %s: %w", x, err)
		}
		if XID(br) == x {
			out = append(out, br)
		}
	}
	return out, nil
}

// Recover finishes every in-doubt branch (see InDoubt) in the direction
// decide returns for it: Commit (as Confirm), Rollback (as Cancel, so a late
// try does nothing) or Unknown (left prepared). It returns how many branches
// it finished, and the errors of those it could not decide or finish.
func (b Branches) Recover(ctx context.Context, db *sql.DB, decide func(ctx context.Context, br participant.Branch) (Decision, error)) (int, error) {
	brs, err := b.InDoubt(ctx, db)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, br := range brs {
		dec, err := decide(ctx, br)
		if err != nil {
			errs = append(errs, fmt.Errorf("xa: decide %s: %w", XID(br), err))
			continue
		}
		switch dec {
		case Commit:
			err = b.Confirm(ctx, db, br)
		case Rollback:
			err = b.Cancel(ctx, db, br)
		case Unknown:
			continue
		default:
			err = fmt.Errorf("xa: recover %s: invalid decision %v", XID(br), dec)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}
