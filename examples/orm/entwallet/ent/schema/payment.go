package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// Payment is one debit of an account, by the global transaction that made
// it.
type Payment struct {
	ent.Schema
}

// Fields of the Payment.
func (Payment) Fields() []ent.Field {
	return []ent.Field{
		field.String("gid").NotEmpty(),
		field.String("account").NotEmpty(),
		field.Int64("amount").Positive(),
		field.Bool("refunded").Default(false),
	}
}

// Indexes of the Payment.
func (Payment) Indexes() []ent.Index {
	return []ent.Index{index.Fields("gid").Unique()}
}
