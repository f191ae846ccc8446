package shop

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/examples/shop/events"
	"github.com/dtxhq/dtx/examples/shop/faults"
	"github.com/dtxhq/dtx/examples/shop/order"
	"github.com/dtxhq/dtx/inbox"
	"github.com/dtxhq/dtx/internal/problem"
	"github.com/dtxhq/dtx/metrics"
	"github.com/dtxhq/dtx/outbox"
	"github.com/dtxhq/dtx/outbox/pgtail"
	"github.com/dtxhq/dtx/participant"
)

// Choreography: every service has an outbox (its events commit with its
// changes and a relay publishes them) and an inbox (each consumed event
// takes effect once, in the same local transaction as the event it
// publishes in answer). Package events has the flow.

// Defaults of the choreography's consumer retry policy (Config.
// ConsumerMaxAttempts and ConsumerRetryDelay). Business refusals are
// events, not failures; what fails is transient (a database error, an
// injected fault: the shop's fault injection fails deliveries on purpose,
// and a dead-lettered event leaves its order pending until an operator
// replays it), so the default bound is generous. The seeds' policy is 3
// attempts 1s apart.
const (
	DefaultConsumerMaxAttempts               = 100
	DefaultConsumerRetryDelay  time.Duration = 0
)

// eventPolicy is the retry policy of the choreography's consumers and
// relays.
type eventPolicy struct {
	consumerAttempts  int
	consumerDelay     time.Duration
	outboxMaxAttempts int
}

func eventPolicyOf(cfg Config) eventPolicy {
	p := eventPolicy{cfg.ConsumerMaxAttempts, cfg.ConsumerRetryDelay, cfg.OutboxMaxAttempts}
	if p.consumerAttempts == 0 {
		p.consumerAttempts = DefaultConsumerMaxAttempts
	}
	if p.consumerDelay == 0 {
		p.consumerDelay = DefaultConsumerRetryDelay
	}
	return p
}

func (p eventPolicy) validate() error {
	if p.consumerAttempts < 1 || p.consumerDelay < 0 || p.outboxMaxAttempts < 0 {
		return fmt.Errorf("shop: ConsumerMaxAttempts %d, ConsumerRetryDelay %v, OutboxMaxAttempts %d: none may be negative",
			p.consumerAttempts, p.consumerDelay, p.outboxMaxAttempts)
	}
	return nil
}

// eventService is one service's plumbing for the choreographed flow.
type eventService struct {
	name   string
	db     *sql.DB
	outbox outbox.Outbox
	inbox  inbox.Inbox
	relay  eventRelay
	subs   []broker.Subscription
	cons   map[string]inbox.Consumer // by topic
	policy eventPolicy
	// metrics: the relay's counters and lag, and the dead letters, served
	// on the service's GET /metrics.
	metrics *metrics.Events
}

// eventRelay publishes a service's outbox: the polling outbox.Relay, or
// the log-tailing pgtail.Relay (tailRelay).
type eventRelay interface {
	Run(ctx context.Context) error
	Notify()
	Stats() outbox.Stats
}

// tailRelay is a pgtail.Relay as an eventRelay.
type tailRelay struct{ *pgtail.Relay }

// Notify does nothing: the replication stream wakes the relay.
func (tailRelay) Notify() {}

// Stats maps the tailing relay's counters on the polling relay's (the
// slot, not a lease, makes it the one that publishes; lag is not measured).
func (t tailRelay) Stats() outbox.Stats {
	s := t.Relay.Stats()
	return outbox.Stats{Published: s.Published, Failures: s.Failures, DBErrors: s.Errors, Leader: s.Streaming}
}

func newEventService(ctx context.Context, name string, db *sql.DB, d appdb.Dialect, b broker.Broker, policy eventPolicy, relayKind, dsn string, log *slog.Logger) (*eventService, error) {
	es := &eventService{
		policy: policy,
		name:   name,
		db:     db,
		outbox: outbox.Outbox{Dialect: d, Table: name + "_outbox"},
		inbox:  inbox.Inbox{Dialect: d, Table: name + "_inbox"},
		cons:   map[string]inbox.Consumer{},
	}
	if err := es.outbox.Migrate(ctx, db); err != nil {
		return nil, fmt.Errorf("shop: %s outbox: %w", name, err)
	}
	if err := es.inbox.Migrate(ctx, db); err != nil {
		return nil, fmt.Errorf("shop: %s inbox: %w", name, err)
	}
	if relayKind == RelayTailing {
		relay, err := pgtail.New(dsn, b, pgtail.Config{Slot: "dtx_" + name + "_outbox", Table: es.outbox.Table,
			StatusInterval: time.Second, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("shop: %s relay: %w", name, err)
		}
		es.relay = tailRelay{relay}
	} else {
		relay, err := outbox.NewRelay(db, es.outbox, b, outbox.RelayConfig{
			Owner: name, PollInterval: 200 * time.Millisecond, LeaseTTL: 5 * time.Second, Logger: log,
			MaxAttempts: policy.outboxMaxAttempts,
		})
		if err != nil {
			return nil, fmt.Errorf("shop: %s relay: %w", name, err)
		}
		es.relay = relay
	}
	es.metrics = metrics.NewEvents()
	es.metrics.WatchRelay(name, es.relay)
	es.metrics.WatchDeadLetters(name, "outbox", func(ctx context.Context) (int, error) {
		dl, err := es.outbox.DeadLetters(ctx, db)
		return len(dl), err
	})
	es.metrics.WatchDeadLetters(name, "inbox", func(ctx context.Context) (int, error) {
		dl, err := es.deadLetters(ctx)
		return len(dl), err
	})
	return es, nil
}

// publish adds the event of type topic to the outbox in tx.
func (es *eventService) publish(ctx context.Context, tx *sql.Tx, topic, gid, cause string, payload any) error {
	msg, err := events.New(topic, gid, es.name, cause, payload)
	if err != nil {
		return err
	}
	return es.outbox.Add(ctx, tx, msg)
}

// subscribe consumes each topic of reactions, with faults injected into
// the deliveries.
func (es *eventService) subscribe(ctx context.Context, b broker.Broker, reactions map[string]events.Reaction, in *faults.Injector, log *slog.Logger) error {
	for topic, react := range reactions {
		c := inbox.Consumer{
			Inbox: es.inbox, DB: es.db, Group: es.name, Logger: log,
			MaxAttempts: es.policy.consumerAttempts, RetryDelay: es.policy.consumerDelay,
			Process: func(ctx context.Context, tx *sql.Tx, d broker.Delivery) error {
				gid := d.Headers[broker.HeaderCorrelationID]
				if gid == "" {
					return dtx.Permanentf("%s: %s message %s has no correlation id", es.name, topic, d.ID)
				}
				// The inbox made the message id take effect once; the
				// reaction must also take effect once per order, whatever
				// the message id: an event published again under a new id
				// (a replayed capture, a producer's retry) must not make a
				// service refuse, and so cancel, what it already did.
				if orderID, ok := orderOf(d.Payload); ok {
					first, err := es.inbox.Claim(ctx, tx, es.name+reactionGroupSuffix, strconv.FormatInt(orderID, 10)+"/"+topic)
					if err != nil {
						return err
					}
					if !first {
						log.InfoContext(ctx, "event ignored: this order's reaction to it already ran",
							"service", es.name, "topic", topic, "order_id", orderID, "message_id", d.ID)
						return nil
					}
				}
				next, out, err := react(ctx, tx, gid, d.Payload)
				if err != nil || next == "" {
					return err
				}
				return es.publish(ctx, tx, next, gid, d.ID, out)
			},
		}
		es.cons[topic] = c
		h := func(ctx context.Context, d broker.Delivery) error {
			if err := c.Handle(ctx, d); err != nil {
				return err
			}
			es.relay.Notify() // the answer, if any, is committed
			return nil
		}
		sub, err := b.Subscribe(ctx, topic, es.name, in.WrapHandler(h))
		if err != nil {
			return fmt.Errorf("shop: %s subscribe %s: %w", es.name, topic, err)
		}
		es.subs = append(es.subs, sub)
	}
	return nil
}

// reactionGroupSuffix names the inbox group (the service's name + it) in
// which each service records the reactions it ran, by order and topic.
const reactionGroupSuffix = ".reactions"

// orderOf reads the business key of an event: its order id. A payload
// without one is left to the reaction, which dead-letters it as malformed.
func orderOf(payload []byte) (int64, bool) {
	var ref struct {
		OrderID int64 `json:"order_id"`
	}
	if json.Unmarshal(payload, &ref) != nil || ref.OrderID <= 0 {
		return 0, false
	}
	return ref.OrderID, true
}

func (es *eventService) close() error {
	var errs []error
	for _, s := range es.subs {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

// deadLetters lists the service's dead-lettered events.
func (es *eventService) deadLetters(ctx context.Context) ([]inbox.DeadLetter, error) {
	for _, c := range es.cons { // one group: any consumer lists them all
		return c.DeadLetters(ctx)
	}
	return nil, nil
}

// deadLetterRoutes serves the service's dead letters in front of next:
//
//	GET  /events/dead-letters               list them
//	POST /events/dead-letters/replay?id=ID  process one again (once)
//	POST /events/dead-letters/discard?id=ID drop one
func (es *eventService) deadLetterRoutes(next http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", next)
	mux.HandleFunc("GET /events/dead-letters", func(w http.ResponseWriter, r *http.Request) {
		dl, err := es.deadLetters(r.Context())
		if err != nil {
			problem.Write(w, http.StatusInternalServerError, err.Error())
			return
		}
		type item struct {
			ID       string    `json:"id"`
			Topic    string    `json:"topic"`
			Key      string    `json:"key"`
			Error    string    `json:"error"`
			Attempts int       `json:"attempts"`
			Time     time.Time `json:"time"`
		}
		out := []item{}
		for _, d := range dl {
			out = append(out, item{d.Message.ID, d.Message.Topic, d.Message.Key, d.Error, d.Attempts, d.Time})
		}
		participant.WriteJSON(w, http.StatusOK, out)
	})
	act := func(replay bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			id := r.URL.Query().Get("id")
			if id == "" {
				problem.Write(w, http.StatusBadRequest, "query parameter id is required")
				return
			}
			dl, err := es.deadLetters(r.Context())
			if err != nil {
				problem.Write(w, http.StatusInternalServerError, err.Error())
				return
			}
			i := slices.IndexFunc(dl, func(d inbox.DeadLetter) bool { return d.Message.ID == id })
			if i < 0 {
				problem.Write(w, http.StatusNotFound, "no dead letter "+strconv.Quote(id))
				return
			}
			c, ok := es.cons[dl[i].Message.Topic]
			if !ok {
				problem.Write(w, http.StatusConflict, "no consumer for topic "+dl[i].Message.Topic)
				return
			}
			if replay {
				err = c.Replay(r.Context(), id)
			} else {
				err = c.Discard(r.Context(), id)
			}
			switch {
			case errors.Is(err, inbox.ErrNotFound):
				problem.Write(w, http.StatusNotFound, err.Error())
			case dtx.IsPermanent(err):
				problem.Write(w, http.StatusUnprocessableEntity, err.Error())
			case err != nil:
				problem.Write(w, http.StatusInternalServerError, err.Error())
			default:
				if replay {
					es.relay.Notify()
				}
				w.WriteHeader(http.StatusNoContent)
			}
		}
	}
	mux.HandleFunc("POST /events/dead-letters/replay", act(true))
	mux.HandleFunc("POST /events/dead-letters/discard", act(false))
	es.outboxDeadLetterRoutes(mux)
	return mux
}

// startChoreography sets up the outboxes and inboxes of the three services
// and the order service's OnPlace; it subscribes once the services exist
// (subscribeChoreography).
func (s *Shop) startChoreography(ctx context.Context, b broker.Broker, policy eventPolicy, relayKind string, dsns map[string]string) error {
	if err := policy.validate(); err != nil {
		return err
	}
	switch relayKind {
	case "", RelayPolling:
	case RelayTailing:
		if policy.outboxMaxAttempts != 0 {
			return fmt.Errorf("shop: the tailing relay never gives a message up: OutboxMaxAttempts must be 0, not %d", policy.outboxMaxAttempts)
		}
		for _, name := range []string{"order", "inventory", "payment"} {
			if !strings.HasPrefix(dsns[name], "postgres://") && !strings.HasPrefix(dsns[name], "postgresql://") {
				return fmt.Errorf("shop: the tailing relay reads PostgreSQL's log: the %s service needs a postgres:// DSN (with wal_level=logical)", name)
			}
		}
	default:
		return fmt.Errorf("shop: Relay %q: want %s or %s", relayKind, RelayPolling, RelayTailing)
	}
	dbs := []struct {
		name string
		db   *sql.DB
		d    appdb.Dialect
	}{{"order", s.orderDB, s.orderDialect}, {"inventory", s.inventoryDB, s.invDialect}, {"payment", s.paymentDB, s.payDialect}}
	s.events = map[string]*eventService{}
	for _, x := range dbs {
		es, err := newEventService(ctx, x.name, x.db, x.d, b, policy, relayKind, dsns[x.name], s.log)
		if err != nil {
			return err
		}
		s.events[x.name] = es
	}
	return nil
}

// placeEvent is the order service's Config.OnPlace under choreography.
func (s *Shop) placeEvent(ctx context.Context, tx *sql.Tx, o *order.Order) error {
	return s.events["order"].publish(ctx, tx, events.OrderPlaced, o.GID, "", order.PlacedEvent(o))
}

func (s *Shop) subscribeChoreography(ctx, runCtx context.Context, b broker.Broker) error {
	for name, r := range map[string]struct {
		reactions map[string]events.Reaction
		faults    *faults.Injector
	}{
		"order":     {s.Orders.Reactions(), s.orderFaults},
		"inventory": {s.Inventory.Reactions(), s.inventoryFaults},
		"payment":   {s.Payment.Reactions(), s.paymentFaults},
	} {
		es := s.events[name]
		if err := es.subscribe(ctx, b, r.reactions, r.faults, s.log); err != nil {
			return err
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := es.relay.Run(runCtx); err != nil && runCtx.Err() == nil {
				s.log.Error("outbox relay stopped", "service", es.name, "err", err)
			}
		}()
	}
	s.eventsReady.Store(true) // the dead-letter routes may read the consumers now
	return nil
}

// choreographyViolations reports what must not remain once the flow has
// quiesced: dead-lettered events and FAILED outbox rows (an order they
// concern may be stuck).
func (s *Shop) choreographyViolations(ctx context.Context) ([]string, error) {
	var out []string
	for _, name := range []string{"order", "inventory", "payment"} {
		es := s.events[name]
		if es == nil {
			continue
		}
		dl, err := es.deadLetters(ctx)
		if err != nil {
			return nil, err
		}
		for _, d := range dl {
			out = append(out, fmt.Sprintf("%s: event %s (%s) dead-lettered after %d attempts: %s", name, d.Message.ID, d.Message.Topic, d.Attempts, d.Error))
		}
		failed, err := es.outbox.DeadLetters(ctx, es.db)
		if err != nil {
			return nil, err
		}
		for _, d := range failed {
			out = append(out, fmt.Sprintf("%s: outbox row %d, event %s (%s), FAILED after %d publishes: %s", name, d.Seq, d.Message.ID, d.Message.Topic, d.Attempts, d.Error))
		}
	}
	return out, nil
}

// OutboxBacklog returns the number of events not yet published, per
// service (choreography only).
func (s *Shop) OutboxBacklog() map[string]outbox.Stats {
	out := map[string]outbox.Stats{}
	for name, es := range s.events {
		out[name] = es.relay.Stats()
	}
	return out
}

// withDeadLetters serves the dead-letter routes of service name (see
// deadLetterRoutes) and its event metrics (GET /metrics, see
// metrics.Events) in front of next once the choreography is set up.
func (s *Shop) withDeadLetters(name string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.eventsReady.Load() {
			if es := s.events[name]; es != nil {
				switch {
				case strings.HasPrefix(r.URL.Path, "/events/"):
					es.deadLetterRoutes(next).ServeHTTP(w, r)
					return
				case r.URL.Path == "/metrics" && r.Method == http.MethodGet:
					es.metrics.Handler().ServeHTTP(w, r)
					return
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}
