package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/coordinator"
	"github.com/dtxhq/dtx/internal/problem"
	"github.com/dtxhq/dtx/internal/serve"
	"github.com/dtxhq/dtx/saga"
	"github.com/dtxhq/dtx/server"
	"github.com/dtxhq/dtx/tcc"
	"github.com/dtxhq/dtx/transport/httptransport"
)

// The floor is the least any coordinator built on Go's net/http must do per
// transaction over loopback: read and parse the submission, call the
// participants in the order the transaction's structure asks for, over the
// same HTTP transport and connection pool the coordinator uses, and answer
// the client. It keeps nothing: no store, no engine, no durability, no
// retry, no compensation. `dtx bench --compare --floor` measures a floor
// server next to each dtx server, in the same rounds, so that the
// coordinator's CPU per transaction can be read against it.

// FloorName names the floor's rows in a Compare result.
const FloorName = "floor (HTTP only)"

// FloorHandler answers POST /v1/sagas and POST /v1/tcc as the
// coordinator's API does for a successful transaction submitted with
// wait=true (201 and the transaction's JSON with its branches), after
// calling its participants through tr: the steps whose dependencies have
// succeeded run together, the others after them (a saga's steps one after
// the other; a TCC transaction's tries together, then its confirms
// together). A participant's refusal ends the transaction as failed, with
// no compensation. Bad input gets the same 400 problem as from the
// coordinator.
func FloorHandler(tr dtx.Transport) http.Handler {
	f := &floor{tr: tr, check: func(string) error { return nil }}
	if uc, ok := tr.(dtx.URLChecker); ok {
		f.check = uc.CheckURL
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/sagas", func(w http.ResponseWriter, r *http.Request) {
		var spec saga.Spec
		if err := server.DecodeStrict(w, r, &spec); err != nil {
			problem.Write(w, http.StatusBadRequest, err.Error())
			return
		}
		f.run(w, r, dtx.PatternSaga, spec)
	})
	mux.HandleFunc("POST /v1/tcc", func(w http.ResponseWriter, r *http.Request) {
		var spec tcc.Spec
		if err := server.DecodeStrict(w, r, &spec); err != nil {
			problem.Write(w, http.StatusBadRequest, err.Error())
			return
		}
		sg, err := spec.Saga()
		if err != nil {
			problem.Write(w, http.StatusBadRequest, err.Error())
			return
		}
		f.run(w, r, dtx.PatternTCC, sg)
	})
	return mux
}

type floor struct {
	tr    dtx.Transport
	check func(string) error
	seq   atomic.Int64 // for gids the client left out
}

// run normalizes spec, calls its steps' actions and answers.
func (f *floor) run(w http.ResponseWriter, r *http.Request, pattern dtx.Pattern, spec saga.Spec) {
	if err := spec.Normalize(); err != nil {
		problem.Write(w, http.StatusBadRequest, err.Error())
		return
	}
	for _, st := range spec.Steps {
		for _, u := range []string{st.Action, st.Compensate} {
			if u == "" {
				continue
			}
			if err := f.check(u); err != nil {
				problem.Write(w, http.StatusBadRequest, fmt.Sprintf("%v: %v", dtx.ErrInvalid, err))
				return
			}
		}
	}
	if spec.GID == "" {
		spec.GID = fmt.Sprintf("floor-%d-%d", os.Getpid(), f.seq.Add(1))
	}
	now := time.Now().UTC()
	d := &dtx.TxDetail{Tx: dtx.Tx{GID: spec.GID, Pattern: pattern, Status: dtx.StatusSucceeded, CreatedAt: now},
		Branches: saga.InitialBranches(spec.GID, &spec)}
	if err := f.call(r.Context(), &spec, d.Branches); err != nil {
		d.Status, d.Reason = dtx.StatusFailed, err.Error()
	}
	d.UpdatedAt = time.Now().UTC()
	problem.WriteJSON(w, http.StatusCreated, d)
}

// call runs the steps' actions in waves: every step whose dependencies
// are done, together. It stops at the first wave with a refusal or an
// unknown outcome.
func (f *floor) call(ctx context.Context, spec *saga.Spec, br []dtx.Branch) error {
	done := make([]bool, len(spec.Steps))
	for left := len(spec.Steps); left > 0; {
		var wave []int
		for i := range spec.Steps {
			if done[i] {
				continue
			}
			ready := true
			for _, d := range spec.Deps(i) {
				ready = ready && done[d]
			}
			if ready {
				wave = append(wave, i)
			}
		}
		if len(wave) == 0 {
			return errors.New("floor: no step can run") // Normalize refuses cycles
		}
		outs := make([]dtx.Outcome, len(wave))
		one := func(k int) {
			i := wave[k]
			st := &spec.Steps[i]
			if st.Action == "" {
				outs[k] = dtx.Succeeded(nil)
				return
			}
			outs[k] = f.tr.Call(ctx, dtx.Call{GID: spec.GID, Branch: st.BranchIndex(i), Op: st.WireOp(dtx.OpAction),
				URL: st.Action, Payload: st.Payload, Attempt: 1, Timeout: spec.BranchTimeout.Std()})
		}
		if len(wave) == 1 {
			one(0)
		} else {
			var wg sync.WaitGroup
			for k := range wave {
				wg.Go(func() { one(k) })
			}
			wg.Wait()
		}
		var failed error
		for k, i := range wave {
			done[i] = true
			left--
			if spec.Steps[i].Action == "" {
				continue
			}
			br[i].ActionAttempts = 1
			if outs[k].Class == dtx.Success {
				br[i].Action = dtx.BranchSucceeded
				continue
			}
			br[i].Action = dtx.BranchFailed
			br[i].LastError = fmt.Sprint(outs[k].Err)
			if failed == nil {
				failed = fmt.Errorf("step %d (%s): %v", i, spec.Steps[i].Name, outs[k].Err)
			}
		}
		if failed != nil {
			return failed
		}
	}
	return nil
}

// FloorConfig configures ServeFloor.
type FloorConfig struct {
	// Listen is the address to listen on (127.0.0.1:0: a port the kernel
	// picks).
	Listen string
	// ReadyFile, if set, receives the address listened on once serving.
	ReadyFile string
}

// ServeFloor serves FloorHandler until ctx is done, with the coordinator's
// HTTP settings: its transport (loopback participants only, the
// coordinator's default bound on concurrent calls and connections) and its
// server's timeouts and header limit.
func ServeFloor(ctx context.Context, cfg FloorConfig) error {
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	tr := httptransport.New(nil, httptransport.WithAllowlist(httptransport.LoopbackOnly()), httptransport.WithSelf(ln.Addr().String()))
	tr.LimitConns(coordinator.DefaultMaxCalls)
	srv := &http.Server{
		Handler:           FloorHandler(tr),
		ReadHeaderTimeout: serve.DefaultReadHeaderTimeout,
		ReadTimeout:       serve.DefaultReadTimeout,
		IdleTimeout:       serve.DefaultIdleTimeout,
		MaxHeaderBytes:    serve.DefaultMaxHeaderBytes,
	}
	if cfg.ReadyFile != "" {
		if err := writeReadyFile(cfg.ReadyFile, ln.Addr().String()); err != nil {
			ln.Close()
			return err
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// writeReadyFile writes addr to path atomically (a reader never sees it
// half written).
func writeReadyFile(path, addr string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(addr+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// FloorCommand is the hidden dtx subcommand that runs ServeFloor; Compare
// starts the floor server with it.
const FloorCommand = "bench-floor-server"
