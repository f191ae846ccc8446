// Package gormwallet is a payment participant whose writes use gorm inside
// the dtx barrier's transaction: Debit is a saga action, Refund its
// compensation.
package gormwallet

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/participant"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Account is a wallet account; Balance is in cents.
type Account struct {
	ID      string `gorm:"primaryKey"`
	Balance int64  `gorm:"not null;check:balance >= 0"`
}

// Payment records one debit by the global transaction (GID) that made it.
type Payment struct {
	GID      string `gorm:"column:gid;primaryKey"`
	Account  string `gorm:"not null"`
	Amount   int64  `gorm:"not null"`
	Refunded bool   `gorm:"not null;default:false"`
}

// DebitRequest is the body of Debit and Refund.
type DebitRequest struct {
	Account string `json:"account"`
	Amount  int64  `json:"amount"`
}

// Validate refuses a request that cannot be right: answered 400.
func (r DebitRequest) Validate() error {
	if r.Account == "" || r.Amount <= 0 {
		return errors.New("want an account and a positive amount")
	}
	return nil
}

// Balance is the answer of Debit and Refund.
type Balance struct {
	Account string `json:"account"`
	Balance int64  `json:"balance"`
}

// Barrier is the wallet's barrier: PostgreSQL, default table.
var Barrier = participant.Barrier{Dialect: appdb.Postgres}

// orm wraps the barrier's open transaction for gorm: the dialector's Conn
// is what gorm runs every statement on, and a *sql.Tx is such a
// connection pool. gorm must not open a transaction of its own
// (SkipDefaultTransaction): the barrier's transaction commits the row and
// the business write together.
func orm(ctx context.Context, tx *sql.Tx) (*gorm.DB, error) {
	db, err := gorm.Open(postgres.New(postgres.Config{Conn: tx}), &gorm.Config{
		SkipDefaultTransaction: true,
		Logger:                 logger.Discard,
	})
	if err != nil {
		return nil, err
	}
	return db.WithContext(ctx), nil
}

// Migrate creates the barrier table and the wallet's tables.
func Migrate(ctx context.Context, db *sql.DB) error {
	if err := Barrier.Migrate(ctx, db); err != nil {
		return err
	}
	g, err := gorm.Open(postgres.New(postgres.Config{Conn: db}), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		return err
	}
	return g.WithContext(ctx).AutoMigrate(&Account{}, &Payment{})
}

// Debit takes req.Amount from the account and records the payment under
// the transaction's gid. Too little money is a business "no"
// (dtx.Permanent: the coordinator compensates the steps before it).
func Debit(ctx context.Context, tx *sql.Tx, req DebitRequest) (Balance, error) {
	br, _ := participant.BranchFromContext(ctx)
	db, err := orm(ctx, tx)
	if err != nil {
		return Balance{}, err
	}
	res := db.Model(&Account{}).
		Where("id = ? AND balance >= ?", req.Account, req.Amount).
		Update("balance", gorm.Expr("balance - ?", req.Amount))
	if res.Error != nil {
		return Balance{}, res.Error
	}
	if res.RowsAffected == 0 {
		return Balance{}, dtx.Permanentf("account %s cannot pay %d", req.Account, req.Amount)
	}
	if err := db.Create(&Payment{GID: br.GID, Account: req.Account, Amount: req.Amount}).Error; err != nil {
		return Balance{}, err
	}
	return balance(db, req.Account)
}

// Refund undoes Debit: it gives back the payment of the transaction's gid.
// The barrier calls it only if Debit committed, so the payment is there.
func Refund(ctx context.Context, tx *sql.Tx, req DebitRequest) (Balance, error) {
	br, _ := participant.BranchFromContext(ctx)
	db, err := orm(ctx, tx)
	if err != nil {
		return Balance{}, err
	}
	var p Payment
	if err := db.First(&p, "gid = ?", br.GID).Error; err != nil {
		return Balance{}, fmt.Errorf("refund %s: %w", br.GID, err)
	}
	if err := db.Model(&p).Update("refunded", true).Error; err != nil {
		return Balance{}, err
	}
	err = db.Model(&Account{}).Where("id = ?", p.Account).
		Update("balance", gorm.Expr("balance + ?", p.Amount)).Error
	if err != nil {
		return Balance{}, err
	}
	return balance(db, p.Account)
}

func balance(db *gorm.DB, id string) (Balance, error) {
	var a Account
	if err := db.First(&a, "id = ?", id).Error; err != nil {
		return Balance{}, err
	}
	return Balance{Account: a.ID, Balance: a.Balance}, nil
}
