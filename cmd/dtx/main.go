// Command dtx is the dtx toolkit's single binary:
//
//	dtx demo     run the reference shop and a coordinator, place orders, verify
//	dtx server   run the coordinator (HTTP API)
//	dtx shop     run the reference shop's three services
//	dtx bench    measure saga throughput and latency
//	dtx tx       list, show, retry and abort transactions of a running coordinator
//	dtx chaos    crash processes under load, then verify the invariants
//	dtx keygen   print a new key that signs branch calls
//	dtx version  print the version (also dtx --version)
//
// 'dtx help' and 'dtx <command> -h' print to stdout, with an example.
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

	"github.com/dtxhq/dtx/internal/natscluster"
	"github.com/dtxhq/dtx/internal/open"
)

// Version is set with -ldflags "-X main.Version=…"; otherwise the module
// version from the build info is used.
var Version = ""

type command struct {
	name, summary string
	// example is one typical command line, shown in help.
	example string
	run     func(ctx context.Context, args []string) error
}

// commands is filled in init: the commands' flag parsing looks up their
// help here (commandHelp), which a package-level initializer cannot refer to.
var commands []command

func init() {
	commands = []command{
		{"demo", "run coordinator + shop on embedded defaults, place orders, verify invariants", "dtx demo --hold", runDemo},
		{"server", "run the coordinator HTTP API", "dtx server --listen 127.0.0.1:8480 --store sqlite://dtx-data/coordinator.db", runServer},
		{"shop", "run the reference shop (order, inventory, payment services)", "dtx shop", runShop},
		{"cart", "run the shop's event-sourced cart service, or show a cart's events and the read model's lag", "dtx cart show 1", runCart},
		{"bench", "benchmark a 2-step saga, TCC or XA transaction with no-op participants", "dtx bench", runBench},
		{"tx", "list, show (as a sequence of calls), retry or abort transactions of a running coordinator", "dtx tx show GID", runTx},
		{"chaos", "crash and fault the shop and coordinators under load, then verify nothing was lost", "dtx chaos", runChaos},
		{"keygen", "print a new key that signs branch calls (for --call-key-file / $DTX_CALL_KEY)", "dtx keygen > call.key", runKeygen},
		{"version", "print the version (module version and VCS revision)", "dtx version", func(context.Context, []string) error { fmt.Println(version()); return nil }},
	}
}

// commandHelp prints the one-line description and example of the command
// whose flag set is named name ("dtx server"), if there is one.
func commandHelp(w io.Writer, name string) {
	for _, c := range commands {
		if "dtx "+c.name == name {
			fmt.Fprintf(w, "%s: %s\n\nExample: %s\n\n", name, c.summary, c.example)
		}
	}
}

func version() string {
	if Version != "" {
		return Version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	return buildVersion(bi)
}

// buildVersion is the module version from bi ("(devel)" in a source tree),
// with the VCS revision (and "+dirty" for uncommitted changes) when the
// binary was built in a checkout.
func buildVersion(bi *debug.BuildInfo) string {
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" {
		v += " (" + rev + dirty + ")"
	}
	return v + " " + bi.GoVersion
}

// usage prints the commands, each with a one-line description and an
// example, to w (stdout for help, stderr after a mistake).
func usage(w io.Writer) {
	fmt.Fprintf(w, "dtx %s — distributed transactions: saga, TCC, XA, outbox and inbox, with a coordinator, SDK and reference shop\n\nUsage: dtx <command> [flags]\n\nCommands:\n", version())
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n  %-8s   e.g. %s\n", c.name, c.summary, "", c.example)
	}
	fmt.Fprintf(w, "\nRun 'dtx <command> -h' for the command's flags; 'dtx --version' for the version.\n")
}

// usageError marks errors caused by bad command-line input (exit code 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

func main() {
	// A broker node started by internal/natscluster (dtx chaos) runs here.
	natscluster.Main()
	if len(os.Args) < 2 {
		usage(os.Stderr)
		os.Exit(2)
	}
	switch os.Args[1] {
	case "-h", "-help", "--help", "help":
		usage(os.Stdout)
		return
	case "-v", "-version", "--version":
		fmt.Println("dtx " + version())
		return
	}
	name := os.Args[1]
	for _, c := range append(commands, hiddenCommands...) {
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
			commandHelp(os.Stdout, fs.Name())
			fmt.Fprintf(os.Stdout, "Usage of %s:\n", fs.Name())
			fs.SetOutput(os.Stdout)
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
