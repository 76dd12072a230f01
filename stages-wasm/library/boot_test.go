package library

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kilnbuild/kiln/runtime/engine"
)

// The boot tests run kiln's boot stages on a real Debian 12 tree with a
// kernel (debootstrap with linux-image-amd64 and busybox) named by
// KILN_DEBIAN_TREE. Without one they skip.

func debianTree(t *testing.T) (tree, kver string) {
	t.Helper()
	tree = os.Getenv("KILN_DEBIAN_TREE")
	if tree == "" {
		t.Skip("needs a debootstrapped Debian tree with linux-image-amd64 and busybox in KILN_DEBIAN_TREE")
	}
	kernels, _ := filepath.Glob(filepath.Join(tree, "boot", "vmlinuz-*"))
	if len(kernels) == 0 {
		t.Skipf("needs a debootstrapped Debian tree with linux-image-amd64 and busybox in KILN_DEBIAN_TREE (%s has no /boot/vmlinuz-*)", tree)
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: the Debian tree's files are root's and the copy must keep them so")
	}
	return tree, strings.TrimPrefix(filepath.Base(kernels[0]), "vmlinuz-")
}

// needBoot skips a test that boots a VM under -short, and under -race:
// each boot takes about a minute of one core under TCG, and the four with
// their stages slowed by the race detector overran go test's 10-minute
// package timeout (measured: 157 + 117 + 193 s for the first three).
// Run them with go test -count=1 -run Boot ./stages-wasm/library/.
func needBoot(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("boots a VM under TCG (about a minute): not with -short")
	}
	if raceEnabled {
		t.Skip("boots a VM under TCG: not with -race, which makes the package overrun go test's timeout; run go test -run Boot ./stages-wasm/library/ without -race")
	}
}

// initramfsTree copies what kiln.initramfs reads from the Debian tree
// (the kernel, its module index and the module directories a VM's root
// disk needs, busybox and its libraries) into a fresh tree, so the
// shared tree stays untouched.
func initramfsTree(t *testing.T, src, kver string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "tree")
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	mods := "usr/lib/modules/" + kver
	paths := []string{"bin", "lib", "lib64", "usr/lib64", "boot/vmlinuz-" + kver, "usr/bin/busybox",
		"usr/lib/x86_64-linux-gnu/libc.so.6", "usr/lib/x86_64-linux-gnu/libresolv.so.2",
		"usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
		mods + "/kernel/block", mods + "/kernel/drivers/virtio", mods + "/kernel/drivers/block", mods + "/kernel/drivers/scsi",
		mods + "/kernel/fs/ext4", mods + "/kernel/fs/jbd2", mods + "/kernel/fs/mbcache.ko",
		mods + "/kernel/lib", mods + "/kernel/crypto", mods + "/kernel/arch"}
	idx, _ := filepath.Glob(filepath.Join(src, mods, "modules.*"))
	for _, p := range idx {
		paths = append(paths, mods+"/"+filepath.Base(p))
	}
	cmd := exec.Command("cp", append(append([]string{"-a", "--parents"}, paths...), dst)...)
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("copying the Debian tree: %v: %s", err, out)
	}
	return dst
}

func runStage(t *testing.T, name, tree, opts string) []byte {
	t.Helper()
	stages, goMod := builtLibrary(t)
	st, ok := stages[name]
	if !ok {
		t.Fatalf("stage %s is not in the library", name)
	}
	if err := validate(st, []byte(opts)); err != nil {
		t.Fatal(err)
	}
	id := sha256.Sum256([]byte(name + "\x00" + opts))
	res, err := newEngine(t).Run(context.Background(), engine.Invocation{
		Name: name, ID: hex.EncodeToString(id[:]), Module: goMod, Options: []byte(opts),
		Tree: tree, Epoch: goldenEpoch,
	})
	if err != nil {
		t.Fatalf("%s: %v\nlog:\n%s", name, err, res.Log)
	}
	return res.Log
}

// initramfsOptions is what every boot test builds the initramfs with.
const initramfsOptions = `{"root_wait": 60}`

// builtInitramfs holds the initramfs one test built from the Debian tree,
// by kernel version, for the others: each build takes a minute under
// -race, and the same tree and options give the same bytes
// (TestInitramfsReproducible).
var builtInitramfs struct {
	sync.Mutex
	byKernel map[string][]byte
}

// kilnInitramfs puts kiln.initramfs's output for the Debian tree into
// tree's /boot, building it the first time.
func kilnInitramfs(t *testing.T, src, kver, tree string) {
	t.Helper()
	builtInitramfs.Lock()
	defer builtInitramfs.Unlock()
	dst := filepath.Join(tree, "boot", "initrd.img-"+kver)
	if data, ok := builtInitramfs.byKernel[kver]; ok {
		if err := os.Remove(dst); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	runStage(t, "kiln.initramfs", tree, initramfsOptions)
	data, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if builtInitramfs.byKernel == nil {
		builtInitramfs.byKernel = map[string][]byte{}
	}
	builtInitramfs.byKernel[kver] = data
}

// TestInitramfsReproducible builds the initramfs twice, in two copies of
// the tree (one build may be another test's), and wants the same bytes
// and the root device's modules in it.
func TestInitramfsReproducible(t *testing.T) {
	src, kver := debianTree(t)
	first := initramfsTree(t, src, kver)
	kilnInitramfs(t, src, kver, first)
	tree := initramfsTree(t, src, kver)
	log := runStage(t, "kiln.initramfs", tree, initramfsOptions)
	t.Logf("%s", log)
	for _, want := range []string{"virtio_blk", "virtio_pci", "ext4", "jbd2", "crc32c_generic"} {
		if !bytes.Contains(log, []byte(" "+want+" ")) && !bytes.Contains(log, []byte(" "+want+")")) {
			t.Errorf("log does not list module %s", want)
		}
	}
	var sums [2]string
	for i, tr := range []string{first, tree} {
		data, err := os.ReadFile(filepath.Join(tr, "boot", "initrd.img-"+kver))
		if err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256(data)
		sums[i] = hex.EncodeToString(s[:])
	}
	if sums[0] != sums[1] {
		t.Errorf("two builds differ: %s %s", sums[0], sums[1])
	}
	t.Logf("initramfs sha256 %s", sums[0])
}

// TestInitramfsBoots boots the Debian tree's kernel with kiln's initramfs
// under qemu (TCG, no boot loader: -kernel/-initrd) from an ext4 disk
// made of the tree, and waits for the login prompt on the serial console.
func TestInitramfsBoots(t *testing.T) {
	needBoot(t)
	src, kver := debianTree(t)
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip("needs qemu-system-x86_64 (qemu-system-x86): ", err)
	}
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		t.Skip("needs mkfs.ext4 (e2fsprogs): ", err)
	}
	tree := initramfsTree(t, src, kver)
	kilnInitramfs(t, src, kver, tree)
	dir := t.TempDir()
	const uuid = "3d1f5d36-7b3e-4f4e-9d5a-6b1c0e2a9f10"
	disk := filepath.Join(dir, "root.img")
	// The root filesystem is the Debian tree as it is, initramfs-tools'
	// initrd and all: only the kernel is handed kiln's.
	if out, err := exec.Command(mkfs, "-q", "-F", "-t", "ext4", "-U", uuid, "-L", "root", "-d", src, disk, "3G").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 -d: %v: %s", err, out)
	}
	console := filepath.Join(dir, "console.log")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, "-accel", "tcg", "-m", "1024", "-smp", "1",
		"-display", "none", "-monitor", "none", "-no-reboot",
		"-serial", "file:"+console,
		"-kernel", filepath.Join(src, "boot", "vmlinuz-"+kver),
		"-initrd", filepath.Join(tree, "boot", "initrd.img-"+kver),
		"-drive", "file="+disk+",if=virtio,format=raw",
		"-append", "root=UUID="+uuid+" ro console=ttyS0 panic=-1")
	var qout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &qout, &qout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cancel()
		<-exited
	}()
	ok, why := waitConsole(ctx, console, exited, "login:")
	log, _ := os.ReadFile(console)
	if !ok {
		keep := filepath.Join(os.TempDir(), fmt.Sprintf("kiln-initramfs-boot-%d.log", time.Now().UnixNano()))
		_ = os.WriteFile(keep, log, 0o644)
		t.Fatalf("no login prompt: %s; qemu: %s\nconsole log kept in %s, its end:\n%s", why, qout.String(), keep, tail(log, 60))
	}
	if !bytes.Contains(log, []byte("Run /init as init process")) {
		t.Errorf("the kernel did not run the initramfs's /init:\n%s", tail(log, 60))
	}
	if bytes.Contains(log, []byte("kiln initramfs: starting a shell")) {
		t.Errorf("kiln's /init failed:\n%s", tail(log, 60))
	}
	t.Logf("console, last lines:\n%s", tail(log, 15))
}

// waitConsole polls the serial console file until want appears, qemu
// exits or ctx ends.
func waitConsole(ctx context.Context, file string, exited <-chan error, want string) (bool, string) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		if b, err := os.ReadFile(file); err == nil && bytes.Contains(b, []byte(want)) {
			return true, ""
		}
		select {
		case <-ctx.Done():
			return false, "timed out: " + ctx.Err().Error()
		case err := <-exited:
			if b, _ := os.ReadFile(file); bytes.Contains(b, []byte(want)) {
				return true, ""
			}
			return false, fmt.Sprintf("qemu exited: %v", err)
		case <-tick.C:
		}
	}
}

func tail(b []byte, n int) string {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// grubDisk runs kiln.initramfs and org.osbuild.grub2 (extra options
// merged into the grub2 ones) on a copy of the Debian tree's boot files
// and makes the root disk: an ext4 of the Debian tree with the stages'
// /boot/grub and initramfs put in by debugfs. It returns the stage tree,
// the disk and a scratch directory.
func grubDisk(t *testing.T, src, kver, uuid, extra string) (tree, disk, dir string) {
	t.Helper()
	var tools [3]string
	for i, name := range []string{"mkfs.ext4", "debugfs", "grub-script-check"} {
		p, err := exec.LookPath(name)
		if err != nil {
			t.Skipf("needs %s (e2fsprogs, grub-common): %v", name, err)
		}
		tools[i] = p
	}
	mkfs, debugfs, check := tools[0], tools[1], tools[2]
	tree = initramfsTree(t, src, kver)
	cmd := exec.Command("cp", "-a", "--parents", "usr/lib/grub/i386-pc", "usr/lib/grub/x86_64-efi",
		"usr/share/grub/unicode.pf2", "etc/os-release", "usr/lib/os-release", tree)
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("copying GRUB's files: %v: %s", err, out)
	}
	kilnInitramfs(t, src, kver, tree)
	runStage(t, "org.osbuild.grub2", tree, `{"rootfs": {"uuid": "`+uuid+`"}, "kernel_opts": "ro console=ttyS0",
		"legacy": true, "grub_dir": "grub", "compat_version": 2,`+extra+`
		"config": {"timeout": 0, "serial": "serial --unit=0 --speed=115200",
		"terminal_input": ["serial"], "terminal_output": ["serial"]}}`)
	if out, err := exec.Command(check, filepath.Join(tree, "boot", "grub", "grub.cfg")).CombinedOutput(); err != nil {
		t.Fatalf("grub-script-check: %v: %s", err, out)
	}

	dir = t.TempDir()
	disk = filepath.Join(dir, "root.img")
	if out, err := exec.Command(mkfs, "-q", "-F", "-t", "ext4", "-U", uuid, "-d", src, disk, "3G").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 -d: %v: %s", err, out)
	}
	// debugfs puts the stages' output into the filesystem: /boot/grub and
	// kiln's initramfs in place of initramfs-tools' one.
	var cmds strings.Builder
	fmt.Fprintf(&cmds, "cd /boot\nrm initrd.img-%s\nwrite %s initrd.img-%s\n", kver, filepath.Join(tree, "boot", "initrd.img-"+kver), kver)
	err := filepath.WalkDir(filepath.Join(tree, "boot", "grub"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(tree, p)
		if d.IsDir() {
			fmt.Fprintf(&cmds, "mkdir /%s\n", rel)
		} else {
			fmt.Fprintf(&cmds, "cd /%s\nwrite %s %s\n", filepath.Dir(rel), p, filepath.Base(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "debugfs.cmds")
	if err := os.WriteFile(script, []byte(cmds.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(debugfs, "-w", "-f", script, disk).CombinedOutput(); err != nil {
		t.Fatalf("debugfs: %v: %s", err, out)
	}
	// What debugfs wrote must be there: a failed write is only a message.
	out, err := exec.Command(debugfs, "-R", "cat /boot/grub/grub.cfg", disk).Output()
	if want, _ := os.ReadFile(filepath.Join(tree, "boot", "grub", "grub.cfg")); err != nil || !bytes.Equal(out, want) {
		t.Fatalf("grub.cfg on the disk is not the stage's (%v):\n%s", err, out)
	}
	return tree, disk, dir
}

// bootQEMU runs qemu with args until the login prompt shows on the
// serial console, qemu exits or 300 s pass, and returns the console log;
// on failure the log is kept and its end shown.
func bootQEMU(t *testing.T, dir string, args ...string) []byte {
	t.Helper()
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip("needs qemu-system-x86_64 (qemu-system-x86): ", err)
	}
	console := filepath.Join(dir, "console.log")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Second)
	defer cancel()
	q := exec.CommandContext(ctx, qemu, append([]string{"-accel", "tcg", "-m", "1024", "-smp", "1",
		"-display", "none", "-monitor", "none", "-no-reboot", "-serial", "file:" + console}, args...)...)
	var qout bytes.Buffer
	q.Stdout, q.Stderr = &qout, &qout
	if err := q.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- q.Wait() }()
	defer func() {
		cancel()
		<-exited
	}()
	ok, why := waitConsole(ctx, console, exited, "login:")
	log, _ := os.ReadFile(console)
	if !ok {
		keep := filepath.Join(os.TempDir(), fmt.Sprintf("kiln-boot-%s-%d.log", strings.ReplaceAll(t.Name(), "/", "_"), time.Now().UnixNano()))
		_ = os.WriteFile(keep, log, 0o644)
		t.Fatalf("no login prompt: %s; qemu: %s\nconsole log kept in %s, its end:\n%s", why, qout.String(), keep, tail(log, 60))
	}
	return log
}

// checkGrubBooted: GRUB's linux command puts BOOT_IMAGE= first, so the
// kernel was booted by the menu entry kiln wrote, with its root= and
// options, and kiln's initramfs ran.
func checkGrubBooted(t *testing.T, log []byte, kver, uuid string) {
	t.Helper()
	want := "Command line: BOOT_IMAGE=/boot/vmlinuz-" + kver + " root=UUID=" + uuid + " ro console=ttyS0"
	if !bytes.Contains(log, []byte(want)) {
		t.Errorf("console lacks %q:\n%s", want, tail(log, 80))
	}
	for _, line := range strings.Split(string(log), "\n") {
		if strings.Contains(line, "Command line:") || strings.Contains(line, "login:") {
			t.Logf("console: %s", strings.TrimSpace(line))
		}
	}
	if !bytes.Contains(log, []byte("Run /init as init process")) || bytes.Contains(log, []byte("kiln initramfs: starting a shell")) {
		t.Errorf("kiln's initramfs did not run or failed:\n%s", tail(log, 60))
	}
}

// TestGrubBootsBIOS boots what org.osbuild.grub2 and kiln.initramfs wrote
// with the real GRUB of the tree under SeaBIOS: a core image of the tree's
// i386-pc modules (made by the host's grub-mkimage, as the qemu assembler
// makes it) is loaded through GRUB's own lnxboot.img with qemu -kernel, so
// no partition table or MBR code is needed: GRUB reads grub.cfg and
// grubenv from /boot/grub on the ext4 disk, loads its modules from there,
// boots the menu entry kiln wrote and the kernel kiln's initramfs.
func TestGrubBootsBIOS(t *testing.T) {
	needBoot(t)
	src, kver := debianTree(t)
	mkimage, err := exec.LookPath("grub-mkimage")
	if err != nil {
		t.Skip("needs grub-mkimage (grub-common): ", err)
	}
	const uuid = "5b0c7a2e-1f4d-4c8b-9e6a-2d7f3c1b8a90"
	tree, disk, dir := grubDisk(t, src, kver, uuid, "")
	core := filepath.Join(dir, "core.img")
	if out, err := exec.Command(mkimage, "--directory", filepath.Join(tree, "usr/lib/grub/i386-pc"),
		"--prefix", "(hd0)/boot/grub", "--format", "i386-pc", "--output", core, "--", "biosdisk", "ext2").CombinedOutput(); err != nil {
		t.Fatalf("grub-mkimage: %v: %s", err, out)
	}
	lnx, err := os.ReadFile(filepath.Join(tree, "usr/lib/grub/i386-pc/lnxboot.img"))
	if err != nil {
		t.Fatal(err)
	}
	coreImg, err := os.ReadFile(core)
	if err != nil {
		t.Fatal(err)
	}
	grubKernel := filepath.Join(dir, "grub.lnx")
	if err := os.WriteFile(grubKernel, append(lnx, coreImg...), 0o644); err != nil {
		t.Fatal(err)
	}
	log := bootQEMU(t, dir, "-kernel", grubKernel, "-drive", "file="+disk+",if=virtio,format=raw")
	checkGrubBooted(t, log, kver, uuid)
}

// TestGrubBootsUEFI boots the hybrid configuration under OVMF: the ESP
// (the stage's /boot/efi, given to qemu as a FAT drive) holds a GRUB EFI
// image with the prefix /EFI/debian, as Debian's signed grubx64.efi has,
// and org.osbuild.grub2's redirect EFI/debian/grub.cfg, which finds
// /boot/grub/grub.cfg on the root disk; GRUB then loads the x86_64-efi
// modules the stage copied to /boot/grub/x86_64-efi.
func TestGrubBootsUEFI(t *testing.T) {
	needBoot(t)
	src, kver := debianTree(t)
	mkimage, err := exec.LookPath("grub-mkimage")
	if err != nil {
		t.Skip("needs grub-mkimage (grub-common): ", err)
	}
	const ovmf = "/usr/share/ovmf/OVMF.fd"
	if _, err := os.Stat(ovmf); err != nil {
		t.Skip("needs OVMF (ovmf): ", err)
	}
	const uuid = "8e2b6f41-3c5d-4a7e-b1f0-9d4c2a6e7b35"
	tree, disk, dir := grubDisk(t, src, kver, uuid, `"uefi": {"vendor": "debian"},`)
	esp := filepath.Join(tree, "boot", "efi")
	if err := os.MkdirAll(filepath.Join(esp, "EFI", "BOOT"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(mkimage, "--directory", filepath.Join(tree, "usr/lib/grub/x86_64-efi"),
		"--prefix", "/EFI/debian", "--format", "x86_64-efi", "--output", filepath.Join(esp, "EFI", "BOOT", "BOOTX64.EFI"),
		"--", "part_gpt", "part_msdos", "fat", "ext2", "normal", "configfile", "search", "search_fs_file", "search_fs_uuid").CombinedOutput(); err != nil {
		t.Fatalf("grub-mkimage: %v: %s", err, out)
	}
	log := bootQEMU(t, dir, "-bios", ovmf, "-drive", "file=fat:"+esp+",format=raw,if=virtio,readonly=on",
		"-drive", "file="+disk+",if=virtio,format=raw")
	checkGrubBooted(t, log, kver, uuid)
}

// TestSystemdBootUEFI boots kiln.systemd-boot's ESP under OVMF: the
// tree's systemd-boot as EFI/BOOT/BOOTX64.EFI (install), loader.conf, the
// BLS entry and the kernel and kiln's initramfs copied beside it, given to
// qemu as a FAT drive; the root disk is an ext4 of the Debian tree.
func TestSystemdBootUEFI(t *testing.T) {
	needBoot(t)
	src, kver := debianTree(t)
	const ovmf = "/usr/share/ovmf/OVMF.fd"
	if _, err := os.Stat(ovmf); err != nil {
		t.Skip("needs OVMF (ovmf): ", err)
	}
	// The tree's systemd-boot, or the host's when the tree lacks the
	// package: the Debian 12 development tree has no systemd-boot-efi.
	const sdboot = "usr/lib/systemd/boot/efi/systemd-bootx64.efi"
	bootSrc := src
	if _, err := os.Stat(filepath.Join(src, sdboot)); err != nil {
		bootSrc = "/"
		if _, err := os.Stat("/" + sdboot); err != nil {
			t.Skip("needs systemd-boot (systemd-boot-efi) in the tree or on the host: ", err)
		}
	}
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		t.Skip("needs mkfs.ext4 (e2fsprogs): ", err)
	}
	tree := initramfsTree(t, src, kver)
	for _, c := range []struct{ from, path string }{{src, "etc/os-release"}, {src, "usr/lib/os-release"}, {src, "etc/machine-id"}, {bootSrc, sdboot}} {
		cmd := exec.Command("cp", "-a", "--parents", c.path, tree)
		cmd.Dir = c.from
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("copying %s: %v: %s", c.path, err, out)
		}
	}
	if err := os.MkdirAll(filepath.Join(tree, "boot", "efi"), 0o755); err != nil {
		t.Fatal(err)
	}
	const uuid = "c4a9e1d2-6b7f-4e3a-8d5c-1f2e3d4c5b6a"
	kilnInitramfs(t, src, kver, tree)
	log := runStage(t, "kiln.systemd-boot", tree, `{"rootfs": {"uuid": "`+uuid+`"}, "kernel_opts": "ro console=ttyS0",
		"install": true, "loader": {"timeout": 0, "editor": false}}`)
	t.Logf("%s", log)
	entries, _ := filepath.Glob(filepath.Join(tree, "boot", "efi", "loader", "entries", "*.conf"))
	if len(entries) != 1 {
		t.Fatalf("entries %q, want one", entries)
	}
	dir := t.TempDir()
	disk := filepath.Join(dir, "root.img")
	if out, err := exec.Command(mkfs, "-q", "-F", "-t", "ext4", "-U", uuid, "-d", src, disk, "3G").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 -d: %v: %s", err, out)
	}
	console := bootQEMU(t, dir, "-bios", ovmf, "-drive", "file=fat:"+filepath.Join(tree, "boot", "efi")+",format=raw,if=virtio,readonly=on",
		"-drive", "file="+disk+",if=virtio,format=raw")
	// systemd-boot passes the entry's options and its initrd= path.
	want := "root=UUID=" + uuid + " ro console=ttyS0"
	var cmdline string
	for _, line := range strings.Split(string(console), "\n") {
		if strings.Contains(line, "Command line:") {
			cmdline = strings.TrimSpace(line)
		}
	}
	t.Logf("console: %s", cmdline)
	if !strings.Contains(cmdline, want) || !strings.Contains(cmdline, "initrd=") {
		t.Errorf("kernel command line %q lacks %q or initrd=", cmdline, want)
	}
	if !bytes.Contains(console, []byte("Run /init as init process")) || bytes.Contains(console, []byte("kiln initramfs: starting a shell")) {
		t.Errorf("kiln's initramfs did not run or failed:\n%s", tail(console, 60))
	}
}
