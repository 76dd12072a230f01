package unitfile

import (
	"reflect"
	"strings"
	"testing"
)

const sshd = `[Unit]
Description=OpenSSH server
WantedBy=ignored.target

[Service]
ExecStart=/usr/sbin/sshd -D

[Install]
WantedBy=multi-user.target
Alias=ssh.service
Also=sshd-keygen.target
`

var units = map[string]string{
	"/usr/lib/systemd/system/sshd.service":         sshd,
	"/usr/lib/systemd/system/sshd-keygen.target":   "[Install]\nWantedBy=sshd.service\n",
	"/usr/lib/systemd/system/getty@.service":       "[Install]\nWantedBy=getty.target\nDefaultInstance=tty1\n",
	"/usr/lib/systemd/system/serial@.service":      "[Install]\nWantedBy=multi-user.target\n",
	"/usr/lib/systemd/system/static.service":       "[Service]\nExecStart=/bin/true\n",
	"/usr/lib/systemd/system/multi.service":        "[Install]\nWantedBy=a.target \\\n  b.target\nRequiredBy=c.target\nWantedBy=\nWantedBy=d.target\nAlias=m-%i.service\n",
	"/usr/lib/systemd/system/spec@.service":        "[Install]\nWantedBy=%p-%i.target\n",
	"/etc/systemd/system/local.service":            "[Install]\nUpheldBy=default.target\n",
	"/usr/lib/systemd/system/bad-alias.service":    "[Install]\nAlias=x.socket\n",
	"/usr/lib/systemd/system/also-missing.service": "[Install]\nAlso=nope.service\n",
}

func find(name string) (string, string, error) {
	for _, dir := range SearchPath {
		if text, ok := units[dir+"/"+name]; ok {
			return dir + "/" + name, text, nil
		}
	}
	return "", "", ErrNotFound
}

func TestEnable(t *testing.T) {
	const lib = "/usr/lib/systemd/system/"
	tests := []struct {
		unit    string
		want    []Link
		warn    string
		wantErr string
	}{
		{unit: "sshd.service", want: []Link{
			{ConfigDir + "/sshd.service.wants/sshd-keygen.target", lib + "sshd-keygen.target"},
			{ConfigDir + "/multi-user.target.wants/sshd.service", lib + "sshd.service"},
			{ConfigDir + "/ssh.service", lib + "sshd.service"},
		}},
		{unit: "getty@.service", want: []Link{{ConfigDir + "/getty.target.wants/getty@tty1.service", lib + "getty@.service"}}},
		{unit: "getty@tty2.service", want: []Link{{ConfigDir + "/getty.target.wants/getty@tty2.service", lib + "getty@.service"}}},
		{unit: "serial@.service", warn: "template without DefaultInstance"},
		{unit: "static.service", warn: "no [Install] settings"},
		{unit: "multi.service", want: []Link{
			{ConfigDir + "/d.target.wants/multi.service", lib + "multi.service"},
			{ConfigDir + "/c.target.requires/multi.service", lib + "multi.service"},
			{ConfigDir + "/m-.service", lib + "multi.service"},
		}},
		{unit: "spec@x.service", want: []Link{{ConfigDir + "/spec-x.target.wants/spec@x.service", lib + "spec@.service"}}},
		{unit: "local.service", want: []Link{{ConfigDir + "/default.target.upholds/local.service", ConfigDir + "/local.service"}}},
		{unit: "missing.service", wantErr: "unit missing.service: no unit file"},
		{unit: "bad-alias.service", wantErr: "another unit type"},
		{unit: "also-missing.service", wantErr: "Also=nope.service: unit nope.service: no unit file"},
		{unit: "noext", wantErr: "no type suffix"},
	}
	for _, tt := range tests {
		t.Run(tt.unit, func(t *testing.T) {
			e := &Enabler{Find: find}
			err := e.Enable(tt.unit)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(e.Links, tt.want) {
				t.Errorf("links = %v\nwant %v", e.Links, tt.want)
			}
			if tt.warn != "" && (len(e.Warnings) != 1 || !strings.Contains(e.Warnings[0], tt.warn)) {
				t.Errorf("warnings = %q, want one with %q", e.Warnings, tt.warn)
			}
		})
	}
}

func TestDisableRemoves(t *testing.T) {
	const file = "/usr/lib/systemd/system/sshd.service"
	tests := []struct {
		marked     []string
		link, dest string
		want       bool
	}{
		{[]string{"sshd.service"}, "sshd.service", file, true},
		{[]string{"sshd.service"}, "ssh.service", file, true}, // an alias
		{[]string{"sshd.service"}, "other.service", "/x/other.service", false},
		{[]string{"sshd.service", "sshd.socket"}, "sshd.socket", "/x/sshd.socket", true}, // Also=
		{[]string{"getty@.service"}, "getty@tty1.service", "/x/getty@.service", true},
		{[]string{"getty@tty2.service"}, "getty@tty1.service", "/x/getty@.service", false},
		// an instance's alias leads to the template's file: systemctl keeps it
		{[]string{"spec@one.service"}, "spec-alt@one.service", "/x/spec@.service", false},
		{[]string{"/etc/systemd/system/a.service"}, "b.service", "/etc/systemd/system/a.service", true},
	}
	for _, tt := range tests {
		if got := DisableRemoves(tt.marked, tt.link, tt.dest); got != tt.want {
			t.Errorf("DisableRemoves(%v, %s, %s) = %v, want %v", tt.marked, tt.link, tt.dest, got, tt.want)
		}
	}
}
