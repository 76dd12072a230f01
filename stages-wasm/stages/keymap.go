//go:build wasip1

package main

import (
	"fmt"
	"strings"

	"github.com/kilnbuild/kiln/stages-wasm/sdk"
	"github.com/kilnbuild/kiln/stages-wasm/stages/internal/render"
)

type keymapOptions struct {
	Keymap    string  `json:"keymap"`
	Font      *string `json:"font"`
	X11Keymap *struct {
		Layouts []string `json:"layouts"`
	} `json:"x11-keymap"`
}

// org.osbuild.keymap sets KEYMAP (and FONT) in /etc/vconsole.conf and, for
// x11-keymap, writes the X11 keyboard configuration systemd-localed reads.
func init() {
	sdk.Register("org.osbuild.keymap", func(o keymapOptions) error {
		if !envValue(o.Keymap) {
			return fmt.Errorf("option \"keymap\": %q is not a keymap name", o.Keymap)
		}
		kv := [][2]string{{"KEYMAP", o.Keymap}}
		if o.Font != nil {
			if !envValue(*o.Font) {
				return fmt.Errorf("option \"font\": %q is not a font name", *o.Font)
			}
			kv = append(kv, [2]string{"FONT", *o.Font})
		}
		if err := editEnvFile("/etc/vconsole.conf", kv); err != nil {
			return err
		}
		if o.X11Keymap == nil {
			return nil
		}
		if len(o.X11Keymap.Layouts) == 0 {
			return fmt.Errorf("option \"x11-keymap.layouts\": empty")
		}
		for i, l := range o.X11Keymap.Layouts {
			if len(l) < 2 || strings.ContainsAny(l, " \t\n\",") {
				return fmt.Errorf("option \"x11-keymap.layouts[%d]\": %q is not a layout name", i, l)
			}
		}
		if err := mkdirAll("/etc/X11/xorg.conf.d", 0o755, 0, 0); err != nil {
			return err
		}
		return writeConfig("/etc/X11/xorg.conf.d/00-keyboard.conf", []byte(render.X11Keyboard(o.X11Keymap.Layouts)), 0o644)
	})
}

// envValue reports whether s can be written unquoted in a KEY=value file.
func envValue(s string) bool {
	return s != "" && !strings.ContainsAny(s, " \t\n\"'\\$`")
}
