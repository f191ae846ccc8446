package bench

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/internal/loopback"
	"github.com/dtxhq/dtx/internal/pgserver"
	"github.com/dtxhq/dtx/participant"
	"github.com/dtxhq/dtx/participant/xa"
)

// xaBenchParticipants serves two XA participants, "/a" and "/b", each over
// its own database on a throwaway PostgreSQL server: a try updates one row
// (the client's own, so clients do not contend) and prepares the branch, a
// confirm commits it, a cancel rolls it back.
func xaBenchParticipants(ctx context.Context, clients int) (*xaBench, error) {
	t, err := pgserver.StartTemp(ctx, "xa_a", "xa_b")
	if err != nil {
		return nil, fmt.Errorf("the xa bench needs PostgreSQL for its participants: %w", err)
	}
	xb := &xaBench{dsns: t.DSNs}
	stop := func() {
		for _, db := range xb.dbs {
			db.Close()
		}
		t.Close()
	}
	mux := http.NewServeMux()
	for i, name := range []string{"a", "b"} {
		db, err := sql.Open("pgx", t.DSNs[i])
		if err != nil {
			stop()
			return nil, err
		}
		xb.dbs = append(xb.dbs, db)
		db.SetMaxOpenConns(4 * clients)
		db.SetMaxIdleConns(4 * clients)
		brs := xa.Branches{Dialect: appdb.Postgres, Barrier: participant.Barrier{Table: "bench_barrier"}}
		xb.brs = append(xb.brs, brs)
		if err := brs.Migrate(ctx, db); err != nil {
			stop()
			return nil, err
		}
		if _, err := db.ExecContext(ctx, `CREATE TABLE counters (id INT PRIMARY KEY, n BIGINT NOT NULL)`); err != nil {
			stop()
			return nil, err
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO counters SELECT g, 0 FROM generate_series(0, $1) g`, clients); err != nil {
			stop()
			return nil, err
		}
		mux.Handle("POST /"+name, participant.Handler(func(ctx context.Context, br participant.Branch, body []byte) (any, error) {
			var p struct {
				Row int `json:"row"`
			}
			if err := json.Unmarshal(body, &p); err != nil {
				return nil, dtx.Permanentf("bad payload: %v", err)
			}
			return nil, brs.Try(ctx, db, br, updateCounter(p.Row))
		}))
		mux.Handle("POST /"+name+"-confirm", participant.Handler(func(ctx context.Context, br participant.Branch, _ []byte) (any, error) {
			return nil, brs.Confirm(ctx, db, br)
		}))
		mux.Handle("POST /"+name+"-cancel", participant.Handler(func(ctx context.Context, br participant.Branch, _ []byte) (any, error) {
			return nil, brs.Cancel(ctx, db, br)
		}))
	}
	url, stopSrv, err := loopback.Serve(mux)
	if err != nil {
		stop()
		return nil, err
	}
	xb.url, xb.stop = url, func() { stopSrv(); stop() }
	return xb, nil
}

// xaBench is the xa bench's two participants.
type xaBench struct {
	url  string        // base URL of their handlers
	dsns []string      // their databases, A and B
	dbs  []*sql.DB     // open on dsns
	brs  []xa.Branches // how each prepares and commits its branches
	stop func()
}

// updateCounter is a try's work: it adds 1 to the counter of row.
func updateCounter(row int) func(ctx context.Context, conn *sql.Conn) error {
	return func(ctx context.Context, conn *sql.Conn) error {
		_, err := conn.ExecContext(ctx, `UPDATE counters SET n = n + 1 WHERE id = $1`, row)
		return err
	}
}
