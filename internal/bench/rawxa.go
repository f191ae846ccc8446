package bench

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
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
			return 0, fmt.Errorf("raw XA rate: %w", err)
		}
		defer db.Close()
		db.SetMaxOpenConns(clients)
		db.SetMaxIdleConns(clients)
		dbs[i] = db
	}
	nonce := time.Now().UnixNano()
	var done atomic.Int64
	runCtx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		wg       sync.WaitGroup
		errMu    sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		errMu.Lock()
		defer errMu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
	}
	start := time.Now()
	for w := range clients {
		wg.Go(func() {
			var conns [2]*sql.Conn
			for i, db := range dbs {
				c, err := db.Conn(ctx)
				if err != nil {
					fail(err)
					return
				}
				defer c.Close()
				conns[i] = c
			}
			for i := 0; runCtx.Err() == nil; i++ {
				if err := rawXAOnce(ctx, conns, fmt.Sprintf("dtx-raw-%d-%d-%d", nonce, w, i), w); err != nil {
					fail(err)
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return 0, fmt.Errorf("raw XA rate: %w", firstErr)
	}
	return float64(done.Load()) / elapsed.Seconds(), nil
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
