package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestDebianVMBoots builds examples/debian-vm twice with the kiln under
// test, each time in a fresh store, requires the same disk bytes, and boots
// the disk under qemu (TCG, no KVM here) with SeaBIOS and with OVMF at the
// same time, each from its own overlay of the disk as built, so both boots
// are first boots of what a user gets. Each waits for the login prompt on
// the serial console, logs in as kiln over ssh with the key given to
// build.sh (kiln has no password, so nobody logs in on the console: ssh on
// port 22 with DHCP on the first NIC is what the example promises), checks
// the hostname, that the system is running, that the ESP is mounted and the
// deferred packages are configured, then presses the ACPI power button and
// waits for qemu to exit.
//
// The .debs come from a local file:// mirror laid out from the sha256 cache
// (localMirror), so a rerun is offline.
func TestDebianVMBoots(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a VM image twice and boots it twice under TCG (minutes): not with -short")
	}
	if raceEnabled {
		t.Skip("spends its time in qemu and in wasm stages, which -race only slows: make test runs it in its race-free pass")
	}
	for _, tool := range []string{"qemu-system-x86_64", "qemu-img", "ssh", "ssh-keygen", "mkfs.ext4", "mkfs.vfat", "mcopy", "grub-mkimage"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
	for _, f := range []string{vmOVMFCode, vmOVMFVars} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("needs ovmf (%s): %v", f, err)
		}
	}
	// go test's default 10-minute timeout is too short for two builds and
	// two TCG first boots.
	if dl, ok := t.Deadline(); ok && time.Until(dl) < vmTestNeeds {
		t.Skipf("needs %v of go test's -timeout, has %v: run go test -count=1 -timeout 30m -run TestDebianVMBoots ./cmd/kiln/",
			vmTestNeeds, time.Until(dl).Round(time.Second))
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	mirror := localMirror(t, filepath.Join(root, "examples/debian-vm/packages.lock.json"))
	dir := t.TempDir()
	key := filepath.Join(dir, "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "kiln-test", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	disk, sum := buildDebianVM(t, root, mirror, key+".pub")

	// The second build runs beside the boots: it only needs the CPU the
	// two single-threaded qemus leave.
	var wg sync.WaitGroup
	wg.Go(func() {
		t.Run("same-bytes", func(t *testing.T) {
			_, again := buildDebianVM(t, root, mirror, key+".pub")
			if again != sum {
				t.Errorf("two builds in fresh stores give different disks: sha256 %s and %s", sum, again)
			}
		})
	})
	wg.Go(func() {
		t.Run("bios", func(t *testing.T) {
			bootDebianVM(t, vmOverlay(t, disk), key, nil)
		})
	})
	wg.Go(func() {
		t.Run("uefi", func(t *testing.T) {
			vars := filepath.Join(t.TempDir(), "OVMF_VARS.fd")
			b, err := os.ReadFile(vmOVMFVars)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(vars, b, 0o644); err != nil {
				t.Fatal(err)
			}
			bootDebianVM(t, vmOverlay(t, disk), key, []string{
				"-drive", "if=pflash,format=raw,readonly=on,file=" + vmOVMFCode,
				"-drive", "if=pflash,format=raw,file=" + vars,
			})
		})
	})
	wg.Wait()
}

const (
	vmHostname = "kiln-vm" // examples/debian-vm/vm.json.in
	vmOVMFCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	vmOVMFVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
	// vmBootTimeout bounds one first boot, login and power-off: a TCG
	// boot to the login prompt takes 50-90 s, and the deferred package
	// scripts (Debian's update-initramfs among them) about 4 minutes more
	// on an idle machine; here two boots and a build share two cores.
	vmBootTimeout = 15 * time.Minute
	// vmTestNeeds is a build (about a minute; a cold cache downloads
	// 119 MiB first) and the boots at their bound.
	vmTestNeeds = 5*time.Minute + vmBootTimeout
)

// buildDebianVM runs examples/debian-vm/build.sh in a fresh default store
// with the .debs from mirror and returns the disk's path and sha256.
func buildDebianVM(t *testing.T, root, mirror, pubkey string) (string, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out")
	start := time.Now()
	cmd := exec.CommandContext(t.Context(), filepath.Join(root, "examples/debian-vm/build.sh"), out, pubkey)
	cmd.Env = append(os.Environ(),
		"KILN="+kilnBin,
		"KILN_DEBIAN_MIRROR=file://"+mirror,
		"XDG_CACHE_HOME="+t.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("build.sh: %v\n%s", err, tailString(stderr.String(), 4000))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	disk := lines[len(lines)-1]
	if want := filepath.Join(out, "disk.qcow2"); disk != want {
		t.Fatalf("build.sh's last line is %q, want the disk's path %q", disk, want)
	}
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		t.Fatal(err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	t.Logf("built %s (%d MiB, sha256 %s) in %v", disk, n>>20, sum, time.Since(start).Round(time.Second))
	return disk, sum
}

// vmOverlay is a qcow2 overlay of disk, so a boot leaves the disk as built.
func vmOverlay(t *testing.T, disk string) string {
	t.Helper()
	overlay := filepath.Join(t.TempDir(), "overlay.qcow2")
	if b, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-b", disk, "-F", "qcow2", overlay).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v\n%s", err, b)
	}
	return overlay
}

// bootDebianVM boots disk with the firmware args and checks it within
// vmBootTimeout.
func bootDebianVM(t *testing.T, disk, key string, firmware []string) {
	const timeout = vmBootTimeout
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	port := freePort(t)
	monitor := filepath.Join(t.TempDir(), "monitor.sock")
	args := append([]string{"-accel", "tcg", "-m", "1024", "-smp", "1", "-display", "none",
		"-monitor", "unix:" + monitor + ",server=on,wait=off",
		"-serial", "stdio", "-no-reboot",
		"-drive", "file=" + disk + ",format=qcow2,if=virtio",
		"-nic", fmt.Sprintf("user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:%d-:22", port)}, firmware...)
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	// qemu dies with the test, even one killed by a signal.
	cmd.SysProcAttr = &unix.SysProcAttr{Pdeathsig: unix.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var qerr bytes.Buffer
	cmd.Stderr = &qerr
	logPath := filepath.Join(t.ArtifactDir(), "console.log")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &vmConsole{changed: make(chan struct{}), done: make(chan struct{})}
	go c.read(stdout, log)
	exited := false
	defer func() {
		if !exited {
			cancel()
			<-c.done
			_ = cmd.Wait()
		}
		if t.Failed() {
			t.Logf("console log %s (kept with -artifacts); its end:\n%s\nqemu stderr: %s", logPath, c.tail(3000), qerr.String())
		}
	}()
	at := 0
	step := func(re string) {
		t.Helper()
		_, next, err := c.wait(ctx, at, regexp.MustCompile(re))
		if err != nil {
			t.Fatalf("after %v: %v", time.Since(start).Round(time.Second), err)
		}
		at = next
	}
	step(`GNU GRUB`)
	step(`Linux version \S+`)
	step(vmHostname + ` login: `)
	t.Logf("login prompt after %v", time.Since(start).Round(time.Second))

	// sshd starts after the first boot's deferred package scripts (its
	// host keys are made there), so the first tries may be refused.
	var res string
	for {
		try, tcancel := context.WithTimeout(ctx, time.Minute)
		ssh := exec.CommandContext(try, "ssh", "-i", key, "-p", fmt.Sprint(port),
			"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
			"-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR", "kiln@127.0.0.1",
			`echo KILNRESULT $(hostname) $(id -un) $(systemctl is-system-running --wait) $(findmnt -no FSTYPE /boot/efi) $(test -e /var/lib/kiln/dpkg-configure-pending && echo pending || echo configured) $(systemctl --failed --plain --no-legend | cut -d' ' -f1 | tr '\n' ,)`)
		b, err := ssh.CombinedOutput()
		tcancel()
		if err == nil {
			res = string(b)
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("after %v: no ssh login as kiln on port %d: %v\n%s", time.Since(start).Round(time.Second), port, err, b)
		}
		select {
		case <-ctx.Done():
		case <-c.done:
			t.Fatalf("the VM stopped before an ssh login: %v\n%s", err, b)
		case <-time.After(3 * time.Second):
		}
	}
	m := regexp.MustCompile(`KILNRESULT (\S+) (\S+) (\S+) (\S+) (\S+) ?(\S*)`).FindStringSubmatch(res)
	if m == nil {
		t.Fatalf("ssh output %q: no result line", res)
	}
	t.Logf("ssh after %v: hostname %s, user %s, system %s, /boot/efi %s, packages %s, failed units %q",
		time.Since(start).Round(time.Second), m[1], m[2], m[3], m[4], m[5], m[6])
	if m[1] != vmHostname {
		t.Errorf("hostname %q, want %q", m[1], vmHostname)
	}
	if m[2] != "kiln" {
		t.Errorf("logged in as %q, want kiln", m[2])
	}
	if m[3] != "running" {
		t.Errorf("systemctl is-system-running: %s (failed units: %s)", m[3], m[6])
	}
	if m[4] != "vfat" {
		t.Errorf("/boot/efi is %q, want the ESP mounted as vfat", m[4])
	}
	if m[5] != "configured" {
		t.Errorf("kiln-dpkg-configure.service left the deferred packages %s", m[5])
	}

	// kiln may not power off (no polkit, no sudo): the ACPI power button
	// asks systemd-logind to, as a person pressing it would.
	mon, err := net.Dial("unix", monitor)
	if err != nil {
		t.Fatalf("qemu monitor: %v", err)
	}
	defer mon.Close()
	if _, err := io.WriteString(mon, "system_powerdown\n"); err != nil {
		t.Fatalf("qemu monitor: %v", err)
	}
	select {
	case <-c.done:
	case <-ctx.Done():
		t.Fatalf("no power-off within %v of the boot's start", timeout)
	}
	exited = true
	if err := cmd.Wait(); err != nil {
		t.Errorf("qemu after power-off: %v", err)
	}
	if !strings.Contains(c.tail(1<<20), "reboot: Power down") {
		t.Errorf("the kernel did not say it powered down")
	}
	t.Logf("powered off after %v", time.Since(start).Round(time.Second))
}

// freePort is a loopback TCP port nothing listens on now, for qemu's
// forward to the guest's sshd.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func tailString(s string, n int) string { return s[max(0, len(s)-n):] }

// vmConsole collects qemu's serial output and lets the test wait for a
// pattern in it.
type vmConsole struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced on every read
	done    chan struct{} // closed when the output ends
}

func (c *vmConsole) read(r io.Reader, log io.Writer) {
	defer close(c.done)
	b := make([]byte, 4096)
	for {
		n, err := r.Read(b)
		if n > 0 {
			_, _ = log.Write(b[:n])
			c.mu.Lock()
			c.buf.Write(b[:n])
			close(c.changed)
			c.changed = make(chan struct{})
			c.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

// wait returns the console's output from offset from once re matches it.
func (c *vmConsole) wait(ctx context.Context, from int, re *regexp.Regexp) ([]string, int, error) {
	for {
		c.mu.Lock()
		out := c.buf.Bytes()[from:]
		ch := c.changed
		if loc := re.FindSubmatchIndex(out); loc != nil {
			var m []string
			for i := 0; i < len(loc); i += 2 {
				if loc[i] >= 0 {
					m = append(m, string(out[loc[i]:loc[i+1]]))
				}
			}
			c.mu.Unlock()
			return m, from + loc[1], nil
		}
		c.mu.Unlock()
		select {
		case <-ch:
		case <-c.done:
			return nil, from, fmt.Errorf("the VM stopped before %q", re)
		case <-ctx.Done():
			return nil, from, fmt.Errorf("no %q on the console: %w", re, ctx.Err())
		}
	}
}

func (c *vmConsole) tail(n int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.buf.Bytes()
	return string(b[max(0, len(b)-n):])
}

// TestDebianVMBuildRefusesBadKeys: build.sh puts PUBKEY into the
// manifest's JSON with sed, so anything but one plain key line is refused
// before kiln runs.
func TestDebianVMBuildRefusesBadKeys(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	const good = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGc2hbXUOdcdzN8oVaLUs6rwHv0Wu7WvZmtAO3yoeNLp"
	for _, tc := range []struct{ name, key string }{
		{"two lines", good + " a\n" + good + " b\n"},
		{"quote", good + ` x","password":"y`},
		{"backslash", good + ` x\`},
		{"sed ampersand", good + " a&b"},
		{"sed delimiter", good + " a|b"},
		{"carriage return", good + "\r"},
		{"not a key", "hello world"},
		{"unknown type", "ssh-dss AAAAB3NzaC1kc3MAAACBAP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			keyFile := filepath.Join(dir, "key.pub")
			if err := os.WriteFile(keyFile, []byte(tc.key), 0o644); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "out")
			cmd := exec.Command(filepath.Join(root, "examples/debian-vm/build.sh"), out, keyFile)
			// A kiln that cannot run: a refusal must come before it.
			cmd.Env = append(os.Environ(), "KILN=/nonexistent/kiln")
			b, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("build.sh with key %q: %v, want exit status 2\n%s", tc.key, err, b)
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("build.sh made %s before refusing the key", out)
			}
		})
	}
}
