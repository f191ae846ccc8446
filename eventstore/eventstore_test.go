package eventstore_test

import (
	"database/sql"
	"testing"

	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/eventstore/eventstoretest"
	"github.com/dtxhq/dtx/internal/pgtest"
	"github.com/dtxhq/dtx/internal/testdb"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// The conformance suite on SQLite, PostgreSQL and MariaDB.
func TestConformance(t *testing.T) {
	testdb.Each(t, func(t *testing.T, newDB func(tb testing.TB) testdb.DB) {
		eventstoretest.Run(t, func(t *testing.T) (*sql.DB, appdb.Dialect) {
			d := newDB(t)
			return d.Open(t), d.Dialect
		})
	})
}
