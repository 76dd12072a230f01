package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/kilnbuild/kiln/runtime/engine"
)

// A program that runs stages calls MaybeRunWorker first thing in main, then
// keeps one Engine for the build.
func Example() {
	engine.MaybeRunWorker() // in main (tests: in TestMain)

	ctx := context.Background()
	e, err := engine.New(ctx, engine.Config{CacheDir: "/var/lib/kiln/cache/wazero"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	defer e.Close()

	mod, err := engine.ReadModuleFile("out/stages/hello-go.wasm")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	res, err := e.Run(ctx, engine.Invocation{
		Name:    "org.kiln.hello",
		ID:      "9f86d081884c7d65",
		Module:  mod,
		Options: json.RawMessage(`{"greeting": "Hello"}`),
		Tree:    "/tmp/tree",
		Epoch:   1700000000,
		Timeout: time.Minute,
		Log:     os.Stderr, // live progress
	})
	var se *engine.StageError
	switch {
	case errors.As(err, &se) && errors.Is(err, engine.ErrTimeout):
		fmt.Printf("%s hung; its output so far:\n%s", se.Stage, res.Log)
	case err != nil:
		fmt.Println(err) // says which stage, why, and the end of its stderr
	default:
		fmt.Printf("done in %s\n", res.Duration)
	}
}
