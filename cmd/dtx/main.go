// Command dtx is the dtx toolkit's single binary:
//
//	dtx demo     run the reference shop and a coordinator, place orders, verify
//	dtx server   run the coordinator (HTTP API)
//	dtx shop     run the reference shop's three services
//	dtx bench    measure saga throughput and latency
//	dtx tx       list, show, retry and abort transactions of a running coordinator
//	dtx chaos    crash processes under load, then verify the invariants
//	dtx keygen   print a new key that signs branch calls
//	dtx version  print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/dtxhq/dtx/internal/open"
)

// Version is set with -ldflags "-X main.Version=…"; otherwise the module
// version from the build info is used.
var Version = ""

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string) error
}

var commands = []command{
	{"demo", "run coordinator + shop on embedded defaults, place orders, verify invariants", runDemo},
	{"server", "run the coordinator HTTP API", runServer},
	{"shop", "run the reference shop (order, inventory, payment services)", runShop},
	{"bench", "benchmark a 2-step saga with no-op participants", runBench},
	{"tx", "list, show (as a sequence of calls), retry or abort transactions of a running coordinator", runTx},
	{"chaos", "crash and fault the shop and coordinators under load, then verify nothing was lost", runChaos},
	{"keygen", "print a new key that signs branch calls (for --call-key-file / $DTX_CALL_KEY)", runKeygen},
	{"version", "print the version", func(context.Context, []string) error { fmt.Println(version()); return nil }},
}

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "dev"
}

func usage() {
	fmt.Fprintf(os.Stderr, "dtx %s — distributed transactions: sagas, with a coordinator, SDK and reference shop\n\nUsage: dtx <command> [flags]\n\nCommands:\n", version())
	for _, c := range commands {
		fmt.Fprintf(os.Stderr, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(os.Stderr, "\nRun 'dtx <command> -h' for the command's flags.\n")
}

// usageError marks errors caused by bad command-line input (exit code 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	name := os.Args[1]
	for _, c := range commands {
		if c.name != name {
			continue
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		go func() {
			// A second signal forces exit.
			<-ctx.Done()
			stop()
			ch := make(chan os.Signal, 1)
			signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
			<-ch
			fmt.Fprintln(os.Stderr, "dtx: forced exit")
			os.Exit(130)
		}()
		err := c.run(ctx, os.Args[2:])
		switch {
		case err == nil:
			return
		case errors.Is(err, flag.ErrHelp):
			os.Exit(0)
		case errors.Is(err, errExit):
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "dtx %s: %v\n", name, err)
		var ue usageError
		var se *open.SpecError
		if errors.As(err, &ue) || errors.As(err, &se) {
			os.Exit(2)
		}
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "dtx: unknown command %q (run 'dtx help')\n", name)
	os.Exit(2)
}

// errExit exits 1 without printing anything more (the command already did).
var errExit = errors.New("exit 1")

// parseFlags parses args, turning flag errors into usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	// Errors are reported by main as one line; the flag list only on -h.
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(os.Stderr, "Usage of %s:\n", fs.Name())
			fs.SetOutput(os.Stderr)
			fs.PrintDefaults()
			return err
		}
		return usageError{err.Error() + " (run with -h for the flags)"}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

func newLogger(level string, json bool) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	if json {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
}
