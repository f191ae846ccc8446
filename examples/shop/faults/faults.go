package faults

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/internal/problem"
)

// Kind is a kind of injected fault.
type Kind string

// Fault kinds.
const (
	Fail  Kind = "fail"
	Delay Kind = "delay"
	Lose  Kind = "lose"
)

// AllKinds lists every fault kind.
var AllKinds = []Kind{Fail, Delay, Lose}

// DefaultDelay is the longest delay when Config.Delay is zero.
const DefaultDelay = time.Second

// ParseKinds parses a comma-separated list such as "fail,delay,lose".
// "all" means every kind; an empty string means none.
func ParseKinds(s string) ([]Kind, error) {
	var kinds []Kind
	for _, f := range strings.Split(s, ",") {
		switch k := Kind(strings.TrimSpace(f)); k {
		case "":
		case "all":
			kinds = append(kinds, AllKinds...)
		case Fail, Delay, Lose:
			kinds = append(kinds, k)
		default:
			return nil, fmt.Errorf("faults: unknown kind %q (want fail, delay, lose or all)", k)
		}
	}
	return kinds, nil
}

// Config says which calls to fault and how.
type Config struct {
	// Rate is the probability, from 0 to 1, that a branch call is faulted.
	// Zero disables injection.
	Rate float64
	// Kinds to choose from, uniformly (default AllKinds).
	Kinds []Kind
	// Delay is the longest delay of a Delay fault (default DefaultDelay).
	Delay time.Duration
	// MinDelay is the shortest delay of a Delay fault (default 0); it is
	// capped at Delay.
	MinDelay time.Duration
	// Ops restricts injection to branch calls whose Dtx-Op is listed, for
	// instance only TCC confirms (default: every branch call).
	Ops []dtx.Op
	// Max stops injection after Max faults (default 0: no limit).
	Max int64
	// Seed seeds the random choices.
	Seed int64
}

// Stats counts branch calls seen and faults injected.
type Stats struct {
	Calls int64 `json:"calls"`
	Fail  int64 `json:"fail"`
	Delay int64 `json:"delay"`
	Lose  int64 `json:"lose"`
	// Late counts delayed calls not finished yet (tests wait for it to
	// drop to zero: every late call has been handled).
	Late int64 `json:"late,omitempty"`
}

// Faults is the number of injected faults of all kinds.
func (s Stats) Faults() int64 { return s.Fail + s.Delay + s.Lose }

// Injector injects faults. The zero value and nil inject nothing. It is
// safe for concurrent use.
type Injector struct {
	cfg Config

	mu  sync.Mutex // guards rng
	rng *rand.Rand

	calls, fail, delay, lose, late atomic.Int64
	injected                       int64 // guarded by mu
}

// New returns an injector for cfg.
func New(cfg Config) (*Injector, error) {
	if cfg.Rate < 0 || cfg.Rate > 1 {
		return nil, fmt.Errorf("faults: rate %v is not between 0 and 1", cfg.Rate)
	}
	if len(cfg.Kinds) == 0 {
		cfg.Kinds = AllKinds
	}
	for _, k := range cfg.Kinds {
		if k != Fail && k != Delay && k != Lose {
			return nil, fmt.Errorf("faults: unknown kind %q", k)
		}
	}
	if cfg.Delay <= 0 {
		cfg.Delay = DefaultDelay
	}
	if cfg.MinDelay < 0 || cfg.Max < 0 {
		return nil, fmt.Errorf("faults: negative MinDelay or Max")
	}
	cfg.MinDelay = min(cfg.MinDelay, cfg.Delay)
	seed := uint64(cfg.Seed)
	return &Injector{cfg: cfg, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}, nil
}

// Stats returns the counts so far.
func (in *Injector) Stats() Stats {
	if in == nil {
		return Stats{}
	}
	return Stats{Calls: in.calls.Load(), Fail: in.fail.Load(), Delay: in.delay.Load(), Lose: in.lose.Load(), Late: in.late.Load()}
}

// decision is what to do with one call, drawn under the lock.
type decision struct {
	kind  Kind // "" for no fault
	delay time.Duration
	drop  bool // Lose: drop the connection instead of answering 500
}

func (in *Injector) decide() decision {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cfg.Max > 0 && in.injected >= in.cfg.Max {
		return decision{}
	}
	if in.rng.Float64() >= in.cfg.Rate {
		return decision{}
	}
	in.injected++
	return decision{
		kind:  in.cfg.Kinds[in.rng.IntN(len(in.cfg.Kinds))],
		delay: in.cfg.MinDelay + time.Duration(in.rng.Int64N(int64(in.cfg.Delay-in.cfg.MinDelay)+1)),
		drop:  in.rng.IntN(2) == 0,
	}
}

// targets reports whether a branch call with op is subject to injection.
func (in *Injector) targets(op dtx.Op) bool {
	return len(in.cfg.Ops) == 0 || slices.Contains(in.cfg.Ops, op)
}

// Wrap returns next with faults injected into its branch calls.
func (in *Injector) Wrap(next http.Handler) http.Handler {
	if in == nil || in.cfg.Rate == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(dtx.HeaderGID) == "" || !in.targets(dtx.Op(r.Header.Get(dtx.HeaderOp))) {
			next.ServeHTTP(w, r)
			return
		}
		in.calls.Add(1)
		d := in.decide()
		switch d.kind {
		case Fail:
			in.fail.Add(1)
			problem.Write(w, http.StatusServiceUnavailable, "injected fault: fail")
		case Delay:
			in.delay.Add(1)
			in.late.Add(1)
			defer in.late.Add(-1)
			time.Sleep(d.delay)
			// Finish even if the caller has gone: that is the late call.
			next.ServeHTTP(w, r.WithContext(context.WithoutCancel(r.Context())))
		case Lose:
			in.lose.Add(1)
			next.ServeHTTP(discard{h: http.Header{}}, r.WithContext(context.WithoutCancel(r.Context())))
			if d.drop {
				panic(http.ErrAbortHandler) // the server closes the connection, unanswered
			}
			problem.Write(w, http.StatusInternalServerError, "injected fault: response lost")
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// discard is a ResponseWriter that throws the response away.
type discard struct{ h http.Header }

func (d discard) Header() http.Header         { return d.h }
func (d discard) Write(b []byte) (int, error) { return len(b), nil }
func (d discard) WriteHeader(int)             {}

// WrapHandler returns h with faults injected into its deliveries (the
// choreographed shop's event consumers): Fail refuses the delivery before h
// runs, Delay runs h late, Lose runs h and then reports a failure, as if the
// acknowledgement were lost. Failed deliveries are redelivered by the broker;
// the inbox makes the lost acknowledgement's redelivery a no-op.
func (in *Injector) WrapHandler(h broker.Handler) broker.Handler {
	if in == nil || in.cfg.Rate == 0 {
		return h
	}
	return func(ctx context.Context, d broker.Delivery) error {
		in.calls.Add(1)
		switch dec := in.decide(); dec.kind {
		case Fail:
			in.fail.Add(1)
			return errors.New("injected fault: fail")
		case Delay:
			in.delay.Add(1)
			select {
			case <-time.After(dec.delay):
			case <-ctx.Done():
				return ctx.Err()
			}
		case Lose:
			in.lose.Add(1)
			if err := h(ctx, d); err != nil {
				return err
			}
			return errors.New("injected fault: acknowledgement lost")
		}
		return h(ctx, d)
	}
}
