package render

import (
	"encoding/json"
	"strings"
	"testing"
)

func sp(s string) *string { return &s }
func ip(i int) *int       { return &i }

func TestFstab(t *testing.T) {
	got, err := Fstab([]Filesystem{
		{UUID: "76a22bf4-f153-4541-b6c7-0332c0dfaeac", Path: "/", VFSType: sp("ext4"), Options: sp("defaults"), Freq: "1", Passno: "1"},
		{Label: "boot", Path: "/boot"},
		{Device: "/dev/sda3", Path: "swap", VFSType: sp("swap")},
		{PartLabel: "ESP", Path: "/boot/efi", VFSType: sp("vfat"), Options: sp("umask=0077,shortname=winnt"), Passno: "2"},
	})
	want := "UUID=76a22bf4-f153-4541-b6c7-0332c0dfaeac\t/\text4\tdefaults\t1\t1\n" +
		"LABEL=boot\t/boot\tnone\tdefaults\t0\t0\n" +
		"/dev/sda3\tswap\tswap\tdefaults\t0\t0\n" +
		"PARTLABEL=ESP\t/boot/efi\tvfat\tumask=0077,shortname=winnt\t0\t2\n"
	if err != nil || got != want {
		t.Errorf("Fstab = %q, %v\nwant %q", got, err, want)
	}
	for _, bad := range []Filesystem{{Path: "/"}, {UUID: "a", Label: "b", Path: "/"}, {UUID: "a"}, {UUID: "a", Path: "/x y"}} {
		if _, err := Fstab([]Filesystem{bad}); err == nil || !strings.Contains(err.Error(), `option "filesystems[0]`) {
			t.Errorf("Fstab(%+v) error = %v", bad, err)
		}
	}
}

func TestKernelCmdline(t *testing.T) {
	tests := []struct {
		uuid, opts string
		max        int
		want       string
		wantErr    bool
	}{
		{"abc", "ro quiet", 0, "root=UUID=abc ro quiet", false},
		{"abc", "", 0, "root=UUID=abc", false}, // no trailing space, as osbuild
		{"", "ro", 0, "ro", false},
		{"abc", "ro", 16, "", true},
		{"abc", "ro", 17, "root=UUID=abc ro", false},
		{"", "a\nb", 0, "", true},
	}
	for _, tt := range tests {
		got, err := KernelCmdline(tt.uuid, tt.opts, tt.max)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("KernelCmdline(%q, %q, %d) = %q, %v", tt.uuid, tt.opts, tt.max, got, err)
		}
	}
}

func TestSetEnv(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "KEYMAP=us\nFONT=lat\n"},
		{"# c\nKEYMAP=de\nXKB=x\nKEYMAP=fr\n", "# c\nKEYMAP=us\nXKB=x\nFONT=lat\n"},
		{"FONT=old", "FONT=lat\nKEYMAP=us\n"},
	}
	for _, tt := range tests {
		if got := SetEnv(tt.in, [][2]string{{"KEYMAP", "us"}, {"FONT", "lat"}}); got != tt.want {
			t.Errorf("SetEnv(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSmallFiles(t *testing.T) {
	sysctl, err := Sysctld([]SysctlParam{{Key: "net.ipv4.ip_forward", Value: sp("1")}, {Key: "-net.ipv4.conf.lo.rp_filter"}})
	if want := "net.ipv4.ip_forward = 1\n-net.ipv4.conf.lo.rp_filter\n"; err != nil || sysctl != want {
		t.Errorf("Sysctld = %q, %v", sysctl, err)
	}
	if _, err := Sysctld([]SysctlParam{{Key: "x"}}); err == nil {
		t.Error("Sysctld accepted a key without value")
	}
	tmp, err := Tmpfilesd([]Tmpfile{{Type: "d", Path: "/var/x", Mode: sp("0755"), Group: sp("wheel")}, {Type: "L+", Path: "/a"}})
	if want := "d /var/x 0755 - wheel\nL+ /a\n"; err != nil || tmp != want {
		t.Errorf("Tmpfilesd = %q, %v", tmp, err)
	}
	mp, err := Modprobe([]ModprobeCommand{{Command: "blacklist", ModuleName: "nouveau"}, {Command: "install", ModuleName: "cramfs", Cmdline: "/bin/true"}})
	if want := "blacklist nouveau\ninstall cramfs /bin/true\n"; err != nil || mp != want {
		t.Errorf("Modprobe = %q, %v", mp, err)
	}
	if got := ResolvConf([]string{"1.1.1.1", "8.8.8.8"}, []string{"example.com", "lan"}); got != "search example.com lan\nnameserver 1.1.1.1\nnameserver 8.8.8.8\n" {
		t.Errorf("ResolvConf = %q", got)
	}
}

func TestEditChrony(t *testing.T) {
	conf := "# Use public servers\npool 2.fedora.pool.ntp.org iburst\nserver old.example\ndriftfile /var/lib/chrony/drift\nleapsectz right/UTC\n"
	off := json.Number("0.5")
	var rc Refclock
	rc.Driver.Name, rc.Driver.Device, rc.Poll, rc.Offset = "PPS", "/dev/pps0", ip(3), &off
	got, err := EditChrony(conf, Chrony{
		Timeservers: []string{"a.example"},
		Servers:     []ChronyServer{{Hostname: "b.example", Minpoll: ip(4), Prefer: true}},
		Leapsectz:   sp(""),
		Refclocks:   []Refclock{rc},
	})
	want := "refclock PPS /dev/pps0 poll 3 offset 0.5\n# Use public servers\nserver a.example iburst\nserver b.example prefer iburst minpoll 4\ndriftfile /var/lib/chrony/drift\n"
	if err != nil || got != want {
		t.Errorf("EditChrony =\n%s%v\nwant\n%s", got, err, want)
	}
	unchanged, err := EditChrony(conf, Chrony{})
	if err != nil || unchanged != conf {
		t.Errorf("EditChrony with no options changed the file: %q", unchanged)
	}
}

// TestChronyRefclockDriverOptions pins the refclock lines chronyd 4.3
// accepts: driver options hang off the parameter after ':' (issue 11 item
// 11: "PPS /dev/pps0 clear" and "SHM 0 perm 0660" made chronyd refuse the
// whole file).
func TestChronyRefclockDriverOptions(t *testing.T) {
	var pps, shm, sock, phc, bad Refclock
	pps.Driver.Name, pps.Driver.Device, pps.Driver.Clear = "PPS", "/dev/pps0", true
	shm.Driver.Name, shm.Driver.Segment, shm.Driver.Perm = "SHM", ip(0), "0660"
	sock.Driver.Name, sock.Driver.Path, sock.Dpoll = "SOCK", "/run/chrony.sock", ip(-2)
	phc.Driver.Name, phc.Driver.Path, phc.Driver.NoCrossTS, phc.Driver.ExtPPS = "PHC", "/dev/ptp0", true, true
	phc.Driver.Pin, phc.Driver.Channel, phc.Driver.Clear = ip(1), ip(2), true
	bad.Driver.Name, bad.Driver.Device = "PPS", "/dev/pps0:clear"
	for _, c := range []struct {
		name string
		rc   Refclock
		want string
	}{
		{"pps-clear", pps, "refclock PPS /dev/pps0:clear"},
		{"shm-perm", shm, "refclock SHM 0:perm=0660"},
		{"sock", sock, "refclock SOCK /run/chrony.sock dpoll -2"},
		{"phc-all", phc, "refclock PHC /dev/ptp0:nocrossts:extpps:pin=1:channel=2:clear"},
		{"colon-in-device", bad, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := EditChrony("", Chrony{Refclocks: []Refclock{c.rc}})
			if c.want == "" {
				if err == nil {
					t.Fatalf("EditChrony = %q; want an error", got)
				}
				return
			}
			if err != nil || got != c.want+"\n" {
				t.Errorf("EditChrony = %q, %v; want %q", got, err, c.want+"\n")
			}
		})
	}
}

// TestChronyWords: a server name or zone holding a space or line break
// would make chronyd read more than one word, or another directive.
func TestChronyWords(t *testing.T) {
	for _, o := range []Chrony{
		{Timeservers: []string{""}},
		{Timeservers: []string{"a.example\nrefclock SOCK /x"}},
		{Servers: []ChronyServer{{Hostname: "a.example maxpoll 3"}}},
		{Leapsectz: sp("right/UTC\nx")},
	} {
		if got, err := EditChrony("", o); err == nil {
			t.Errorf("EditChrony(%+v) = %q; want an error", o, got)
		}
	}
}

func TestSysconfig(t *testing.T) {
	var s Sysconfig
	if err := json.Unmarshal([]byte(`{"kernel":{"update_default":true,"default_kernel":"kernel"},
		"network":{"networking":true,"no_zero_conf":true},
		"network-scripts":{"ifcfg":{"eth0":{"bootproto":"dhcp","device":"eth0","onboot":true,"ipv6init":false}}},
		"desktop":{"preferred":"kde"}}`), &s); err != nil {
		t.Fatal(err)
	}
	files, err := s.Files()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"/etc/sysconfig/kernel":                     "UPDATEDEFAULT=yes\nDEFAULTKERNEL=kernel\n",
		"/etc/sysconfig/network":                    "NETWORKING=yes\nNOZEROCONF=yes\n",
		"/etc/sysconfig/network-scripts/ifcfg-eth0": "DEVICE=\"eth0\"\nBOOTPROTO=\"dhcp\"\nONBOOT=\"yes\"\nIPV6INIT=\"no\"\n",
		"/etc/sysconfig/desktop":                    "PREFERRED=\"kde\"\n",
	}
	if len(files) != len(want) {
		t.Errorf("files = %v", files)
	}
	for p, w := range want {
		if files[p] != w {
			t.Errorf("%s = %q, want %q", p, files[p], w)
		}
	}
}
