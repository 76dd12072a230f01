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

// org.osbuild.hostname: /etc/hostname holds the name and a newline.
func init() {
	sdk.Register("org.osbuild.hostname", func(o hostnameOptions) error {
		if o.Hostname == "" || strings.ContainsAny(o.Hostname, " \t\n/\x00") {
			return fmt.Errorf("option \"hostname\": %q is not a host name", o.Hostname)
		}
		return writeConfig("/etc/hostname", []byte(o.Hostname+"\n"), 0o644)
	})
}
