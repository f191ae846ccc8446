package xa_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/internal/mariadbtest"
	"github.com/dtxhq/dtx/internal/pgtest"
)

// dbServer is a server of the test's own: a failed test can leave prepared
// transactions behind, which would block dropping its database on a shared
// server. PostgreSQL servers from pgtest allow prepared transactions
// (max_prepared_transactions=64).
type dbServer struct {
	srv interface {
		CreateDB(ctx context.Context, name string) (string, error)
	}
	n atomic.Int64
}

func startPostgres(t *testing.T) *dbServer { return &dbServer{srv: pgtest.Start(t)} }

func startMariaDB(t *testing.T) *dbServer { return &dbServer{srv: mariadbtest.Start(t)} }

// createDB returns the DSN of a new database. It is not dropped: the server
// goes away with the test.
func (s *dbServer) createDB(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsn, err := s.srv.CreateDB(ctx, fmt.Sprintf("xa_%d", s.n.Add(1)))
	require.NoError(t, err)
	return dsn
}
