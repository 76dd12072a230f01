//go:build wasip1

package main

import (
	"errors"
	"fmt"

	"github.com/kilnbuild/kiln/stages-wasm/sdk"
)

type machineIDOptions struct {
	FirstBoot string `json:"first-boot"`
}

// org.osbuild.machine-id prepares /etc/machine-id for the image's first
// boot. The shipped library uses the Rust build of this stage
// (stages-wasm/stages/rust); this one is the fallback when Rust is missing
// and the second implementation the golden tests compare it with.
func init() {
	sdk.Register("org.osbuild.machine-id", func(o machineIDOptions) error {
		const p = "/etc/machine-id"
		switch o.FirstBoot {
		case "yes":
			// systemd treats "uninitialized" as first boot and
			// writes a new id then.
			return writeConfig(p, []byte("uninitialized\n"), 0o644)
		case "no":
			// Empty: systemd makes a new id at boot, without
			// running first-boot units.
			return writeConfig(p, nil, 0o644)
		case "preserve":
			ok, err := exists(p)
			if err != nil {
				return err
			}
			if !ok {
				return errors.New("option \"first-boot\": preserve, but " + p + " is not in the tree")
			}
			return nil
		}
		return fmt.Errorf("option \"first-boot\": %q is not yes, no or preserve", o.FirstBoot)
	})
}
