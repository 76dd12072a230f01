//go:build wasip1

package main

import (
	"fmt"
	"strings"

	"github.com/kilnbuild/kiln/stages-wasm/sdk"
	"github.com/kilnbuild/kiln/stages-wasm/stages/internal/render"
)

type resolvConfOptions struct {
	Nameserver []string `json:"nameserver"`
	Search     []string `json:"search"`
}

// org.osbuild.resolv-conf writes /etc/resolv.conf as osbuild does: what was
// there (a file, or a symlink to a resolver's runtime file) is removed and a
// new file, root's with mode 0644, takes its place; a tree without /etc gets
// one, 0755.
func init() {
	sdk.Register("org.osbuild.resolv-conf", func(o resolvConfOptions) error {
		check := func(opt string, list []string) error {
			for i, s := range list {
				if s == "" || strings.ContainsAny(s, " \t\n") {
					return fmt.Errorf("option \"%s[%d]\": %q is empty or holds whitespace", opt, i, s)
				}
			}
			return nil
		}
		if err := check("nameserver", o.Nameserver); err != nil {
			return err
		}
		if err := check("search", o.Search); err != nil {
			return err
		}
		if err := mkdirAll("/etc", 0o755, 0, 0); err != nil { // WASI alone would make it 0700
			return err
		}
		if err := removeInTheWay("/etc/resolv.conf"); err != nil {
			return err
		}
		return putFile("/etc/resolv.conf", []byte(render.ResolvConf(o.Nameserver, o.Search)), 0o644, 0, 0)
	})
}
