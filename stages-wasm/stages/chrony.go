//go:build wasip1

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/kilnbuild/kiln/stages-wasm/sdk"
	"github.com/kilnbuild/kiln/stages-wasm/stages/internal/render"
)

// chronyConfs are where distributions put chrony's configuration: Fedora
// and osbuild's /etc/chrony.conf, Debian's /etc/chrony/chrony.conf.
var chronyConfs = []string{"/etc/chrony.conf", "/etc/chrony/chrony.conf"}

// org.osbuild.chrony edits the configuration the chrony package installed:
// servers, leap second zone and reference clocks.
func init() {
	sdk.Register("org.osbuild.chrony", func(o render.Chrony) error {
		var conf string
		var text []byte
		for _, c := range chronyConfs {
			var err error
			text, err = os.ReadFile(c)
			if err == nil {
				conf = c
				break
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		if conf == "" {
			return fmt.Errorf("neither %s is in the tree: install chrony before configuring it", strings.Join(chronyConfs, " nor "))
		}
		out, err := render.EditChrony(string(text), o)
		if err != nil {
			return err
		}
		return writeConfig(conf, []byte(out), 0o644)
	})
}
