package xa_test

import (
	"context"
	"database/sql"
	"database/sql/driver"

	"github.com/jackc/pgx/v5/stdlib"
)

// "pgx-plain" is pgx's database/sql driver without its Conn method, so the
// library takes the path of a PostgreSQL driver other than pgx: one
// statement per round trip, and the prepared transactions asked for after
// PREPARE TRANSACTION.
func init() { sql.Register("pgx-plain", plainDriver{}) }

type plainDriver struct{}

func (plainDriver) Open(dsn string) (driver.Conn, error) {
	c, err := stdlib.GetDefaultDriver().Open(dsn)
	if err != nil {
		return nil, err
	}
	return plainConn{c.(*stdlib.Conn)}, nil
}

type plainConn struct{ c *stdlib.Conn }

func (p plainConn) Prepare(q string) (driver.Stmt, error) { return p.c.Prepare(q) }
func (p plainConn) Close() error                          { return p.c.Close() }
func (p plainConn) Begin() (driver.Tx, error) {
	return p.c.BeginTx(context.Background(), driver.TxOptions{})
}
func (p plainConn) BeginTx(ctx context.Context, o driver.TxOptions) (driver.Tx, error) {
	return p.c.BeginTx(ctx, o)
}
func (p plainConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	return p.c.PrepareContext(ctx, q)
}
func (p plainConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	return p.c.ExecContext(ctx, q, args)
}
func (p plainConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	return p.c.QueryContext(ctx, q, args)
}
func (p plainConn) CheckNamedValue(v *driver.NamedValue) error { return p.c.CheckNamedValue(v) }
func (p plainConn) Ping(ctx context.Context) error             { return p.c.Ping(ctx) }
func (p plainConn) ResetSession(ctx context.Context) error     { return p.c.ResetSession(ctx) }
