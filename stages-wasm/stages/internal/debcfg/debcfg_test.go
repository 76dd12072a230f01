package debcfg

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const passwdMaster = "root:*:0:0:root:/root:/bin/bash\ndaemon:*:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
const groupMaster = "root:*:0:\nshadow:*:42:\nusers:*:100:alice,bob\n"

func TestShadowConfigOn(t *testing.T) {
	s, err := ShadowConfigOn([]byte(passwdMaster), []byte(groupMaster), 1704067200)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, got, want string }{
		{"passwd", string(s.Passwd), "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"},
		{"group", string(s.Group), "root:x:0:\nshadow:x:42:\nusers:x:100:alice,bob\n"},
		{"shadow", string(s.Shadow), "root:*:19723:0:99999:7:::\ndaemon:*:19723:0:99999:7:::\n"},
		{"gshadow", string(s.Gshadow), "root:*::\nshadow:*::\nusers:*::\n"},
		{"passwd-", string(s.PasswdBackup), passwdMaster},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if _, err := ShadowConfigOn([]byte("root:*:0:0::/:/bin/sh"), nil, 0); err == nil {
		t.Error("passwd without a final newline accepted")
	}
}

// TestShadowConfigOnMatchesShadowconfig runs the real shadowconfig's
// chrootless branch (DPKG_ROOT set, files equal to the masters) on a copy
// of the build host's base-passwd masters and compares.
func TestShadowConfigOnMatchesShadowconfig(t *testing.T) {
	sc, err := exec.LookPath("shadowconfig")
	if err != nil {
		t.Skip("needs passwd's shadowconfig: " + err.Error())
	}
	if os.Getuid() != 0 {
		t.Skip("needs root: shadowconfig chowns to root:shadow")
	}
	pm, err1 := os.ReadFile("/usr/share/base-passwd/passwd.master")
	gm, err2 := os.ReadFile("/usr/share/base-passwd/group.master")
	if err1 != nil || err2 != nil {
		t.Skip("needs base-passwd's masters in /usr/share/base-passwd")
	}
	root := t.TempDir()
	for d, files := range map[string]map[string][]byte{
		"etc":                   {"passwd": pm, "group": gm},
		"usr/share/base-passwd": {"passwd.master": pm, "group.master": gm},
	} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
		for n, b := range files {
			if err := os.WriteFile(filepath.Join(root, d, n), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	cmd := exec.Command(sc, "on")
	cmd.Env = append(os.Environ(), "DPKG_ROOT="+root, "SOURCE_DATE_EPOCH=1704067200")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("shadowconfig on: %v\n%s", err, out)
	}
	s, err := ShadowConfigOn(pm, gm, 1704067200)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]byte{"passwd": s.Passwd, "group": s.Group, "shadow": s.Shadow, "gshadow": s.Gshadow, "passwd-": s.PasswdBackup, "group-": s.GroupBackup} {
		got, err := os.ReadFile(filepath.Join(root, "etc", name))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("/etc/%s: shadowconfig wrote\n%s\nkiln computes\n%s", name, got, want)
		}
	}
}

func TestInterests(t *testing.T) {
	got := Interests([]byte("# comment\ninterest-await ldconfig\nactivate-noawait ldconfig\ninterest-noawait /usr/share/dbus-1/system.d\ninterest /x\nbogus\n"))
	if want := []string{"ldconfig", "/usr/share/dbus-1/system.d", "/x"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestDeferredList(t *testing.T) {
	got := string(DeferredList([]Deferred{{"dash", "postinst: line 85: expansion\n x"}, {"tzdata", "config script (debconf)"}}))
	if want := "dash: postinst: line 85: expansion x\ntzdata: config script (debconf)\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestUnitVerifies has systemd-analyze check the unit when it is there.
func TestUnitVerifies(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("needs systemd-analyze: " + err.Error())
	}
	p := filepath.Join(t.TempDir(), UnitName)
	if err := os.WriteFile(p, []byte(Unit), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", "--man=no", p).CombinedOutput()
	// verify also complains about the host's own units; only lines naming
	// this unit count.
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, UnitName) {
			t.Errorf("systemd-analyze verify: %s", l)
		}
	}
	_ = err
}
