package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/dtxhq/dtx/examples/shop/cart"
)

const cartUsage = `Usage: dtx cart <serve|show> [flags]

  serve     run the event-sourced cart service (commands, queries, read model)
            against a running shop's order service: --order URL
  show ID   print a cart's events (stream version, position, type, payload)
            and the read model projection's lag: --url URL

Run 'dtx cart <subcommand> -h' for the flags.`

// runCart is dtx cart: the shop's event-sourced cart (package cart).
func runCart(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("want a subcommand: serve or show (run 'dtx cart -h')")
	}
	switch sub, args := args[0], args[1:]; sub {
	case "-h", "--help", "help":
		fmt.Fprintln(os.Stdout, cartUsage)
		return flag.ErrHelp
	case "serve":
		return cartServe(ctx, args)
	case "show":
		return cartShow(ctx, args)
	default:
		return usagef("unknown subcommand %q: want serve or show", sub)
	}
}

func cartServe(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dtx cart serve", flag.ContinueOnError)
	orderURL := fs.String("order", "", "the order service's base URL (printed by dtx shop); required")
	dir := fs.String("dir", "dtx-data", "directory of the SQLite files cart-events.db and cart-queries.db")
	eventsDSN := fs.String("events-dsn", "", "postgres://… puts the event store on PostgreSQL (the read model stays on SQLite)")
	listen := fs.String("listen", "127.0.0.1:8490", "listen address")
	logLevel := fs.String("log-level", "info", "log level")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *orderURL == "" {
		return usagef("--order is required (the order service's URL, printed by dtx shop)")
	}
	log, err := newLogger(*logLevel, false)
	if err != nil {
		return err
	}
	s, err := cart.Start(ctx, cart.ServerConfig{Dir: *dir, EventsDSN: *eventsDSN, OrderURL: *orderURL, Addr: *listen, Logger: log})
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Printf("cart %s\n", s.URL())
	<-ctx.Done()
	return nil
}

func cartShow(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dtx cart show", flag.ContinueOnError)
	u := fs.String("url", "http://127.0.0.1:8490", "the cart service's base URL")
	asJSON := fs.Bool("json", false, "print the service's JSON answers instead of text")
	timeout := fs.Duration("timeout", 10*time.Second, "bound on the requests")
	pos, err := parseWithArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want one cart id: dtx cart show [--url URL] ID")
	}
	id := pos[0]
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	c := &cart.Client{URL: *u}
	s, err := c.Stream(ctx, id)
	if err != nil {
		return err
	}
	lags, err := c.Projections(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		b, _ := json.Marshal(map[string]any{"stream": s, "projections": lags})
		fmt.Println(string(b))
		return nil
	}
	cart.WriteStream(os.Stdout, s, lags)
	return nil
}

// parseWithArgs parses flags placed before, between or after positional
// arguments, and returns the positional ones.
func parseWithArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for len(args) > 0 {
		if !strings.HasPrefix(args[0], "-") || args[0] == "-" {
			pos, args = append(pos, args[0]), args[1:]
			continue
		}
		fs.SetOutput(io.Discard)
		if err := fs.Parse(args); err != nil {
			return nil, parseFlags(fs, args) // the same error, worded as for every command (or -h)
		}
		if len(fs.Args()) < len(args) && args[len(args)-len(fs.Args())-1] == "--" {
			return append(pos, fs.Args()...), nil
		}
		args = fs.Args()
	}
	return pos, nil
}
