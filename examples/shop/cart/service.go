package cart

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/eventstore"
	"github.com/dtxhq/dtx/examples/shop/order"
)

// Errors of the commands. A *eventstore.ConflictError (errors.Is
// eventstore.ErrConflict) means the cart changed since the version the
// client sent.
var (
	// ErrInvalid: a malformed command (HTTP 400).
	ErrInvalid = errors.New("cart: invalid command")
	// ErrNotFound: no such cart (HTTP 404).
	ErrNotFound = errors.New("cart: not found")
	// ErrExists: a cart with this id exists already (HTTP 409).
	ErrExists = errors.New("cart: exists already")
	// ErrState: the command does not apply to the cart as it is (checked
	// out, empty, without shipping info, without that product) (HTTP 409).
	ErrState = errors.New("cart: not allowed in the cart's state")
	// ErrRejected: the order service refused the cart's order as invalid;
	// the cart is open again (HTTP 422).
	ErrRejected = errors.New("cart: order rejected")
	// ErrOrderService: the order service did not answer; checkout again
	// later, it places the same order (HTTP 502).
	ErrOrderService = errors.New("cart: order service unavailable")
)

// Limits of a command.
const (
	MaxIDLen       = 64
	MaxLines       = order.MaxItems
	MaxQuantity    = order.MaxQuantity
	MaxShippingLen = 500
)

var idPattern = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// Orders is the order service as checkout uses it; *order.Client
// implements it.
type Orders interface {
	// Place places an order under an idempotency key; with wait it returns
	// once the order is final (or the service's wait timeout passed). A
	// refused order is returned as a CANCELLED order, not an error.
	Place(ctx context.Context, req order.PlaceRequest, idemKey string, wait bool) (*order.Order, error)
	// Get reads one order.
	Get(ctx context.Context, id int64) (*order.Order, error)
}

// Config configures a Service.
type Config struct {
	// Store is the command side: the carts' events. Required.
	Store *eventstore.Store
	// QueryDB holds the read model (SQLite or PostgreSQL, QueryDialect);
	// it may be another database than the store's. Required.
	QueryDB      *sql.DB
	QueryDialect appdb.Dialect
	// Orders places the carts' orders. Required.
	Orders Orders
	// ProjectionPoll is how often the read model looks for events it was
	// not told about (default 500ms; the service's own commands wake it).
	ProjectionPoll time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Service runs the carts' commands and queries.
type Service struct {
	cfg   Config
	store *eventstore.Store
	rm    *ReadModel
}

// New returns a Service. Call Migrate, then Run the read model's
// projection (Service.Run) next to serving Handler.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.QueryDB == nil || cfg.Orders == nil {
		return nil, errors.New("cart: Config.Store, QueryDB and Orders are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	rm, err := NewReadModel(cfg.Store, cfg.QueryDB, cfg.QueryDialect, cfg.ProjectionPoll, cfg.Logger)
	if err != nil {
		return nil, err
	}
	return &Service{cfg: cfg, store: cfg.Store, rm: rm}, nil
}

// Migrate creates the event store's and the read model's tables.
func (s *Service) Migrate(ctx context.Context) error {
	if err := s.store.Migrate(ctx); err != nil {
		return err
	}
	return s.rm.Migrate(ctx)
}

// Run keeps the read model up to date until ctx is done.
func (s *Service) Run(ctx context.Context) error { return s.rm.Runner().Run(ctx) }

// ReadModel returns the service's read model.
func (s *Service) ReadModel() *ReadModel { return s.rm }

// Store returns the service's event store.
func (s *Service) Store() *eventstore.Store { return s.store }

// Load folds the events of cart id into its state. A cart that does not
// exist has the zero state (Exists false).
func (s *Service) Load(ctx context.Context, id string) (Cart, error) {
	c, v, err := eventstore.Load(ctx, s.store, Stream(id), Cart{}, Fold)
	c.Version = v
	return c, err
}

// Events returns the events of cart id, in version order.
func (s *Service) Events(ctx context.Context, id string) ([]eventstore.Event, error) {
	var out []eventstore.Event
	for {
		evs, err := s.store.ReadStream(ctx, Stream(id), int64(len(out))+1, 0)
		if err != nil {
			return nil, err
		}
		out = append(out, evs...)
		if len(evs) < eventstore.DefaultLimit {
			return out, nil
		}
	}
}

// NewID returns a random cart id.
func NewID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func checkID(id string) error {
	if len(id) == 0 || len(id) > MaxIDLen || !idPattern.MatchString(id) {
		return fmt.Errorf("%w: a cart id has 1 to %d characters of A-Z a-z 0-9 . _ -", ErrInvalid, MaxIDLen)
	}
	return nil
}

// Create opens cart id (NewID when empty) for userID.
func (s *Service) Create(ctx context.Context, id string, userID int64) (Cart, error) {
	if id == "" {
		id = NewID()
	}
	if err := checkID(id); err != nil {
		return Cart{}, err
	}
	if userID <= 0 {
		return Cart{}, fmt.Errorf("%w: user_id must be positive", ErrInvalid)
	}
	evs, err := s.store.Append(ctx, Stream(id), eventstore.NoStream, event(CartCreated, CreatedData{CartID: id, UserID: userID}))
	if errors.Is(err, eventstore.ErrConflict) {
		return Cart{}, fmt.Errorf("%w: cart %q", ErrExists, id)
	}
	if err != nil {
		return Cart{}, err
	}
	s.rm.Runner().Notify()
	return foldAll(Cart{}, evs)
}

// AddItem adds quantity of product to an open cart. expected is the
// version the client saw, or eventstore.AnyVersion.
func (s *Service) AddItem(ctx context.Context, id string, expected, product, quantity int64) (Cart, error) {
	if product <= 0 || quantity < 1 || quantity > MaxQuantity {
		return Cart{}, fmt.Errorf("%w: product_id must be positive and quantity between 1 and %d", ErrInvalid, MaxQuantity)
	}
	return s.command(ctx, id, expected, func(c Cart) ([]eventstore.EventData, error) {
		if err := open(c); err != nil {
			return nil, err
		}
		have := int64(0)
		for _, l := range c.Lines {
			if l.ProductID == product {
				have = l.Quantity
			}
		}
		if have == 0 && len(c.Lines) >= MaxLines {
			return nil, fmt.Errorf("%w: a cart holds at most %d products", ErrState, MaxLines)
		}
		if have+quantity > MaxQuantity {
			return nil, fmt.Errorf("%w: at most %d of product %d", ErrState, MaxQuantity, product)
		}
		return []eventstore.EventData{event(ItemAdded, ItemData{ProductID: product, Quantity: quantity})}, nil
	})
}

// RemoveItem removes product's line from an open cart.
func (s *Service) RemoveItem(ctx context.Context, id string, expected, product int64) (Cart, error) {
	return s.command(ctx, id, expected, func(c Cart) ([]eventstore.EventData, error) {
		if err := open(c); err != nil {
			return nil, err
		}
		for _, l := range c.Lines {
			if l.ProductID == product {
				return []eventstore.EventData{event(ItemRemoved, ItemData{ProductID: product})}, nil
			}
		}
		return nil, fmt.Errorf("%w: product %d is not in the cart", ErrState, product)
	})
}

// AddShipping sets (or replaces) an open cart's shipping info.
func (s *Service) AddShipping(ctx context.Context, id string, expected int64, sh Shipping) (Cart, error) {
	if sh.Name == "" || sh.Address == "" || len(sh.Name) > MaxShippingLen || len(sh.Address) > MaxShippingLen {
		return Cart{}, fmt.Errorf("%w: shipping needs a name and an address of at most %d bytes", ErrInvalid, MaxShippingLen)
	}
	return s.command(ctx, id, expected, func(c Cart) ([]eventstore.EventData, error) {
		if err := open(c); err != nil {
			return nil, err
		}
		return []eventstore.EventData{event(ShippingInfoAdded, sh)}, nil
	})
}

func open(c Cart) error {
	if c.Status != StatusOpen {
		return fmt.Errorf("%w: cart %s is %s", ErrState, c.ID, c.Status)
	}
	return nil
}

// maxRaces bounds how often a command reloads after losing a race it did
// not ask to detect (no expected version).
const maxRaces = 20

// command loads the cart, lets decide choose the events and appends them
// at the loaded version; without an expected version a lost race loads
// and decides again.
func (s *Service) command(ctx context.Context, id string, expected int64, decide func(Cart) ([]eventstore.EventData, error)) (Cart, error) {
	if err := checkID(id); err != nil {
		return Cart{}, err
	}
	for range maxRaces {
		c, err := s.Load(ctx, id)
		if err != nil {
			return Cart{}, err
		}
		if !c.Exists() {
			return Cart{}, fmt.Errorf("%w: cart %q", ErrNotFound, id)
		}
		if expected >= 0 && expected != c.Version {
			return c, &eventstore.ConflictError{Stream: Stream(id), Expected: expected, Actual: c.Version}
		}
		evs, err := decide(c)
		if err != nil {
			return c, err
		}
		out, err := s.store.Append(ctx, Stream(id), c.Version, evs...)
		if errors.Is(err, eventstore.ErrConflict) && expected < 0 {
			continue
		}
		if err != nil {
			return c, err
		}
		s.rm.Runner().Notify()
		return foldAll(c, out)
	}
	return Cart{}, fmt.Errorf("cart %q: lost the race to %d other writers", id, maxRaces)
}

// Checkout places the order of cart id through the order service and
// returns the cart and its order. It is idempotent: a cart checked out
// already returns its order (recording its outcome, OrderSettled, once it
// is final). expected, if not eventstore.AnyVersion, must be the version
// of an open cart; it is not checked once checkout has begun.
func (s *Service) Checkout(ctx context.Context, id string, expected int64) (Cart, *order.Order, error) {
	if err := checkID(id); err != nil {
		return Cart{}, nil, err
	}
	for range maxRaces {
		c, err := s.Load(ctx, id)
		if err != nil {
			return Cart{}, nil, err
		}
		var evs []eventstore.EventData
		var o *order.Order
		switch c.Status {
		case "":
			return c, nil, fmt.Errorf("%w: cart %q", ErrNotFound, id)
		case StatusOpen:
			if expected >= 0 && expected != c.Version {
				return c, nil, &eventstore.ConflictError{Stream: Stream(id), Expected: expected, Actual: c.Version}
			}
			if len(c.Lines) == 0 {
				return c, nil, fmt.Errorf("%w: cart %s is empty", ErrState, id)
			}
			if c.Shipping == nil {
				return c, nil, fmt.Errorf("%w: cart %s has no shipping info", ErrState, id)
			}
			key := Stream(id) + "-" + strconv.FormatInt(c.Version+1, 10)
			evs = []eventstore.EventData{event(CheckoutRequested, CheckoutData{Key: key, Lines: c.Lines})}
		case StatusCheckingOut:
			req := order.PlaceRequest{UserID: c.UserID}
			for _, l := range c.Lines {
				req.Items = append(req.Items, order.Item{ProductID: l.ProductID, Quantity: l.Quantity})
			}
			o, err = s.cfg.Orders.Place(ctx, req, c.CheckoutKey, true)
			var he *order.HTTPError
			if errors.As(err, &he) && (he.Status == http.StatusBadRequest || he.Status == http.StatusUnprocessableEntity) {
				reason := he.Detail
				evs = []eventstore.EventData{event(CheckoutRejected, RejectedData{Reason: reason})}
				out, aerr := s.store.Append(ctx, Stream(id), c.Version, evs...)
				if errors.Is(aerr, eventstore.ErrConflict) {
					continue
				}
				if aerr != nil {
					return c, nil, aerr
				}
				s.rm.Runner().Notify()
				c, _ = foldAll(c, out)
				return c, nil, fmt.Errorf("%w: %s", ErrRejected, reason)
			}
			if err != nil {
				return c, nil, fmt.Errorf("%w: %v", ErrOrderService, err)
			}
			evs = append(evs, event(CheckedOut, CheckedOutData{OrderID: o.ID, UserID: o.UserID, Total: o.Total, Items: o.Items}))
			evs = append(evs, settled(o)...)
		case StatusCheckedOut:
			if o, err = s.cfg.Orders.Get(ctx, c.OrderID); err != nil {
				return c, nil, fmt.Errorf("%w: %v", ErrOrderService, err)
			}
			evs = settled(o)
		default:
			if o, err = s.cfg.Orders.Get(ctx, c.OrderID); err != nil {
				return c, nil, fmt.Errorf("%w: %v", ErrOrderService, err)
			}
		}
		if len(evs) == 0 {
			return c, o, nil
		}
		out, err := s.store.Append(ctx, Stream(id), c.Version, evs...)
		if errors.Is(err, eventstore.ErrConflict) {
			continue // another checkout got there first: look again
		}
		if err != nil {
			return c, nil, err
		}
		s.rm.Runner().Notify()
		if c, err = foldAll(c, out); err != nil || o != nil {
			return c, o, err
		}
	}
	return Cart{}, nil, fmt.Errorf("cart %q: lost the race to %d other writers", id, maxRaces)
}

// settled is the OrderSettled event of a final order, none for a pending
// one.
func settled(o *order.Order) []eventstore.EventData {
	var st Status
	switch o.Status {
	case order.Completed:
		st = StatusCompleted
	case order.Cancelled:
		st = StatusCancelled
	default:
		return nil
	}
	return []eventstore.EventData{event(OrderSettled, SettledData{OrderID: o.ID, Status: st, Reason: o.Reason})}
}

func event(typ string, data any) eventstore.EventData {
	b, err := json.Marshal(data)
	if err != nil {
		panic(err) // the payload types always encode
	}
	return eventstore.EventData{Type: typ, Data: b}
}

func foldAll(c Cart, evs []eventstore.Event) (Cart, error) {
	var err error
	for _, e := range evs {
		if c, err = Fold(c, e); err != nil {
			return c, err
		}
	}
	return c, nil
}
