//go:build wasip1

package main

import (
	"encoding/json"
	"errors"

	"github.com/kilnbuild/kiln/stages-wasm/sdk"
	"github.com/kilnbuild/kiln/stages-wasm/stages/internal/render"
)

type fstabOptions struct {
	Filesystems []render.Filesystem `json:"filesystems"`
	OSTree      json.RawMessage     `json:"ostree"`
}

// org.osbuild.fstab writes /etc/fstab, replacing it, one tab-separated line
// per filesystem.
func init() {
	sdk.Register("org.osbuild.fstab", func(o fstabOptions) error {
		if len(o.OSTree) > 0 && string(o.OSTree) != "null" {
			return errors.New("option \"ostree\": ostree deployments are not supported by kiln")
		}
		text, err := render.Fstab(o.Filesystems)
		if err != nil {
			return err
		}
		return writeConfig("/etc/fstab", []byte(text), 0o644)
	})
}
