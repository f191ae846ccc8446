package participant_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/participant"
)

type benchReq struct {
	Item string `json:"item"`
	Qty  int    `json:"qty"`
}

type benchResp struct {
	Item string `json:"item"`
	Qty  int    `json:"qty"`
}

// BenchmarkHandler compares a typed handler (HandleJSON) with the same
// operation written by hand (Handler + json.Unmarshal + Barrier.Do), each
// call a new gid through the whole HTTP handler on SQLite, so the
// difference is what the typed layer costs:
//
//	go test -run '^$' -bench BenchmarkHandler -benchmem ./participant
func BenchmarkHandler(b *testing.B) {
	write := func(ctx context.Context, tx *sql.Tx, req benchReq) (benchResp, error) {
		_, err := tx.ExecContext(ctx, `INSERT INTO bench (item, qty) VALUES (?, ?)`, req.Item, req.Qty)
		return benchResp(req), err
	}
	run := func(b *testing.B, h func(db *sql.DB, barrier participant.Barrier) http.Handler) {
		db := openSQLite(b)
		barrier := participant.Barrier{}
		if err := barrier.Migrate(context.Background(), db); err != nil {
			b.Fatal(err)
		}
		if _, err := db.Exec(`CREATE TABLE bench (item TEXT NOT NULL, qty INTEGER NOT NULL)`); err != nil {
			b.Fatal(err)
		}
		handler := h(db, barrier)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			r := branchRequest("POST", "g"+strconv.Itoa(i), "0", "action", `{"item":"apple","qty":2}`)
			w := serve(handler, r)
			if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"qty":2`) {
				b.Fatalf("%d %s", w.Code, w.Body)
			}
		}
	}
	b.Run("typed", func(b *testing.B) {
		run(b, func(db *sql.DB, barrier participant.Barrier) http.Handler {
			return participant.HandleJSON(db, barrier, write)
		})
	})
	b.Run("by-hand", func(b *testing.B) {
		run(b, func(db *sql.DB, barrier participant.Barrier) http.Handler {
			return participant.Handler(func(ctx context.Context, br participant.Branch, body []byte) (any, error) {
				var req benchReq
				if err := json.Unmarshal(body, &req); err != nil {
					return nil, dtx.Permanent(err)
				}
				var resp benchResp
				err := barrier.Do(ctx, db, br, func(tx *sql.Tx) error {
					var err error
					resp, err = write(ctx, tx, req)
					return err
				})
				return resp, err
			})
		})
	})
}
