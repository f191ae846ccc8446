// Package schema declares the ent schema of the wallet: go generate in
// package entwallet regenerates package ent from it.
package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/field"
)

// Account is a wallet account with a balance in cents.
type Account struct {
	ent.Schema
}

// Fields of the Account.
func (Account) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").NotEmpty().Immutable(),
		field.Int64("balance").NonNegative(),
	}
}
