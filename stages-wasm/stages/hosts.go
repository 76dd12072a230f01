//go:build wasip1

package main

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/kilnbuild/kiln/stages-wasm/sdk"
)

type hostsOptions struct {
	Entries []struct {
		IP        string   `json:"ip"`
		Hostnames []string `json:"hostnames"`
	} `json:"entries"`
}

// kiln.hosts writes /etc/hosts with one line per entry, "IP<TAB>names",
// in the order given; osbuild has no such stage. The file is replaced
// whole: what netbase or an earlier stage put there is not merged, because
// a partial merge of a file whose lines can alias one another is a guess.
// An existing file keeps its mode and owner, a new one is root's 0644.
func init() {
	sdk.Register("kiln.hosts", func(o hostsOptions) error {
		var b strings.Builder
		for i, e := range o.Entries {
			ip, err := netip.ParseAddr(e.IP)
			if err != nil || ip.Zone() != "" {
				return fmt.Errorf("option \"entries[%d].ip\": %q is not an IPv4 or IPv6 address without a zone", i, e.IP)
			}
			if len(e.Hostnames) == 0 {
				return fmt.Errorf("option \"entries[%d].hostnames\": empty", i)
			}
			for j, h := range e.Hostnames {
				if !validHostname(h) {
					return fmt.Errorf("option \"entries[%d].hostnames[%d]\": %q is not an RFC 1123 host name", i, j, h)
				}
			}
			fmt.Fprintf(&b, "%s\t%s\n", e.IP, strings.Join(e.Hostnames, " "))
		}
		if err := mkdirAll("/etc", 0o755, 0, 0); err != nil {
			return err
		}
		return writeConfig("/etc/hosts", []byte(b.String()), 0o644)
	})
}

// validHostname is RFC 1123's host name: dot-separated labels of letters,
// digits and inner hyphens, each 1-63 bytes, 253 in all.
func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, l := range strings.Split(h, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range []byte(l) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
