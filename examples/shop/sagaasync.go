package shop

import (
	"context"
	"errors"
	"fmt"

	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/callsig"
	"github.com/dtxhq/dtx/examples/shop/faults"
	"github.com/dtxhq/dtx/examples/shop/inventory"
	"github.com/dtxhq/dtx/examples/shop/order"
	"github.com/dtxhq/dtx/examples/shop/payment"
	"github.com/dtxhq/dtx/participant"
	"github.com/dtxhq/dtx/transport/brokertransport"
)

// Asynchronous orchestration (order.PatternSagaAsync): the coordinator
// sends the saga's branch calls as commands over the broker (a coordinator
// with a brokertransport.Transport) and each service answers them from the
// topics below, running the same handlers as its HTTP endpoints.

// subscribeSagaAsync serves each service's saga steps from the broker
// topics the order service's saga names (order.SagaTopic of each path),
// one consumer group per service, with the service's faults injected into
// the deliveries of the commands still awaited (an expired command is
// skipped at once, as brokertransport.CommandHandler would). With a
// verifier v, commands not signed by the coordinator are answered 401.
func (s *Shop) subscribeSagaAsync(ctx context.Context, b broker.Broker, v *callsig.Verifier) error {
	for _, svc := range []struct {
		name     string
		handlers map[string]participant.BranchFunc
		paths    []string
		faults   *faults.Injector
	}{
		{"order", s.Orders.BranchHandlers(), []string{order.PathSagaCancel, order.PathSagaComplete}, s.orderFaults},
		{"inventory", s.Inventory.BranchHandlers(), []string{inventory.PathDeduct, inventory.PathDeductCancel}, s.inventoryFaults},
		{"payment", s.Payment.BranchHandlers(), []string{payment.PathCharge, payment.PathChargeCancel}, s.paymentFaults},
	} {
		for _, path := range svc.paths {
			fn := svc.handlers[path]
			if fn == nil {
				return fmt.Errorf("shop: %s has no branch handler for %s", svc.name, path)
			}
			topic := order.SagaTopic(path)
			h := svc.faults.WrapHandler(brokertransport.CommandHandler(b, fn, brokertransport.RequireSignature(v)))
			sub, err := b.Subscribe(ctx, topic, svc.name, func(ctx context.Context, d broker.Delivery) error {
				if brokertransport.CommandExpired(d) {
					return nil // nobody waits for it: no fault to inject
				}
				return h(ctx, d)
			})
			if err != nil {
				return fmt.Errorf("shop: %s subscribe %s: %w", svc.name, topic, err)
			}
			s.sagaSubs = append(s.sagaSubs, sub)
		}
	}
	return nil
}

// closeSagaAsync stops serving the saga's commands; running handlers
// finish first.
func (s *Shop) closeSagaAsync() error {
	var errs []error
	for _, sub := range s.sagaSubs {
		errs = append(errs, sub.Close())
	}
	s.sagaSubs = nil
	return errors.Join(errs...)
}
