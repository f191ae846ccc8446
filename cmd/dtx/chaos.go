package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/dtxhq/dtx/internal/chaos"
)

func runChaos(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dtx chaos", flag.ContinueOnError)
	duration := fs.Duration("duration", time.Minute, "how long the load and the faults last (at least 10s)")
	pattern := fs.String("pattern", chaos.PatternMixed, "saga, tcc, choreography, or mixed (the shop switches pattern at each restart)")
	storeKind := fs.String("store", "sqlite", "coordinators' store and services' databases: sqlite (files in the work directory) or postgres-temp (a throwaway PostgreSQL from the installed binaries)")
	topology := fs.String("topology", chaos.TopologySingle, "single (one store, embedded NATS) or ha (store and services' databases on a throwaway pg_auto_failover cluster, with PostgreSQL failovers and coordinator-store partitions among the faults; replaces --store)")
	coordinators := fs.Int("coordinators", 1, "coordinator processes sharing the store (more than one needs --store postgres-temp)")
	rate := fs.Float64("rate", 20, "orders placed per second (open loop)")
	concurrency := fs.Int("concurrency", 0, "if set, that many clients each wait for an order's outcome before the next (closed loop; replaces --rate)")
	faultRate := fs.Float64("faults", 0.2, "share of branch calls and event deliveries the shop faults (fail, delay, lose)")
	seed := fs.Uint64("seed", 1, "seed of the orders, the fault plan and the shop's injectors")
	dir := fs.String("dir", "", "work directory: databases, NATS files, process logs (default: temporary, removed afterwards unless the run fails)")
	quiesce := fs.Duration("quiesce-timeout", 2*time.Minute, "how long to wait for recovery once the faults stop")
	asJSON := fs.Bool("json", false, "print the result as one JSON line on stdout (the table goes to stderr)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case !slices.Contains(chaos.Patterns, *pattern):
		return usagef("pattern %q is not available (available: %s)", *pattern, strings.Join(chaos.Patterns, ", "))
	case !slices.Contains(chaos.Topologies, *topology):
		return usagef("topology %q is not available (available: %s)", *topology, strings.Join(chaos.Topologies, ", "))
	case *topology == chaos.TopologyHA && flagSet(fs, "store"):
		return usagef("--topology ha puts the store on its own PostgreSQL cluster; drop --store")
	case *storeKind != "sqlite" && *storeKind != "postgres-temp":
		return usagef("store %q: want sqlite or postgres-temp", *storeKind)
	case *duration < 10*time.Second || *duration > 24*time.Hour:
		return usagef("duration must be between 10s and 24h")
	case *coordinators < 1 || *coordinators > 8:
		return usagef("coordinators must be between 1 and 8")
	case *coordinators > 1 && *storeKind != "postgres-temp" && *topology != chaos.TopologyHA:
		return usagef("--coordinators %d needs --store postgres-temp (coordinators share a PostgreSQL store)", *coordinators)
	case *topology == chaos.TopologyHA && *pattern == chaos.PatternChoreography:
		return usagef("--topology ha faults the coordinators' store; it needs saga, tcc or mixed")
	case *coordinators > 1 && *pattern == chaos.PatternChoreography:
		return usagef("the choreography pattern runs no coordinator; --coordinators needs saga, tcc or mixed")
	case *rate <= 0 || *rate > 2000:
		return usagef("rate must be between 0 and 2000 orders/s")
	case *concurrency < 0 || *concurrency > 512:
		return usagef("concurrency must be between 0 and 512")
	case *faultRate < 0 || *faultRate > 0.9:
		return usagef("faults must be a rate between 0 and 0.9")
	case *quiesce <= 0:
		return usagef("quiesce-timeout must be positive")
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find the dtx binary to run its processes: %w", err)
	}
	work, keep, err := workDir(*dir, "dtx-chaos-")
	if err != nil {
		return err
	}
	out := io.Writer(os.Stdout)
	if *asJSON {
		out = os.Stderr
	}
	cfg := chaos.Config{
		Exe: exe, Dir: work, Duration: *duration, Pattern: *pattern, Coordinators: *coordinators,
		Rate: *rate, Concurrency: *concurrency, FaultRate: *faultRate, Seed: *seed,
		QuiesceTimeout: *quiesce, Log: os.Stderr, TempPostgres: *storeKind == "postgres-temp", Topology: *topology,
	}
	res, err := chaos.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "work directory kept: %s\n", work)
		return err
	}
	if !keep && res.OK {
		os.RemoveAll(work)
		res.Dir = ""
	}
	chaos.PrintTable(out, res)
	if res.Dir != "" {
		fmt.Fprintf(out, "work directory (databases, logs): %s\n", res.Dir)
	}
	if *asJSON {
		b, _ := json.Marshal(res)
		fmt.Println(string(b))
	}
	if !res.OK {
		return errExit
	}
	return nil
}

// workDir is dir, created if needed and kept (keep), or else a new
// temporary directory named after prefix.
func workDir(dir, prefix string) (work string, keep bool, err error) {
	if dir == "" {
		work, err = os.MkdirTemp("", prefix)
		return work, false, err
	}
	return dir, true, os.MkdirAll(dir, 0o755)
}

// flagSet reports whether the flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
