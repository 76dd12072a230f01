//go:build wasip1

package main

import "github.com/kilnbuild/kiln/stages-wasm/sdk"

// The stages register themselves from their files' init functions.
func main() {
	sdk.Dispatch()
}
