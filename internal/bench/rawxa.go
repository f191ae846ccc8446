package bench

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/participant"
)

// rawXARate measures the limit the xa bench's participants work against:
// how many two-branch XA transactions per second clients concurrent
// clients complete on the two PostgreSQL databases dsnA and dsnB with no
// coordinator in between. Each client, on a connection of its own to each
// database, prepares a branch on A then on B (BEGIN; UPDATE counters SET
// n = n + 1 WHERE id = <its row>; PREPARE TRANSACTION), then commits both
// (COMMIT PREPARED, the two together, as the coordinator sends its
// confirms): the branch work of the bench's participants, through the same
// driver, without their barrier rows and checks. The counters table and
// its rows 0..clients-1 are the participants' (see xaBenchParticipants).
// A transaction started before the end is finished, and counted.
func rawXARate(ctx context.Context, dsnA, dsnB string, clients int, d time.Duration) (float64, error) {
	var dbs [2]*sql.DB
	for i, dsn := range []string{dsnA, dsnB} {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			return 0, err
		}
		defer db.Close()
		db.SetMaxOpenConns(clients)
		db.SetMaxIdleConns(clients)
		dbs[i] = db
	}
	nonce := time.Now().UnixNano()
	return rateOf(ctx, clients, d, func(runCtx context.Context, w int, done func()) error {
		var conns [2]*sql.Conn
		for i, db := range dbs {
			c, err := db.Conn(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			conns[i] = c
		}
		for i := 0; runCtx.Err() == nil; i++ {
			if err := rawXAOnce(ctx, conns, fmt.Sprintf("dtx-raw-%d-%d-%d", nonce, w, i), w); err != nil {
				return err
			}
			done()
		}
		return nil
	})
}

// rawXALibRate is rawXARate through the participants' own library, called
// directly (no HTTP, no coordinator): each client runs xa.Branches.Try on
// A then on B, updating its row, then Confirm on both together, as the
// bench's participants do when the coordinator calls them.
func rawXALibRate(ctx context.Context, xb *xaBench, clients int, d time.Duration) (float64, error) {
	nonce := time.Now().UnixNano()
	return rateOf(ctx, clients, d, func(runCtx context.Context, w int, done func()) error {
		for i := 0; runCtx.Err() == nil; i++ {
			gid := fmt.Sprintf("rawlib-%d-%d-%d", nonce, w, i)
			for k := range 2 {
				br := participant.Branch{GID: gid, Index: k, Op: dtx.OpTry}
				if err := xb.brs[k].Try(ctx, xb.dbs[k], br, updateCounter(w)); err != nil {
					return fmt.Errorf("try on database %d: %w", k+1, err)
				}
			}
			errc := make(chan error, 1)
			confirm := func(k int) error {
				return xb.brs[k].Confirm(ctx, xb.dbs[k], participant.Branch{GID: gid, Index: k, Op: dtx.OpConfirm})
			}
			go func() { errc <- confirm(1) }()
			err := confirm(0)
			if err2 := <-errc; err == nil {
				err = err2
			}
			if err != nil {
				return fmt.Errorf("confirm: %w", err)
			}
			done()
		}
		return nil
	})
}

// rateOf runs clients clients, each calling run once, for about d (run
// ends its loop once runCtx is done, finishing the transaction it is in),
// and returns how many transactions per second they reported done over the
// time they took; the first error fails it.
func rateOf(ctx context.Context, clients int, d time.Duration, run func(runCtx context.Context, w int, done func()) error) (float64, error) {
	var count atomic.Int64
	runCtx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		wg       sync.WaitGroup
		errMu    sync.Mutex
		firstErr error
	)
	start := time.Now()
	for w := range clients {
		wg.Go(func() {
			if err := run(runCtx, w, func() { count.Add(1) }); err != nil {
				errMu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				errMu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return 0, firstErr
	}
	return float64(count.Load()) / elapsed.Seconds(), nil
}

// rawXAOnce prepares a branch on each connection in turn, updating row,
// and then commits both together. The branches' ids end in their index:
// prepared transactions are named server-wide, and both databases may be
// on one server (as the participants' are).
func rawXAOnce(ctx context.Context, conns [2]*sql.Conn, gid string, row int) error {
	xids := [2]string{gid + "-0", gid + "-1"}
	for k, c := range conns {
		xid := xids[k]
		if _, err := c.ExecContext(ctx, `BEGIN`); err != nil {
			return err
		}
		if _, err := c.ExecContext(ctx, `UPDATE counters SET n = n + 1 WHERE id = $1`, row); err != nil {
			c.ExecContext(ctx, `ROLLBACK`)
			return err
		}
		if _, err := c.ExecContext(ctx, `PREPARE TRANSACTION '`+xid+`'`); err != nil {
			return fmt.Errorf("prepare on database %d: %w", k+1, err)
		}
	}
	errc := make(chan error, 1)
	go func() {
		_, err := conns[1].ExecContext(ctx, `COMMIT PREPARED '`+xids[1]+`'`)
		errc <- err
	}()
	_, err := conns[0].ExecContext(ctx, `COMMIT PREPARED '`+xids[0]+`'`)
	if err2 := <-errc; err == nil {
		err = err2
	}
	return err
}
