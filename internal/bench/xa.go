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
// confirm commits it, a cancel rolls it back. It returns their base URL
// and the DSNs of their two databases.
func xaBenchParticipants(ctx context.Context, clients int) (string, []string, func(), error) {
	t, err := pgserver.StartTemp(ctx, "xa_a", "xa_b")
	if err != nil {
		return "", nil, nil, fmt.Errorf("the xa bench needs PostgreSQL for its participants: %w", err)
	}
	var dbs []*sql.DB
	stop := func() {
		for _, db := range dbs {
			db.Close()
		}
		t.Close()
	}
	mux := http.NewServeMux()
	for i, name := range []string{"a", "b"} {
		db, err := sql.Open("pgx", t.DSNs[i])
		if err != nil {
			stop()
			return "", nil, nil, err
		}
		dbs = append(dbs, db)
		db.SetMaxOpenConns(4 * clients)
		db.SetMaxIdleConns(4 * clients)
		brs := xa.Branches{Dialect: appdb.Postgres, Barrier: participant.Barrier{Table: "bench_barrier"}}
		if err := brs.Migrate(ctx, db); err != nil {
			stop()
			return "", nil, nil, err
		}
		if _, err := db.ExecContext(ctx, `CREATE TABLE counters (id INT PRIMARY KEY, n BIGINT NOT NULL)`); err != nil {
			stop()
			return "", nil, nil, err
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO counters SELECT g, 0 FROM generate_series(0, $1) g`, clients); err != nil {
			stop()
			return "", nil, nil, err
		}
		mux.Handle("POST /"+name, participant.Handler(func(ctx context.Context, br participant.Branch, body []byte) (any, error) {
			var p struct {
				Row int `json:"row"`
			}
			if err := json.Unmarshal(body, &p); err != nil {
				return nil, dtx.Permanentf("bad payload: %v", err)
			}
			return nil, brs.Try(ctx, db, br, func(ctx context.Context, conn *sql.Conn) error {
				_, err := conn.ExecContext(ctx, `UPDATE counters SET n = n + 1 WHERE id = $1`, p.Row)
				return err
			})
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
		return "", nil, nil, err
	}
	return url, t.DSNs, func() { stopSrv(); stop() }, nil
}
