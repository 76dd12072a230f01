//go:build wasip1

package main

import "github.com/kilnbuild/kiln/stages-wasm/sdk"

// org.osbuild.noop does nothing with any options: manifests use it as a
// placeholder, and tests to measure a stage's fixed cost.
func init() {
	sdk.Register("org.osbuild.noop", func(map[string]any) error { return nil })
}
