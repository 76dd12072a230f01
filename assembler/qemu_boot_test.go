package assembler

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
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

// The boot test builds a GPT disk (BIOS boot partition, ESP, root) from a
// debootstrapped Debian tree with a kernel and boots it under qemu (TCG),
// once with SeaBIOS and once with OVMF, logging in as root on the serial
// console.
const (
	bootHostname  = "kiln-boot"
	bootESPSerial = "7B77-95E7"
	// bootTimeout bounds one boot, login and power-off; a TCG boot to
	// login takes 70-90 s on an idle machine.
	bootTimeout = 6 * time.Minute
	ovmfCode    = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	ovmfVars    = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

func bootDiskOpts() string {
	return `{"format": "raw", "filename": "disk.img", "size": 3221225472, "pttype": "gpt",
  "ptuuid": "8dd9b4c1-5b3e-4f6e-9c2a-1e0f4b7a6d21", "bootloader": {"type": "grub2"}, "partitions": [
  {"start": 2048, "size": 2048, "type": "21686148-6449-6E6F-744E-656564454649", "name": "BIOS-BOOT"},
  {"size": 131072, "type": "` + espType + `", "name": "EFI-SYSTEM",
   "filesystem": {"type": "vfat", "uuid": "` + bootESPSerial + `", "label": "EFI-SYSTEM", "mountpoint": "/boot/efi"}},
  {"name": "root", "filesystem": {"type": "ext4", "uuid": "` + testUUID + `", "label": "root", "mountpoint": "/"}}]}`
}

// TestBootDisk boots the disk both ways. It needs root (an overlay mount
// on the read-only tree), qemu-system-x86_64, OVMF for the UEFI half, and
// a tree named by KILN_DEBIAN_TREE (debootstrap of Debian 12 with
// linux-image-amd64, grub-pc-bin, grub-efi-amd64-bin, systemd). The
// example's boot test (cmd/kiln TestDebianVMBoots) needs no such tree.
func TestBootDisk(t *testing.T) {
	if testing.Short() {
		t.Skip("boots two VMs under TCG (minutes): not with -short")
	}
	requireRoot(t)
	requireTools(t, "qemu-system-x86_64", "grub-mkimage", "mkfs.ext4", "debugfs", "e2fsck", "mkfs.vfat", "mcopy", "mmd")
	tree := os.Getenv("KILN_DEBIAN_TREE")
	if tree == "" {
		t.Skip("needs a debootstrapped Debian 12 tree with a kernel and GRUB in KILN_DEBIAN_TREE")
	}
	kernels, _ := filepath.Glob(filepath.Join(tree, "boot/vmlinuz-*"))
	if len(kernels) == 0 {
		t.Skipf("needs a Debian tree with a kernel in KILN_DEBIAN_TREE: none at %s", tree)
	}
	disk := bootDisk(t, tree, filepath.Base(kernels[0]))
	t.Run("bios", func(t *testing.T) {
		bootVM(t, disk, nil)
	})
	t.Run("uefi", func(t *testing.T) {
		for _, f := range []string{ovmfCode, ovmfVars} {
			if _, err := os.Stat(f); err != nil {
				t.Skipf("needs ovmf (%s): %v", f, err)
			}
		}
		vars := filepath.Join(t.TempDir(), "OVMF_VARS.fd")
		b, err := os.ReadFile(ovmfVars)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vars, b, 0o644); err != nil {
			t.Fatal(err)
		}
		bootVM(t, disk, []string{
			"-drive", "if=pflash,format=raw,readonly=on,file=" + ovmfCode,
			"-drive", "if=pflash,format=raw,file=" + vars,
		})
	})
}

// bootDisk assembles the disk, or takes it from ~/.cache/kiln-test when
// one was made from the same tree (names, sizes, modes, mtimes), options
// and qemu assembler version.
func bootDisk(t *testing.T, tree, kernel string) string {
	t.Helper()
	version := strings.TrimPrefix(kernel, "vmlinuz-")
	grubCfg := `set timeout=3
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
insmod part_gpt
insmod ext2
search --no-floppy --fs-uuid --set=root ` + testUUID + `
menuentry 'Debian (kiln boot test)' {
	linux /boot/vmlinuz-` + version + ` root=UUID=` + testUUID + ` rw console=ttyS0,115200
	initrd /boot/initrd.img-` + version + `
}
`
	// GRUB for UEFI, made as a test helper (osbuild's qemu assembler
	// installs no EFI binary either): its early config finds the root by
	// UUID and reads the same grub.cfg.
	early := "search --no-floppy --fs-uuid --set=root " + testUUID + "\nset prefix=($root)/boot/grub\nconfigfile $prefix/grub.cfg\n"
	fstab := "UUID=" + testUUID + " / ext4 rw 0 1\nUUID=" + bootESPSerial + " /boot/efi vfat umask=0077 0 2\n"

	h := sha256.New()
	fmt.Fprintf(h, "qemu %s\n%s\n%s\n%s\n%s\n", qemu{}.Version(), bootDiskOpts(), grubCfg, early, fstab)
	err := filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %v %d %d\n", strings.TrimPrefix(p, tree), fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(home, ".cache/kiln-test/boot-disk-"+hex.EncodeToString(h.Sum(nil))[:16]+".img")
	// KILN_BOOT_REBUILD=1 builds the disk again and, when the cache holds
	// one for the same inputs, requires the same bytes.
	var cached []byte
	if _, err := os.Stat(cache); err == nil {
		if os.Getenv("KILN_BOOT_REBUILD") == "" {
			t.Logf("boot disk from the cache: %s", cache)
			return cache
		}
		cached = fileSHA256(t, cache)
	}

	// The tree with the boot test's files on top, without copying it: an
	// overlay on the read-only tree.
	dir := t.TempDir()
	upper, work, merged := filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "merged")
	for _, d := range []string{upper, work, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mount("overlay", merged, "overlay", 0, "lowerdir="+tree+",upperdir="+upper+",workdir="+work); err != nil {
		t.Skipf("needs an overlay mount on %s: %v", tree, err)
	}
	t.Cleanup(func() { _ = unix.Unmount(merged, unix.MNT_DETACH) })
	write := func(name, content string, mode os.FileMode) {
		p := filepath.Join(merged, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("boot/grub/grub.cfg", grubCfg, 0o644)
	write("etc/hostname", bootHostname+"\n", 0o644)
	write("etc/fstab", fstab, 0o644)
	// root without a password, for the serial console's login.
	shadow, err := os.ReadFile(filepath.Join(merged, "etc/shadow"))
	if err != nil {
		t.Fatal(err)
	}
	shadow = regexp.MustCompile(`(?m)^root:[^:]*:`).ReplaceAll(shadow, []byte("root::"))
	write("etc/shadow", string(shadow), 0o640)
	if err := os.MkdirAll(filepath.Join(merged, "boot/grub/i386-pc"), 0o755); err != nil {
		t.Fatal(err)
	}
	tool(t, "cp", "-a", filepath.Join(merged, "usr/lib/grub/i386-pc")+"/.", filepath.Join(merged, "boot/grub/i386-pc"))
	write("boot/grub/early.cfg", early, 0o644)
	if err := os.MkdirAll(filepath.Join(merged, "boot/efi/EFI/BOOT"), 0o755); err != nil {
		t.Fatal(err)
	}
	tool(t, "grub-mkimage", "--directory", filepath.Join(merged, "usr/lib/grub/x86_64-efi"), "--format", "x86_64-efi",
		"--prefix", "/boot/grub", "--config", filepath.Join(merged, "boot/grub/early.cfg"),
		"--output", filepath.Join(merged, "boot/efi/EFI/BOOT/BOOTX64.EFI"),
		"part_gpt", "ext2", "fat", "normal", "linux", "search", "search_fs_uuid", "configfile", "echo", "serial",
		"efi_gop", "all_video", "gzio", "zstd", "terminal", "test")
	if err := os.Remove(filepath.Join(merged, "boot/grub/early.cfg")); err != nil {
		t.Fatal(err)
	}

	out := t.TempDir()
	a, _ := lookup("org.osbuild.qemu")
	start := time.Now()
	if err := a.Assemble(t.Context(), Input{Tree: merged, Output: out, Options: json.RawMessage(bootDiskOpts()), Epoch: testEpoch}); err != nil {
		t.Fatal(err)
	}
	t.Logf("assembled the boot disk in %v", time.Since(start).Round(time.Second))
	if cached != nil {
		if got := fileSHA256(t, filepath.Join(out, "disk.img")); !bytes.Equal(got, cached) {
			t.Fatalf("the rebuilt disk's sha256 is %x, the cached one's %x: two builds differ", got, cached)
		}
		t.Logf("rebuilt: the same sha256 as the cached disk, %x", cached)
	}
	if err := os.MkdirAll(filepath.Dir(cache), 0o755); err != nil {
		t.Fatal(err)
	}
	// Keep it sparse: rename when on the same filesystem, else cp.
	if err := os.Rename(filepath.Join(out, "disk.img"), cache); err != nil {
		tool(t, "cp", "--sparse=always", filepath.Join(out, "disk.img"), cache+".tmp")
		if err := os.Rename(cache+".tmp", cache); err != nil {
			t.Fatal(err)
		}
	}
	return cache
}

func fileSHA256(t *testing.T, p string) []byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return h.Sum(nil)
}

// console is a VM's serial console: what it printed so far, also in a log
// file, and a way to wait for a line.
type console struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced on every read
	done    chan struct{} // closed when the output ends
}

func (c *console) read(r io.Reader, log io.Writer) {
	defer close(c.done)
	b := make([]byte, 4096)
	for {
		n, err := r.Read(b)
		if n > 0 {
			log.Write(b[:n])
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
func (c *console) wait(ctx context.Context, from int, re *regexp.Regexp) ([]string, int, error) {
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

func (c *console) tail(n int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.buf.Bytes()
	return string(b[max(0, len(b)-n):])
}

// bootVM boots disk (read-only: -snapshot) with the firmware args, waits
// for GRUB and the login prompt, logs in as root, checks the hostname, the
// system's state and the ESP's mount, and powers off.
func bootVM(t *testing.T, disk string, firmware []string) {
	ctx, cancel := context.WithTimeout(t.Context(), bootTimeout)
	defer cancel()
	args := append([]string{"-accel", "tcg", "-m", "1024", "-smp", "1", "-display", "none", "-monitor", "none",
		"-serial", "stdio", "-no-reboot", "-snapshot",
		"-drive", "file=" + disk + ",format=raw,if=virtio"}, firmware...)
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	// qemu dies with the test, even one killed by a signal.
	cmd.SysProcAttr = &unix.SysProcAttr{Pdeathsig: unix.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
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
	c := &console{changed: make(chan struct{}), done: make(chan struct{})}
	go c.read(stdout, log)
	defer func() {
		cancel()
		<-c.done
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("console log %s (kept with -artifacts); its end:\n%s\nqemu stderr: %s", logPath, c.tail(3000), stderr.String())
		}
	}()
	at := 0
	step := func(re string) []string {
		t.Helper()
		m, next, err := c.wait(ctx, at, regexp.MustCompile(re))
		if err != nil {
			t.Fatalf("after %v: %v", time.Since(start).Round(time.Second), err)
		}
		at = next
		return m
	}
	send := func(s string) {
		t.Helper()
		if _, err := io.WriteString(stdin, s); err != nil {
			t.Fatal(err)
		}
	}
	step(`GNU GRUB`)
	step(`Linux version \S+`)
	step(bootHostname + ` login: `)
	t.Logf("login prompt after %v", time.Since(start).Round(time.Second))
	send("root\r")
	step(`root@` + bootHostname + `:~# `)
	// The quotes keep the echoed command line from matching.
	send(`echo KILN""RESULT $(hostname) $(systemctl is-system-running --wait) $(findmnt -no FSTYPE /boot/efi) $(systemctl --failed --plain --no-legend | cut -d' ' -f1 | tr '\n' ,)` + "\r")
	m := step(`KILNRESULT (\S+) (\S+) (\S+) ?(\S*)\r?\n`)
	t.Logf("after %v: hostname %s, system %s, /boot/efi %s, failed units %q", time.Since(start).Round(time.Second), m[1], m[2], m[3], m[4])
	if m[1] != bootHostname {
		t.Errorf("hostname %q, want %q", m[1], bootHostname)
	}
	if m[3] != "vfat" {
		t.Errorf("/boot/efi is %q, want the ESP mounted as vfat (by its serial %s)", m[3], bootESPSerial)
	}
	if m[2] != "running" {
		t.Errorf("systemctl is-system-running: %s (failed units: %s)", m[2], m[4])
	}
	send("poweroff\r")
	<-c.done
	if err := cmd.Wait(); err != nil {
		t.Errorf("qemu after poweroff: %v", err)
	}
	t.Logf("powered off after %v", time.Since(start).Round(time.Second))
}
