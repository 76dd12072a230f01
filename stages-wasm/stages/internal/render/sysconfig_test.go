package render

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestSysconfigOsbuildQuoting (issue 11 item 18): osbuild writes ifcfg
// values in double quotes, kernel and network values bare; a value that
// would break out of its line or quotes in a file the boot scripts source
// is refused.
func TestSysconfigOsbuildQuoting(t *testing.T) {
	for _, c := range []struct {
		name, opts, path, want, err string
	}{
		{name: "ifcfg-quoted", opts: `{"network-scripts":{"ifcfg":{"eth1":{"device":"eth1","bootproto":"dhcp","onboot":true,"type":"Ethernet","userctl":false,"peerdns":true,"ipv6init":true}}}}`,
			path: "/etc/sysconfig/network-scripts/ifcfg-eth1", want: "DEVICE=\"eth1\"\nBOOTPROTO=\"dhcp\"\nONBOOT=\"yes\"\nTYPE=\"Ethernet\"\nUSERCTL=\"no\"\nPEERDNS=\"yes\"\nIPV6INIT=\"yes\"\n"},
		{name: "kernel-bare", opts: `{"kernel":{"update_default":false,"default_kernel":"kernel-core"}}`,
			path: "/etc/sysconfig/kernel", want: "UPDATEDEFAULT=no\nDEFAULTKERNEL=kernel-core\n"},
		{name: "livesys", opts: `{"livesys":{"session":"kde"}}`, path: "/etc/sysconfig/livesys", want: "livesys_session=\"kde\"\n"},
		{name: "device-newline", opts: `{"network-scripts":{"ifcfg":{"eth0":{"device":"eth0\nONBOOT=no"}}}}`, err: "line break"},
		{name: "kernel-command", opts: `{"kernel":{"default_kernel":"$(reboot)"}}`, err: "backtick"},
		{name: "desktop-quote", opts: `{"desktop":{"preferred":"a\" b"}}`, err: "quote"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var s Sysconfig
			if err := json.Unmarshal([]byte(c.opts), &s); err != nil {
				t.Fatal(err)
			}
			files, err := s.Files()
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("Files = %v, %v; want an error with %q", files, err, c.err)
				}
				return
			}
			if err != nil || files[c.path] != c.want {
				t.Fatalf("%s = %q, %v; want %q", c.path, files[c.path], err, c.want)
			}
		})
	}
}
