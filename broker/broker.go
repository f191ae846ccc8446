// Package broker is the small interface dtx needs from a message broker, so
// that the transactional outbox relay, the idempotent consumer (inbox), the
// choreographed shop and the asynchronous saga transport run unchanged on
// NATS JetStream (embedded or external) and on Apache Kafka.
//
// It is pure publish/subscribe: what the messages mean belongs to their
// users (the branch command protocol of broker:// step URLs, for one, is
// package transport/brokertransport's).
//
// Guarantees every adapter gives (and the conformance suite in
// broker/brokertest checks):
//
//   - Publish returns nil only once every message is durably stored by the
//     broker; on error some of the messages may have been stored (publishing
//     is at least once; consumers deduplicate by Message.ID).
//   - Messages of one topic with the same Key are delivered to a
//     subscription in the order they were published.
//   - A message is delivered again (Delivery.Attempt+1) until its handler
//     returns nil; a handler error or a crash before the ack redelivers it.
//   - Subscriptions with the same group share the work; each group sees
//     every message.
package broker

import (
	"context"
	"errors"
)

// Message is one message as published.
type Message struct {
	// ID identifies the message for deduplication (the inbox); required.
	ID string
	// Topic is where the message is published (a NATS subject under the
	// stream, a Kafka topic); required.
	Topic string
	// Key orders messages: those with the same key are delivered in order.
	// Typically the aggregate id (an order id).
	Key string
	// Headers carry metadata such as correlation and causation ids.
	Headers map[string]string
	// Payload is the body, usually JSON.
	Payload []byte
}

// Delivery is a message as received by a Handler.
type Delivery struct {
	Message
	// Attempt counts deliveries of this message to the group, from 1.
	Attempt int
}

// Handler processes one delivery. Returning nil acknowledges it; an error
// makes the broker deliver it again later.
type Handler func(ctx context.Context, d Delivery) error

// Subscription is a running subscription; Close stops it (in-flight
// handlers finish first).
type Subscription interface {
	Close() error
}

// Broker publishes messages and runs subscriptions.
type Broker interface {
	Publish(ctx context.Context, msgs ...Message) error
	// Subscribe delivers the messages of topic to h, as member group of the
	// consumer group (created if needed, starting from the oldest retained
	// message), until the subscription or the broker is closed.
	Subscribe(ctx context.Context, topic, group string, h Handler) (Subscription, error)
	Close() error
}

// BatchPublisher is implemented by brokers that keep the acknowledgements
// of many messages in flight at once and can tell which of them were
// stored. The outbox relay uses it when its broker has it (and Publish
// otherwise): one failed message then costs neither a publish of the
// others again nor the search for which one failed.
type BatchPublisher interface {
	// PublishBatch publishes msgs with all their acknowledgements in
	// flight together, and returns nil once every message is durably
	// stored, or else one error per message, errs[i] being nil when
	// msgs[i] was stored. Messages of one call carry no order among
	// them: a caller that needs a key's order passes at most one message
	// of each key and waits for the result before the next. It returns
	// soon after ctx is done (the messages not yet acknowledged then
	// fail, though the broker may still store them).
	PublishBatch(ctx context.Context, msgs []Message) (errs []error)
}

// Standard header names.
const (
	HeaderCorrelationID = "Dtx-Correlation-Id" // the global transaction (order, saga) id
	HeaderCausationID   = "Dtx-Causation-Id"   // the id of the message that caused this one
	HeaderType          = "Dtx-Type"           // the event or command type, e.g. "OrderCreated"
)

// ErrClosed is returned by calls on a closed broker.
var ErrClosed = errors.New("broker: closed")
