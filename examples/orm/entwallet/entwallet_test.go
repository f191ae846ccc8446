package entwallet_test

import (
	"database/sql"
	"net/http"
	"testing"

	"github.com/dtxhq/dtx/examples/orm/entwallet"
	"github.com/dtxhq/dtx/examples/orm/internal/wallettest"
	"github.com/dtxhq/dtx/internal/pgtest"
	"github.com/dtxhq/dtx/participant"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestWallet runs sagas whose payment step writes through ent in the
// barrier's transaction, then the anomalies the barrier absorbs.
func TestWallet(t *testing.T) {
	wallettest.Run(t, wallettest.Wallet{
		Migrate: entwallet.Migrate,
		Debit: func(db *sql.DB) http.Handler {
			return participant.HandleJSON(db, entwallet.Barrier, entwallet.Debit)
		},
		Refund: func(db *sql.DB) http.Handler {
			return participant.HandleJSON(db, entwallet.Barrier, entwallet.Refund)
		},
	})
}
