package outbox

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dtxhq/dtx/appdb"
)

// errNotPgx reports a PostgreSQL database opened with another driver than
// pgx's database/sql driver: the relay then only polls.
var errNotPgx = errors.New("outbox: the database is not opened with the pgx driver")

// NotifyChannel returns the PostgreSQL notification channel of o's table:
// a relay of the table on PostgreSQL LISTENs on it and wakes up on every
// notification, so a writer in another process can wake it with
// NOTIFY "channel" (or SELECT pg_notify) in the transaction that adds rows;
// Outbox.NotifyOnCommit makes Add do so. It is the table name as given,
// or, beyond PostgreSQL's 63 bytes, a prefix and a hash of it.
func (o Outbox) NotifyChannel() string {
	name := o.Table
	if name == "" {
		name = DefaultTable
	}
	if len(name) <= 63 {
		return name
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(name))
	return fmt.Sprintf("%s_%016x", name[:46], h.Sum64())
}

// listen wakes the relay on the notifications of its table's channel
// until ctx is done, on PostgreSQL through pgx; elsewhere it returns at
// once (the relay polls). A lost connection is listened on again after
// a delay; the polling covers the gap.
func (r *Relay) listen(ctx context.Context) {
	if r.ob.Dialect != appdb.Postgres {
		return
	}
	for failures := 0; ctx.Err() == nil; {
		err := r.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errNotPgx) {
			r.log.InfoContext(ctx, "outbox relay: polling only", "err", err)
			return
		}
		failures++
		r.log.DebugContext(ctx, "outbox relay: listen for notifications", "err", err, "attempt", failures)
		t := time.NewTimer(max(r.cfg.PollInterval, time.Second))
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

// listenOnce holds one connection of the pool, LISTENing, until ctx is
// done or the connection fails.
func (r *Relay) listenOnce(ctx context.Context) error {
	conn, err := r.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		pc, ok := dc.(interface{ Conn() *pgx.Conn })
		if !ok {
			return errNotPgx
		}
		c := pc.Conn()
		if _, err := c.Exec(ctx, "LISTEN "+pgx.Identifier{r.ob.NotifyChannel()}.Sanitize()); err != nil {
			return err
		}
		// Rows may have been added while no one listened.
		r.Notify()
		for {
			if _, err := c.WaitForNotification(ctx); err != nil {
				// Leave no LISTEN behind on a connection going back to
				// the pool; a broken one is closed by the pool.
				uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
				defer cancel()
				_, _ = c.Exec(uctx, "UNLISTEN *")
				return err
			}
			r.Notify()
		}
	})
}
