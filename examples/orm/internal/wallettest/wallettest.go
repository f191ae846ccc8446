// Package wallettest runs one scenario against a wallet participant (a
// debit action and its refund compensation, written with an ORM): real
// sagas through an in-process coordinator over HTTP on loopback, then the
// delivery anomalies the barrier absorbs, on a throwaway PostgreSQL.
package wallettest

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/coordinator"
	"github.com/dtxhq/dtx/internal/pgtest"
	"github.com/dtxhq/dtx/participant"
	"github.com/dtxhq/dtx/saga"
	"github.com/dtxhq/dtx/store/sqlite"
	"github.com/dtxhq/dtx/store/sqlstore"
	"github.com/dtxhq/dtx/transport/httptransport"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/stretchr/testify/require"
)

// Wallet is the participant under test.
type Wallet struct {
	// Migrate creates the barrier table and the tables accounts (id,
	// balance) and payments (gid, account, amount, refunded).
	Migrate func(ctx context.Context, db *sql.DB) error
	// Debit and Refund serve the action and its compensation on db.
	Debit, Refund func(db *sql.DB) http.Handler
}

// Run runs the scenario against w.
func Run(t *testing.T, w Wallet) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db, err := sql.Open("pgx", pgtest.DSN(t))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	require.NoError(t, w.Migrate(ctx, db))
	require.NoError(t, w.Migrate(ctx, db), "Migrate is idempotent")
	_, err = db.ExecContext(ctx, `INSERT INTO accounts (id, balance) VALUES ('alice', 100)`)
	require.NoError(t, err)

	mux := http.NewServeMux()
	mux.Handle("POST /debit", w.Debit(db))
	mux.Handle("POST /refund", w.Refund(db))
	// The next step of the saga: it refuses orders whose gid says so.
	mux.Handle("POST /ship", participant.Handler(func(_ context.Context, br participant.Branch, _ []byte) (any, error) {
		if strings.HasSuffix(br.GID, "-no-courier") {
			return nil, dtx.Permanentf("no courier for %s", br.GID)
		}
		return nil, nil
	}))
	mux.Handle("POST /unship", participant.Handler(func(context.Context, participant.Branch, []byte) (any, error) { return nil, nil }))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "coordinator.db"), sqlstore.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	c, err := coordinator.New(st, httptransport.New(nil), coordinator.Config{
		RetryBase: 5 * time.Millisecond, RetryMax: 50 * time.Millisecond,
	})
	require.NoError(t, err)
	require.NoError(t, c.Start(ctx))
	t.Cleanup(func() { c.Close(context.Background()) })

	order := func(gid string, amount int) *dtx.TxDetail {
		payload, _ := json.Marshal(map[string]any{"account": "alice", "amount": amount})
		_, _, err := c.Submit(ctx, saga.Spec{GID: gid, Steps: []saga.Step{
			{Name: "pay", Action: srv.URL + "/debit", Compensate: srv.URL + "/refund", Payload: payload},
			{Name: "ship", Action: srv.URL + "/ship", Compensate: srv.URL + "/unship"},
		}})
		require.NoError(t, err)
		d, err := c.Wait(ctx, gid)
		require.NoError(t, err)
		return d
	}
	balance := func() int {
		var n int
		require.NoError(t, db.QueryRowContext(ctx, `SELECT balance FROM accounts WHERE id = 'alice'`).Scan(&n))
		return n
	}
	payment := func(gid string) string {
		var amount int
		var refunded bool
		err := db.QueryRowContext(ctx, `SELECT amount, refunded FROM payments WHERE gid = $1`, gid).Scan(&amount, &refunded)
		if err == sql.ErrNoRows {
			return "none"
		}
		require.NoError(t, err)
		return fmt.Sprintf("%d refunded=%v", amount, refunded)
	}

	// A saga that succeeds: paid through the ORM.
	require.Equal(t, dtx.StatusSucceeded, order("order-1", 30).Status)
	require.Equal(t, 70, balance())
	require.Equal(t, "30 refunded=false", payment("order-1"))

	// The next step refuses: the ORM's refund runs as the compensation.
	require.Equal(t, dtx.StatusFailed, order("order-2-no-courier", 50).Status)
	require.Equal(t, 70, balance())
	require.Equal(t, "50 refunded=true", payment("order-2-no-courier"))

	// The wallet refuses (dtx.Permanent): its compensation is a null
	// compensation, so the ORM's refund never runs (it would fail to find
	// the payment).
	require.Equal(t, dtx.StatusFailed, order("order-3", 500).Status)
	require.Equal(t, 70, balance())
	require.Equal(t, "none", payment("order-3"))

	// Delivery anomalies, sent as the coordinator would.
	call := func(path, gid string, op dtx.Op, body string) (int, string) {
		req, err := http.NewRequestWithContext(ctx, "POST", srv.URL+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set(dtx.HeaderGID, gid)
		req.Header.Set(dtx.HeaderBranch, "0")
		req.Header.Set(dtx.HeaderOp, string(op))
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, strings.TrimSpace(string(out))
	}
	code, body := call("/debit", "order-1", dtx.OpAction, `{"account":"alice","amount":30}`)
	require.Equal(t, 200, code, "a duplicate action succeeds...")
	require.Equal(t, `{}`, body)
	require.Equal(t, 70, balance(), "...without paying twice")

	code, body = call("/debit", "order-5", dtx.OpAction, `{"account":"alice","amount":"30"}`)
	require.Equal(t, http.StatusBadRequest, code, "a body that does not decode: %s", body)
	code, body = call("/debit", "order-5", dtx.OpAction, `{"account":"alice","amount":0}`)
	require.Equal(t, http.StatusBadRequest, code, "a body that does not validate: %s", body)
	require.Contains(t, body, "positive amount")

	code, _ = call("/refund", "order-6", dtx.OpCompensate, `{"account":"alice","amount":10}`)
	require.Equal(t, 200, code, "a compensation before its action is a null compensation")
	code, body = call("/debit", "order-6", dtx.OpAction, `{"account":"alice","amount":10}`)
	require.Equal(t, http.StatusConflict, code, "the action after it hangs and is refused")
	require.Contains(t, body, "hanging")
	require.Equal(t, 70, balance())
	require.Equal(t, "none", payment("order-6"))
}
