//go:build wasip1

package main

import (
	"path"

	"github.com/kilnbuild/kiln/stages-wasm/sdk"
	"github.com/kilnbuild/kiln/stages-wasm/stages/internal/render"
)

// org.osbuild.sysconfig writes the /etc/sysconfig files of Fedora-family
// systems: kernel, network, network-scripts/ifcfg-*, livesys, desktop.
func init() {
	sdk.Register("org.osbuild.sysconfig", func(o render.Sysconfig) error {
		files, err := o.Files()
		if err != nil {
			return err
		}
		for _, p := range sortedKeys(files) {
			if err := mkdirAll(path.Dir(p), 0o755, 0, 0); err != nil {
				return err
			}
			if err := writeConfig(p, []byte(files[p]), 0o644); err != nil {
				return err
			}
		}
		return nil
	})
}
