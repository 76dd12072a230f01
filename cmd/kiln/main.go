// Command kiln builds operating-system and container images from a
// declarative manifest, running each build stage as a sandboxed WebAssembly
// program. See README.md for a tour.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/kilnbuild/kiln/cmd/kiln/internal/cli"
	"github.com/kilnbuild/kiln/runtime/engine"
)

func main() {
	// A re-executed kiln serving as the stage worker never reaches the CLI.
	engine.MaybeRunWorker()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}
