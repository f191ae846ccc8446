package main

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"os"
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
	withMetrics := fs.Bool("metrics", true, "record Prometheus metrics as dtx server does (false: measure without them)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *pattern != "saga" && *pattern != "tcc" && *pattern != "xa" && *pattern != "events":
		return usagef("pattern %q: want saga, tcc, xa or events", *pattern)
	case *clients < 1 || *duration <= 0 || *warmup < 0 || *idle < 0:
		return usagef("need clients >= 1, duration > 0, warmup >= 0, idle >= 0")
	case *pattern == "events" && *storeDSN != "sqlite" && *storeDSN != "postgres-temp":
		return usagef("store %q: the events bench takes sqlite or postgres-temp", *storeDSN)
	}
	cfg := bench.Config{
		Pattern: *pattern, Store: *storeDSN, Clients: *clients, Duration: *duration, Warmup: *warmup,
		Writers: *writers, CPUProfile: *cpuProfile, Broker: *brokerSpec, Metrics: *withMetrics, Log: os.Stderr, Idle: *idle,
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
