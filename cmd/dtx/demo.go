package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/dtxhq/dtx/examples/shop/demo"
)

func runDemo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dtx demo", flag.ContinueOnError)
	pattern := fs.String("pattern", "saga", "transaction pattern: saga, tcc, xa (runs the services on a throwaway PostgreSQL), choreography (events through an embedded NATS JetStream) saga-async (the saga's branch calls as commands and replies through an embedded NATS JetStream) or eventsourcing (event-sourced carts whose checkouts place the orders by saga; a projected read model checked against the events)")
	brokerSpec := fs.String("broker", "embedded", "with --pattern choreography: embedded (NATS JetStream in this process), kafka (the Kafka protocol against an in-process test broker, not a production Kafka) or kafka://host:port[,host:port…] (a real Kafka cluster)")
	orders := fs.Int("orders", 200, "orders to place")
	concurrency := fs.Int("concurrency", 16, "orders placed at once")
	relay := fs.String("relay", "polling", "with --pattern choreography: how the services' outboxes are published: polling (read the outbox table) or tailing (read PostgreSQL's logical replication stream; the services run on a throwaway PostgreSQL with wal_level=logical)")
	sequentialTCC := fs.Bool("tcc-sequential", false, "with --pattern tcc: run each order's tries, then its confirms, one after another (inventory, then payment)")
	faultRate := fs.Float64("faults", 0.2, "probability that a branch call is faulted (fail before commit, delay, or commit-then-lose-the-response)")
	seed := fs.Uint64("seed", 1, "seed for orders and faults")
	dir := fs.String("dir", "", "directory for the databases (default: a temporary directory, removed afterwards)")
	asJSON := fs.Bool("json", false, "print the summary as one JSON line (last line of output)")
	quiesce := fs.Duration("quiesce-timeout", 2*time.Minute, "how long to wait for every saga to finish after the last order")
	logLevel := fs.String("log-level", "error", "log level of the services and coordinator")
	hold := fs.Bool("hold", false, "after the summary, keep the coordinator, its dashboard and the shop running until Ctrl-C")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := newLogger(*logLevel, false)
	if err != nil {
		return err
	}
	out := io.Writer(os.Stdout)
	if *asJSON {
		out = os.Stderr // keep stdout for the JSON line
	}
	cfg := demo.Config{
		Pattern: *pattern, Broker: *brokerSpec, Orders: *orders, Concurrency: *concurrency, FaultRate: *faultRate, Seed: *seed, SequentialTCC: *sequentialTCC, Relay: *relay,
		Dir: *dir, QuiesceTimeout: *quiesce, Logger: log, Out: out, Progress: os.Stderr, ProgressTTYOnly: *asJSON,
	}
	if err := cfg.Validate(); err != nil {
		return usageError{err.Error()}
	}
	d, err := demo.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer d.Close()
	res, err := d.Run(ctx)
	if err != nil {
		return err
	}
	res.WriteText(out)
	if *asJSON {
		b, _ := json.Marshal(res)
		fmt.Println(string(b))
	}
	if *hold {
		res.WriteHoldText(out)
		<-ctx.Done()
		fmt.Fprintf(out, "stopping\n")
	}
	if !res.OK() {
		return errExit
	}
	return nil
}
