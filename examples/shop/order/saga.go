package order

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/participant"
	"github.com/dtxhq/dtx/saga"
	"github.com/dtxhq/dtx/tcc"
	"github.com/dtxhq/dtx/transport/brokertransport"
)

// Paths of the order service's own saga steps.
const (
	PathSagaComplete = "/orders/saga/complete"
	PathSagaCancel   = "/orders/saga/cancel"
)

// Payloads of the saga steps. Their JSON is the participants' contract;
// the order service keeps its own copy of the types instead of importing
// the other services' packages.
type (
	orderRef struct {
		OrderID int64 `json:"order_id"`
	}
	deductPayload struct {
		OrderID int64  `json:"order_id"`
		Items   []Item `json:"items"`
	}
	chargePayload struct {
		OrderID int64 `json:"order_id"`
		UserID  int64 `json:"user_id"`
		Amount  int64 `json:"amount"`
	}
)

// SagaTopic is the broker topic of a saga step under PatternSagaAsync: its
// HTTP path without the leading '/', with '/' replaced by '-'
// ("/inventory/deduct" -> "inventory-deduct").
func SagaTopic(path string) string {
	return strings.ReplaceAll(strings.Trim(path, "/"), "/", "-")
}

// SagaSpec returns the saga that fulfils o. It depends only on the order
// and the service's configuration, so submitting it again is idempotent.
// An order of PatternSagaAsync gets the same saga with broker://<topic>
// step URLs (SagaTopic of each path) instead of HTTP URLs.
func (s *Service) SagaSpec(o *Order) saga.Spec {
	ref := mustJSON(orderRef{OrderID: o.ID})
	url := func(base, path string) string { return base + path }
	if o.Pattern == PatternSagaAsync {
		url = func(_, path string) string { return brokertransport.URL(SagaTopic(path)) }
	}
	// A DAG rather than a chain, so that the order's cancel depends on no
	// other compensation: the saga is a chain inventory -> payment ->
	// complete, and the "order" step stands beside it. When the saga
	// compensates, the order is CANCELLED at once (the decision shows, F10),
	// while the inventory and payment compensations run in reverse order and
	// are retried until they succeed.
	return saga.Spec{
		GID:      o.GID,
		Parallel: true,
		Steps: []saga.Step{
			// Compensation only, depended on by nothing: cancels the order
			// as soon as the saga decides to compensate.
			{Name: "order", Compensate: url(s.cfg.URL, PathSagaCancel), Payload: ref},
			{
				Name:       "inventory",
				Action:     url(s.cfg.InventoryURL, "/inventory/deduct"),
				Compensate: url(s.cfg.InventoryURL, "/inventory/deduct/cancel"),
				Payload:    mustJSON(deductPayload{OrderID: o.ID, Items: o.Items}),
			},
			{
				Name:       "payment",
				Action:     url(s.cfg.PaymentURL, "/payment/charge"),
				Compensate: url(s.cfg.PaymentURL, "/payment/charge/cancel"),
				Payload:    mustJSON(chargePayload{OrderID: o.ID, UserID: o.UserID, Amount: o.Total}),
				After:      []int{1},
			},
			// No compensation: runs after the steps above succeeded and is
			// retried until it does.
			{Name: "complete", Action: url(s.cfg.URL, PathSagaComplete), Payload: ref, After: []int{1, 2}},
		},
		Timeout:       dtx.Duration(s.cfg.SagaTimeout),
		BranchTimeout: dtx.Duration(s.cfg.BranchTimeout),
	}
}

// TCCSpec returns the TCC transaction that fulfils o: the inventory and
// payment reserve stock and money (try), then both reservations are
// confirmed and the order completed, or every reservation that was (or may
// have been) made is cancelled and the order cancelled. Like SagaSpec it
// depends only on the order and the configuration. With
// Config.SequentialTCC the tries, then the confirms, run one after another
// (inventory, then payment), as in the seeds.
func (s *Service) TCCSpec(o *Order) tcc.Spec {
	spec := s.tryConfirmCancel(o, "reserve", "reserve/confirm", "reserve/cancel", s.cfg.SequentialTCC)
	spec.SequentialConfirms = s.cfg.SequentialTCC
	spec.OnConfirmFailure = s.cfg.TCCOnConfirmFailure
	return spec
}

// XASpec returns the two-phase commit transaction that fulfils o: the
// inventory, then the payment, prepare the deduction and the charge as XA
// branches of their databases (in that order, so that every transaction
// locks stock before money and none can wait on another in a cycle); then
// both are committed and the order completed, or every prepared branch is
// rolled back and the order cancelled. Unlike TCC, nothing is visible to
// other transactions before the commit, and there is no reserved state.
func (s *Service) XASpec(o *Order) tcc.Spec {
	return s.tryConfirmCancel(o, "xa/prepare", "xa/commit", "xa/rollback", true)
}

// tryConfirmCancel is the transaction of TCCSpec and XASpec: the order as a
// confirm/cancel-only participant, then the inventory and the payment with
// their try, confirm and cancel endpoints under /inventory/ and /payment/.
func (s *Service) tryConfirmCancel(o *Order, try, confirm, cancel string, sequential bool) tcc.Spec {
	ref := mustJSON(orderRef{OrderID: o.ID})
	participant := func(name, base string, payload any) tcc.Participant {
		prefix := base + "/" + name + "/"
		return tcc.Participant{Name: name, Try: prefix + try, Confirm: prefix + confirm, Cancel: prefix + cancel, Payload: mustJSON(payload)}
	}
	return tcc.Spec{
		GID:        o.GID,
		Sequential: sequential,
		Participants: []tcc.Participant{
			// No try: cancels the order when the transaction is cancelled,
			// completes it when it is confirmed.
			{Name: "order", Cancel: s.cfg.URL + PathSagaCancel, Confirm: s.cfg.URL + PathSagaComplete, Payload: ref},
			participant("inventory", s.cfg.InventoryURL, deductPayload{OrderID: o.ID, Items: o.Items}),
			participant("payment", s.cfg.PaymentURL, chargePayload{OrderID: o.ID, UserID: o.UserID, Amount: o.Total}),
		},
		Timeout:       dtx.Duration(s.cfg.SagaTimeout),
		BranchTimeout: dtx.Duration(s.cfg.BranchTimeout),
	}
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain structs of integers always marshal
	}
	return b
}

// submit hands the order's transaction (a saga or a TCC transaction, per
// the order's pattern) to the coordinator and reports whether the
// coordinator took it (and, with wait, whether it finished). On success it
// records the submission time, which keeps Run from resubmitting too soon.
func (s *Service) submit(ctx context.Context, o *Order, wait bool) bool {
	if o.Pattern == PatternChoreography {
		// Nothing to submit: the order's event is in the outbox.
		return !wait || s.waitFinal(ctx, o.ID)
	}
	if s.cfg.Coordinator == nil {
		// Placed under another pattern before a restart without a
		// coordinator: it waits, PENDING, until one is configured again.
		s.log.WarnContext(ctx, "no coordinator to submit the order's transaction to", "gid", o.GID, "pattern", o.Pattern)
		return false
	}
	if wait {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.WaitTimeout)
		defer cancel()
	}
	var (
		tx  *dtx.TxDetail
		err error
	)
	switch o.Pattern {
	case PatternTCC:
		tx, err = s.cfg.Coordinator.SubmitTCC(ctx, s.TCCSpec(o), wait)
	case PatternXA:
		tx, err = s.cfg.Coordinator.SubmitXA(ctx, s.XASpec(o), wait)
	default:
		tx, err = s.cfg.Coordinator.SubmitSaga(ctx, s.SagaSpec(o), wait)
	}
	switch {
	case errors.Is(err, dtx.ErrConflict):
		// The coordinator holds this gid with other content (for instance,
		// submitted before a restart on other ports). That saga drives the
		// order; resubmitting cannot help.
		s.log.WarnContext(ctx, "saga exists with different content", "gid", o.GID, "err", err)
	case err != nil:
		s.log.WarnContext(ctx, "submit saga; will resubmit later", "gid", o.GID, "err", err)
		return false
	}
	bg := context.WithoutCancel(ctx)
	if _, err := s.db.ExecContext(bg, `UPDATE orders SET submitted_at = $1 WHERE id = $2`,
		time.Now().UnixMilli(), o.ID); err != nil {
		s.log.WarnContext(ctx, "record saga submission", "gid", o.GID, "err", err)
	}
	if tx != nil && tx.Status == dtx.StatusFailed && tx.Reason != "" {
		// The cancel step cannot know why the saga failed; the coordinator
		// does. Keep the more useful reason on the cancelled order.
		if _, err := s.db.ExecContext(bg, `UPDATE orders SET reason = $1 WHERE id = $2 AND status = $3`,
			tx.Reason, o.ID, Cancelled); err != nil {
			s.log.WarnContext(ctx, "record cancel reason", "gid", o.GID, "err", err)
		}
	}
	return !wait || (tx != nil && tx.Status.Terminal())
}

// waitFinal waits until the order leaves PENDING or Config.WaitTimeout
// passes, and reports whether it did.
func (s *Service) waitFinal(ctx context.Context, id int64) bool {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.WaitTimeout)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		var st Status
		if err := s.db.QueryRowContext(ctx, `SELECT status FROM orders WHERE id = $1`, id).Scan(&st); err == nil && st != Pending {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
}

// complete is the action of the saga's "complete" step, and the confirm of
// the TCC "order" participant: PENDING -> COMPLETED. Repeating it is
// harmless; completing a cancelled order is refused.
func (s *Service) complete(ctx context.Context, br participant.Branch, body []byte) (any, error) {
	if br.Op != dtx.OpAction && br.Op != dtx.OpConfirm {
		return nil, dtx.Permanentf("order: complete takes Dtx-Op %s or %s, not %q", dtx.OpAction, dtx.OpConfirm, br.Op)
	}
	return s.transition(ctx, s.db, br.GID, body, Completed, "")
}

// cancel is the compensation of the saga's "order" step, and the cancel of
// the TCC "order" participant: PENDING -> CANCELLED.
func (s *Service) cancel(ctx context.Context, br participant.Branch, body []byte) (any, error) {
	if br.Op != dtx.OpCompensate && br.Op != dtx.OpCancel {
		return nil, dtx.Permanentf("order: cancel takes Dtx-Op %s or %s, not %q", dtx.OpCompensate, dtx.OpCancel, br.Op)
	}
	return s.transition(ctx, s.db, br.GID, body, Cancelled, "cancelled by saga "+br.GID)
}

// querier is what transition needs: *sql.DB or *sql.Tx.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// transition moves an order out of PENDING. These two steps need no
// barrier: the guarded UPDATE is itself idempotent, and step 0 has no
// action, so a barrier would take its compensation for a null one.
func (s *Service) transition(ctx context.Context, db querier, gid string, body []byte, to Status, reason string) (any, error) {
	var ref orderRef
	if err := json.Unmarshal(body, &ref); err != nil || ref.OrderID <= 0 {
		return nil, dtx.Permanentf("order: malformed payload %q", body)
	}
	res, err := db.ExecContext(ctx,
		`UPDATE orders SET status = $1, reason = $2, updated_at = $3 WHERE id = $4 AND gid = $5 AND status = $6`,
		to, reason, time.Now().UnixMilli(), ref.OrderID, gid, Pending)
	if err != nil {
		return nil, fmt.Errorf("update order %d: %w", ref.OrderID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return nil, err
	} else if n == 1 {
		return map[string]any{"order_id": ref.OrderID, "status": to}, nil
	}

	// Nothing moved: find out why.
	var status Status
	var owner string
	err = db.QueryRowContext(ctx, `SELECT status, gid FROM orders WHERE id = $1`, ref.OrderID).Scan(&status, &owner)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if to == Cancelled {
			return map[string]any{"order_id": ref.OrderID}, nil // nothing to cancel
		}
		return nil, dtx.Permanentf("order: no order %d", ref.OrderID)
	case err != nil:
		return nil, fmt.Errorf("read order %d: %w", ref.OrderID, err)
	case owner != gid:
		return nil, dtx.Permanentf("order: order %d belongs to transaction %s, not %s", ref.OrderID, owner, gid)
	case status == to:
		return map[string]any{"order_id": ref.OrderID, "status": status}, nil // repeated call
	case to == Completed:
		return nil, dtx.Permanentf("order: order %d is %s and cannot complete", ref.OrderID, status)
	default:
		// A compensation must not fail, and a completed order must not be
		// cancelled (its saga is past the pivot): keep it, and say so.
		s.log.ErrorContext(ctx, "cancel of a completed order ignored", "order_id", ref.OrderID, "gid", gid)
		return map[string]any{"order_id": ref.OrderID, "status": status}, nil
	}
}
