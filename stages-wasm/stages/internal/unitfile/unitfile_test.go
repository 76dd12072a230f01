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

// TestMangleSuffixless: systemctl reads "sshd" as sshd.service (and
// set-default "graphical" as graphical.target); osbuild's manifests
// often give names so (issue 11 item 12).
func TestMangleSuffixless(t *testing.T) {
	for _, tt := range []struct{ in, suffix, want, wantErr string }{
		{in: "sshd", suffix: ".service", want: "sshd.service"},
		{in: "sshd.service", suffix: ".service", want: "sshd.service"},
		{in: "-.mount", suffix: ".service", want: "-.mount"},
		{in: "foo.bar", suffix: ".service", want: "foo.bar.service"},
		{in: "getty@", suffix: ".service", want: "getty@.service"},
		{in: "getty@tty1", suffix: ".service", want: "getty@tty1.service"},
		{in: "graphical", suffix: ".target", want: "graphical.target"},
		{in: "", suffix: ".service", wantErr: "not a unit name"},
		{in: "../x", suffix: ".service", wantErr: "not a unit name"},
		{in: "@x", suffix: ".service", wantErr: "empty prefix"},
	} {
		n, err := Mangle(tt.in, tt.suffix)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Mangle(%q) = %v, %v; want error %q", tt.in, n, err, tt.wantErr)
			}
			continue
		}
		if err != nil || n.String() != tt.want {
			t.Errorf("Mangle(%q, %q) = %q, %v; want %q", tt.in, tt.suffix, n.String(), err, tt.want)
		}
	}
}

// TestEnableThroughVendorAlias: a name that is a symlink in the vendor
// directory to another unit's file enables that unit, under its own
// name, as systemctl does (openssh.service -> sshd.service).
func TestEnableThroughVendorAlias(t *testing.T) {
	const lib = "/usr/lib/systemd/system/"
	e := &Enabler{Find: func(name string) (string, string, error) {
		switch name {
		case "openssh.service":
			return lib + "sshd.service", "[Install]\nWantedBy=multi-user.target\n", nil
		case "alt@.service":
			return lib + "spec@.service", "[Install]\nWantedBy=multi-user.target\n", nil
		}
		return "", "", ErrNotFound
	}}
	for _, u := range []string{"openssh.service", "alt@one.service"} {
		if err := e.Enable(u); err != nil {
			t.Fatal(err)
		}
	}
	want := []Link{
		{ConfigDir + "/multi-user.target.wants/sshd.service", lib + "sshd.service"},
		{ConfigDir + "/multi-user.target.wants/spec@one.service", lib + "spec@.service"},
	}
	if !reflect.DeepEqual(e.Links, want) {
		t.Errorf("links = %v, want %v", e.Links, want)
	}
}

func TestResolved(t *testing.T) {
	for _, tt := range []struct{ name, file, want string }{
		{"foo-alias.service", "/usr/lib/systemd/system/foo.service", "foo.service"},
		{"spec-alt@one.service", "/usr/lib/systemd/system/spec@.service", "spec@one.service"},
		{"foo.service", "/usr/lib/systemd/system/foo.service", "foo.service"},
		{"foo.socket", "/usr/lib/systemd/system/foo.service", "foo.socket"},
		{"plain.service", "/usr/lib/systemd/system/tmpl@.service", "plain.service"},
	} {
		n, err := ParseName(tt.name)
		if err != nil {
			t.Fatal(err)
		}
		if got := Resolved(n, tt.file).String(); got != tt.want {
			t.Errorf("Resolved(%s, %s) = %s, want %s", tt.name, tt.file, got, tt.want)
		}
	}
}
