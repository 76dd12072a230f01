//go:build wasip1

package main

import (
	"fmt"
	"os"

	"github.com/kilnbuild/kiln/stages-wasm/sdk"
)

type errorOptions struct {
	ReturnCode *int `json:"returncode"`
}

// org.osbuild.error fails on purpose with the exit code asked for (255 by
// default), for testing how builds report failing stages.
func init() {
	sdk.Register("org.osbuild.error", func(o errorOptions) error {
		code := 255
		if o.ReturnCode != nil {
			code = *o.ReturnCode
		}
		if code < 0 || code > 255 {
			return fmt.Errorf("option \"returncode\": %d is not an exit code (0 to 255)", code)
		}
		fmt.Fprintf(os.Stderr, "org.osbuild.error: failing on purpose with exit code %d\n", code)
		os.Exit(code)
		return nil
	})
}
