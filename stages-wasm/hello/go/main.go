//go:build wasip1

// Command hello is the Go hello stage: it writes /etc/hello with the
// "greeting" option and links /etc/hello-link to it, showing the Go side of
// the stage ABI. Build it with GOOS=wasip1 GOARCH=wasm.
package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/kilnbuild/kiln/stages-wasm/sdk"
)

type options struct {
	Greeting string `json:"greeting"`
}

func main() {
	sdk.Run(hello)
}

func hello(o options) error {
	if o.Greeting == "" {
		o.Greeting = "Hello"
	}
	if err := os.MkdirAll("/etc", 0o755); err != nil {
		return err
	}
	if err := os.WriteFile("/etc/hello", []byte(o.Greeting+" from the Go hello stage\n"), 0o644); err != nil {
		return err
	}
	// WASI cannot set modes (wazero creates files 0600, and os.Chmod does
	// nothing on wasip1): the kiln_hostfs host call can.
	if err := sdk.Chmod("/etc/hello", 0o644); err != nil {
		return err
	}
	if err := os.Remove("/etc/hello-link"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Symlink("hello", "/etc/hello-link"); err != nil {
		return err
	}
	fmt.Printf("wrote /etc/hello: %s\n", o.Greeting)
	return nil
}
