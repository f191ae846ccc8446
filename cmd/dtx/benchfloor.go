package main

import (
	"context"
	"flag"
	"os"

	"github.com/dtxhq/dtx/internal/bench"
)

// hiddenCommands run like commands but are left out of the help: they
// are started by other commands, not typed.
var hiddenCommands = []command{
	{bench.FloorCommand, "serve the HTTP floor that dtx bench --compare --floor measures", "", runBenchFloorServer},
}

// runBenchFloorServer is the floor server of dtx bench --compare --floor:
// the coordinator's API for submissions with wait=true, calling the
// participants over the coordinator's HTTP transport, with no store.
func runBenchFloorServer(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dtx "+bench.FloorCommand, flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	readyFile := fs.String("ready-file", "", "write the listen address to this file once serving")
	gcPercent := fs.Int("gc-percent", defaultGCPercent, "Go garbage collector target, as dtx server's --gc-percent (ignored when $GOGC is set)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	setGCPercent(*gcPercent, os.Getenv("GOGC"))
	return bench.ServeFloor(ctx, bench.FloorConfig{Listen: *listen, ReadyFile: *readyFile})
}
