package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/dtxhq/dtx/internal/bench"
)

func runBench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dtx bench", flag.ContinueOnError)
	pattern := fs.String("pattern", "saga", "saga (2 steps), tcc (2 participants: 2 tries, then 2 confirms) xa (2 real XA branches on a throwaway PostgreSQL: 2 prepares in order, then 2 commits) or events (outbox -> broker -> inbox)")
	storeDSN := fs.String("store", "sqlite", "sqlite (a fresh file in a temp dir), sqlite://path, postgres://…, or postgres-temp (a throwaway local server)")
	clients := fs.Int("clients", 8, "closed-loop clients, each submitting a saga and waiting for its outcome")
	duration := fs.Duration("duration", 10*time.Second, "measured duration")
	warmup := fs.Duration("warmup", 2*time.Second, "unmeasured warm-up")
	asJSON := fs.Bool("json", false, "print one JSON object")
	writers := fs.Int("store-writers", 0, "group-commit writers of the store (0: the store's default)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the measured period to this file")
	brokerSpec := fs.String("broker", "embedded", "events pattern: embedded (NATS in process), nats://host:port or kafka://host:port")
	idle := fs.Duration("idle", 0, "events pattern: after measuring, stay running without events this long and report the process's CPU (0: skip)")
	eventsPerTx := fs.Int("events-per-tx", 1, "events pattern: events each producer transaction writes (each under its own key); the producer waits until all are consumed")
	partitions := fs.Int("partitions", 0, "events pattern: partitions of the stream (NATS) or topic (Kafka) the broker creates, each delivering one message at a time in order (0: the broker's default, NATS 16, Kafka 8)")
	withMetrics := fs.Bool("metrics", true, "record Prometheus metrics as dtx server does (false: measure without them)")
	compare := fs.Bool("compare", false, "run the loadgen workload (saga or tcc, no-op HTTP participants, wait=true) against a separate dtx server process at each of --compare-clients, --rounds rounds of --duration, and print medians with the server's CPU per transaction; --store takes a comma-separated list (sqlite,postgres-temp)")
	compareClients := fs.String("compare-clients", "1,8,32", "--compare: comma-separated closed-loop client counts")
	rounds := fs.Int("rounds", 3, "--compare: rounds per client count (alternating order); the table shows medians")
	serverExe := fs.String("server-exe", "", "--compare: comma-separated dtx binaries to run as servers (default: this one); with several (an older build, this one) each measurement runs them in turn, side by side")
	floor := fs.Bool("floor", false, "--compare: also measure, in the same rounds, a floor server (this binary): the same submissions parsed and the participants called over the coordinator's HTTP transport, with no store; its rows show the least a coordinator on net/http spends per transaction")
	serverProfile := fs.String("server-cpuprofile", "", "--compare: each dtx server writes a CPU profile of its run to this file, the store's name appended (FILE.sqlite)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *floor && !*compare {
		return usagef("--floor applies to --compare (a floor server measured next to the dtx servers)")
	}
	if *compare {
		return runCompare(ctx, *pattern, *storeDSN, *compareClients, *rounds, *duration, *warmup, *serverExe, *serverProfile, *floor, *asJSON)
	}
	switch {
	case *pattern != "saga" && *pattern != "tcc" && *pattern != "xa" && *pattern != "events":
		return usagef("pattern %q: want saga, tcc, xa or events", *pattern)
	case *clients < 1 || *duration <= 0 || *warmup < 0 || *idle < 0:
		return usagef("need clients >= 1, duration > 0, warmup >= 0, idle >= 0")
	case *eventsPerTx < 1 || *eventsPerTx > 1000:
		return usagef("events-per-tx %d: want 1..1000", *eventsPerTx)
	case *partitions < 0 || *partitions > 4096:
		return usagef("partitions %d: want 0..4096", *partitions)
	case *pattern == "events" && *storeDSN != "sqlite" && *storeDSN != "postgres-temp":
		return usagef("store %q: the events bench takes sqlite or postgres-temp", *storeDSN)
	}
	cfg := bench.Config{
		Pattern: *pattern, Store: *storeDSN, Clients: *clients, Duration: *duration, Warmup: *warmup,
		Writers: *writers, CPUProfile: *cpuProfile, Broker: *brokerSpec, Metrics: *withMetrics, Log: os.Stderr, Idle: *idle,
		EventsPerTx: *eventsPerTx, Partitions: *partitions,
	}
	if *asJSON {
		cfg.Log = nil
	}
	var res interface{ WriteText(io.Writer) }
	var err error
	if *pattern == "events" {
		res, err = bench.RunEvents(ctx, cfg)
	} else {
		res, err = bench.Run(ctx, cfg)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	res.WriteText(os.Stdout)
	return nil
}

// runCompare is dtx bench --compare.
func runCompare(ctx context.Context, pattern, stores, clientList string, rounds int, duration, warmup time.Duration, exe, serverProfile string, floor, asJSON bool) error {
	if pattern != "saga" && pattern != "tcc" {
		return usagef("--compare: pattern %q: want saga or tcc", pattern)
	}
	if rounds < 1 || duration <= 0 || warmup < 0 {
		return usagef("--compare: need rounds >= 1, duration > 0, warmup >= 0")
	}
	var clients []int
	for _, f := range strings.Split(clientList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return usagef("--compare-clients %q: want comma-separated counts of at least 1", clientList)
		}
		clients = append(clients, n)
	}
	var storeList []string
	for _, s := range strings.Split(stores, ",") {
		if s = strings.TrimSpace(s); s != "" {
			storeList = append(storeList, s)
		}
	}
	if len(storeList) == 0 {
		return usagef("--store: name at least one store")
	}
	var exes []string
	for _, e := range strings.Split(exe, ",") {
		if e = strings.TrimSpace(e); e != "" {
			exes = append(exes, e)
		}
	}
	for _, st := range storeList {
		if len(exes) > 1 && st != "sqlite" && st != "postgres-temp" {
			return usagef("--server-exe names %d servers: each needs a store of its own, so --store takes sqlite or postgres-temp", len(exes))
		}
	}
	var self string
	if len(exes) == 0 || floor {
		var err error
		if self, err = os.Executable(); err != nil {
			return fmt.Errorf("cannot find the dtx binary to run as the server: %w", err)
		}
	}
	if len(exes) == 0 {
		exes = []string{self}
	}
	cfg := bench.CompareConfig{Exes: exes, Stores: storeList, Pattern: pattern, Clients: clients, Rounds: rounds,
		Duration: duration, Warmup: warmup, ServerCPUProfile: serverProfile, Log: os.Stderr}
	if floor {
		// This binary serves the floor: an older --server-exe may not have it.
		cfg.FloorExe = self
	}
	if asJSON {
		cfg.Log = nil
	}
	res, err := bench.Compare(ctx, cfg)
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	res.WriteText(os.Stdout)
	return nil
}
