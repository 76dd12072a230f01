//go:build wasip1

package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/kilnbuild/kiln/stages-wasm/sdk"
)

type timezoneOptions struct {
	Zone string `json:"zone"`
}

// org.osbuild.timezone points /etc/localtime at the zone, with the relative
// link systemd writes. A zone missing from the tree still gets its link, as
// in osbuild, with a warning in the log: tzdata may come later.
func init() {
	sdk.Register("org.osbuild.timezone", func(o timezoneOptions) error {
		z := o.Zone
		if z == "" || strings.HasPrefix(z, "/") || strings.HasSuffix(z, "/") || strings.ContainsAny(z, " \t\n\x00") {
			return fmt.Errorf("option \"zone\": %q is not a zone name like Europe/Berlin", z)
		}
		for _, c := range strings.Split(z, "/") {
			if c == ".." || c == "." || c == "" {
				return fmt.Errorf("option \"zone\": %q is not a zone name like Europe/Berlin", z)
			}
		}
		zoneFile := "/usr/share/zoneinfo/" + z
		if st, err := os.Stat(zoneFile); err != nil || !st.Mode().IsRegular() {
			warnf("zone %s is not in the tree (%s missing): /etc/localtime points at it anyway; install tzdata for it to work", z, zoneFile)
		}
		if err := mkdirAll("/etc", 0o755, 0, 0); err != nil { // WASI alone would make it 0700
			return err
		}
		if err := os.Remove("/etc/localtime"); err != nil && !os.IsNotExist(err) {
			return err
		}
		return os.Symlink("../usr/share/zoneinfo/"+z, "/etc/localtime")
	})
}
