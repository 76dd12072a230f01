//go:build wasip1

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/kilnbuild/kiln/stages-wasm/sdk"
	"github.com/kilnbuild/kiln/stages-wasm/stages/internal/render"
)

// org.osbuild.chrony edits the /etc/chrony.conf the chrony package
// installed: servers, leap second zone and reference clocks.
func init() {
	sdk.Register("org.osbuild.chrony", func(o render.Chrony) error {
		const conf = "/etc/chrony.conf"
		text, err := os.ReadFile(conf)
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s is not in the tree: install chrony before configuring it", conf)
		}
		if err != nil {
			return err
		}
		out, err := render.EditChrony(string(text), o)
		if err != nil {
			return err
		}
		return writeConfig(conf, []byte(out), 0o644)
	})
}
