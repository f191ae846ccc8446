// Package events is the contract of the choreographed shop: the topics its
// services publish to and consume from, and their JSON payloads.
//
// The flow runs in sequence, never in parallel, so a late event cannot undo
// the outcome of an earlier one (the seeds' race, where inventory and
// payment both consumed ORDER_CREATED and a cancelled order flipped to
// approved):
//
//	order      --OrderPlaced-->    inventory: deduct stock
//	inventory  --StockDeducted-->  payment:   charge
//	payment    --PaymentCharged--> order:     PENDING -> COMPLETED
//
//	inventory  --StockFailed-->    order:     PENDING -> CANCELLED
//	payment    --PaymentFailed-->  inventory: restore stock
//	inventory  --StockRestored-->  order:     PENDING -> CANCELLED
//
//	order      --OrderCompleted, OrderCancelled--> (the flow's end, for the record)
//
// Every message is keyed by the order's gid (per-order delivery order), has
// a deterministic id (its gid and type: publishing it twice is one message
// to the inbox), and carries the correlation id (the gid), the causation id
// (the id of the message it answers) and its source service in headers.
package events

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/flow"
)

// Topics, one per event type.
const (
	OrderPlaced    = "order-placed"
	StockDeducted  = "stock-deducted"
	StockFailed    = "stock-failed"
	PaymentCharged = "payment-charged"
	PaymentFailed  = "payment-failed"
	StockRestored  = "stock-restored"
	// OrderCompleted and OrderCancelled close a flow; no service consumes
	// them (the flow recorder does).
	OrderCompleted = "order-completed"
	OrderCancelled = "order-cancelled"
)

// HeaderSource names the service that published a message.
const HeaderSource = flow.HeaderSource

// Topics lists every topic of the flow.
var Topics = []string{OrderPlaced, StockDeducted, StockFailed, PaymentCharged, PaymentFailed, StockRestored, OrderCompleted, OrderCancelled}

// Item is one order line.
type Item struct {
	ProductID int64 `json:"product_id"`
	Quantity  int64 `json:"quantity"`
	Price     int64 `json:"price"`
}

// Order is the payload of OrderPlaced and StockDeducted.
type Order struct {
	OrderID int64  `json:"order_id"`
	UserID  int64  `json:"user_id"`
	Total   int64  `json:"total"`
	Items   []Item `json:"items,omitempty"`
}

// Outcome is the payload of PaymentCharged, StockFailed, PaymentFailed and
// StockRestored.
type Outcome struct {
	OrderID int64  `json:"order_id"`
	Reason  string `json:"reason,omitempty"`
}

// New returns the message of type topic for the order with gid, published
// by source in answer to cause (empty for the first message of a flow).
func New(topic, gid, source, cause string, payload any) (broker.Message, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return broker.Message{}, fmt.Errorf("events: encode %s: %w", topic, err)
	}
	h := map[string]string{
		broker.HeaderCorrelationID: gid,
		broker.HeaderType:          topic,
		HeaderSource:               source,
		flow.HeaderTime:            time.Now().UTC().Format(time.RFC3339Nano),
	}
	if cause != "" {
		h[broker.HeaderCausationID] = cause
	}
	return broker.Message{ID: gid + "/" + topic, Topic: topic, Key: gid, Headers: h, Payload: b}, nil
}

// Reaction applies one consumed event inside tx, the consumer's local
// transaction (with its inbox record), and returns the event to publish in
// the same transaction: its topic ("" for none) and payload. An error
// rolls everything back and the event is redelivered; an error marked
// dtx.Permanent dead-letters it.
type Reaction func(ctx context.Context, tx *sql.Tx, gid string, payload []byte) (next string, out any, err error)

// Decode unmarshals an event payload; a malformed one is a permanent
// error.
func Decode[T any](payload []byte) (T, error) {
	var v T
	if err := json.Unmarshal(payload, &v); err != nil {
		return v, dtx.Permanentf("events: malformed payload: %v", err)
	}
	return v, nil
}
