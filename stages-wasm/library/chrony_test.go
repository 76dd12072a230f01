package library

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kilnbuild/kiln/runtime/engine"
)

// TestChronyConfigsParse runs the chrony stage on every golden case that
// succeeds and hands the chrony.conf it writes to chronyd 4.3 (Debian
// package chrony): `chronyd -p -f FILE` parses the whole file and exits 1
// on a line it refuses, which is how `refclock PPS /dev/pps0 clear` and
// `refclock SHM 0 perm 0660` got through the goldens (issue 11 item 11).
// chronyd -p does not look at the refclock drivers' own options (after the
// ':'); those are checked when a driver starts, so PPS and PHC lines are
// also started with `chronyd -Q` on a device that does not exist: chronyd
// then stops at opening it, after it accepted the options, or before,
// with "Invalid refclock driver option".
func TestChronyConfigsParse(t *testing.T) {
	chronyd, err := exec.LookPath("chronyd")
	if err != nil {
		t.Skip("chronyd is not installed (Debian package chrony); it checks the configs the stage writes")
	}
	if os.Getuid() != 0 {
		t.Skip("golden trees hold files owned by root: run as root")
	}
	stages, _ := builtLibrary(t)
	st, ok := stages["org.osbuild.chrony"]
	if !ok {
		t.Fatal("no org.osbuild.chrony in the library")
	}
	mod := engine.NewModule(st.Module)
	e := newEngine(t)
	cases, err := filepath.Glob(filepath.Join(testdata, "org.osbuild.chrony", "*"))
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, dir := range cases {
		if _, err := os.Stat(filepath.Join(dir, "error.txt")); err == nil {
			continue
		}
		checked++
		t.Run(filepath.Base(dir), func(t *testing.T) {
			conf := runChronyCase(t, e, st, mod, dir)
			out, err := exec.Command(chronyd, "-p", "-f", conf).CombinedOutput()
			if err != nil {
				text, _ := os.ReadFile(conf)
				t.Fatalf("chronyd -p refuses the stage's chrony.conf: %v\n%s\nthe file:\n%s", err, out, text)
			}
			checkRefclockDrivers(t, chronyd, conf)
		})
	}
	if checked == 0 {
		t.Fatal("no chrony golden case writes a config")
	}
}

// runChronyCase runs the stage on the case's tree and returns the path of
// the chrony.conf it left.
func runChronyCase(t *testing.T, e *engine.Engine, st ModuleStage, mod *engine.Module, dir string) string {
	t.Helper()
	desc, err := os.ReadFile(filepath.Join(dir, "tree.txt"))
	if err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(t.TempDir(), "tree")
	if err := os.Mkdir(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := makeTree(tree, dir, "/ dir 0755 0:0\n"+string(desc)); err != nil {
		t.Fatal(err)
	}
	opts, err := os.ReadFile(filepath.Join(dir, "options.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := validate(st, opts); err != nil {
		t.Fatal(err)
	}
	id := sha256.Sum256([]byte("chronyd-parse\x00" + dir))
	res, err := e.Run(context.Background(), engine.Invocation{
		Name: st.Name, ID: hex.EncodeToString(id[:]), Module: mod, Options: opts, Tree: tree, Epoch: goldenEpoch,
	})
	if err != nil {
		t.Fatalf("stage failed: %v\nlog:\n%s", err, res.Log)
	}
	for _, c := range []string{"etc/chrony.conf", "etc/chrony/chrony.conf"} {
		p := filepath.Join(tree, c)
		if _, err := os.Stat(p); err == nil {
			return p
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	t.Fatal("the stage left no chrony.conf")
	return ""
}

// checkRefclockDrivers starts each PPS and PHC refclock line of conf in
// chronyd -Q (measure, never set the clock) with its device replaced by a
// path that does not exist, no command socket and a pid file in a
// temporary directory. SHM and SOCK drivers would make a shared memory
// segment or a socket on the host, so they are left to -p.
func checkRefclockDrivers(t *testing.T, chronyd, conf string) {
	t.Helper()
	text, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	for i, l := range strings.Split(string(text), "\n") {
		f := strings.Fields(l)
		if len(f) < 3 || f[0] != "refclock" || (f[1] != "PPS" && f[1] != "PHC") {
			continue
		}
		_, opts, _ := strings.Cut(f[2], ":")
		f[2] = filepath.Join(tmp, "no-such-device")
		if opts != "" {
			f[2] += ":" + opts
		}
		one := filepath.Join(tmp, "refclock.conf")
		body := "bindcmdaddress /\ncmdport 0\npidfile " + filepath.Join(tmp, "chronyd.pid") + "\n" + strings.Join(f, " ") + "\n"
		if err := os.WriteFile(one, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		// The device is missing, so chronyd exits at once; the bound
		// only keeps a chronyd that did not from hanging the test.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, _ := exec.CommandContext(ctx, chronyd, "-Q", "-d", "-u", "root", "-f", one).CombinedOutput()
		cancel()
		if bytes.Contains(out, []byte("Invalid refclock driver option")) || !bytes.Contains(out, []byte("no-such-device")) {
			t.Errorf("line %d %q: chronyd does not get as far as opening the device:\n%s", i+1, l, out)
		}
	}
}
