//go:build wasip1

package main

import (
	"fmt"
	"regexp"

	"github.com/kilnbuild/kiln/stages-wasm/sdk"
	"github.com/kilnbuild/kiln/stages-wasm/stages/internal/render"
)

// confName is the file name osbuild allows for drop-in configuration.
var confName = regexp.MustCompile(`^[\w.-]{1,250}\.conf$`)

// writeDropin writes dir/filename, making dir if needed.
func writeDropin(dir, filename, text string) error {
	if !confName.MatchString(filename) {
		return fmt.Errorf("option \"filename\": %q is not a NAME.conf file name", filename)
	}
	if err := mkdirAll(dir, 0o755, 0, 0); err != nil {
		return err
	}
	return writeConfig(dir+"/"+filename, []byte(text), 0o644)
}

type modprobeOptions struct {
	Filename string                   `json:"filename"`
	Commands []render.ModprobeCommand `json:"commands"`
}

type sysctldOptions struct {
	Filename string               `json:"filename"`
	Config   []render.SysctlParam `json:"config"`
}

type tmpfilesdOptions struct {
	Filename string           `json:"filename"`
	Config   []render.Tmpfile `json:"config"`
}

// The drop-in stages write one file into a .d directory under /usr/lib, as
// osbuild's do, leaving /etc to the administrator.
func init() {
	sdk.Register("org.osbuild.modprobe", func(o modprobeOptions) error {
		text, err := render.Modprobe(o.Commands)
		if err != nil {
			return err
		}
		return writeDropin("/usr/lib/modprobe.d", o.Filename, text)
	})
	sdk.Register("org.osbuild.sysctld", func(o sysctldOptions) error {
		text, err := render.Sysctld(o.Config)
		if err != nil {
			return err
		}
		return writeDropin("/usr/lib/sysctl.d", o.Filename, text)
	})
	sdk.Register("org.osbuild.tmpfilesd", func(o tmpfilesdOptions) error {
		text, err := render.Tmpfilesd(o.Config)
		if err != nil {
			return err
		}
		return writeDropin("/usr/lib/tmpfiles.d", o.Filename, text)
	})
}
