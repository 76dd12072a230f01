//go:build wasip1

package main

import (
	"fmt"
	"strings"

	"github.com/kilnbuild/kiln/stages-wasm/sdk"
)

type hostnameOptions struct {
	Hostname string `json:"hostname"`
}

// org.osbuild.hostname: /etc/hostname holds the name and a newline. As in
// osbuild, which removes the file and has systemd-firstboot write it anew,
// the result is root's with mode 0644 whatever was there; a tree without
// /etc gets one, 0755, as firstboot makes it.
func init() {
	sdk.Register("org.osbuild.hostname", func(o hostnameOptions) error {
		if o.Hostname == "" || strings.ContainsAny(o.Hostname, " \t\n/\x00") {
			return fmt.Errorf("option \"hostname\": %q is not a host name", o.Hostname)
		}
		if err := mkdirAll("/etc", 0o755, 0, 0); err != nil {
			return err
		}
		if err := removeInTheWay("/etc/hostname"); err != nil {
			return err
		}
		return putFile("/etc/hostname", []byte(o.Hostname+"\n"), 0o644, 0, 0)
	})
}
