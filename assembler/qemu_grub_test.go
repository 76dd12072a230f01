package assembler

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/store/storetest"
)

const (
	espType  = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	hostGRUB = "/usr/lib/grub/i386-pc"
)

// grubTree is a tree with GRUB's i386-pc files where a Debian tree has
// them (copied from the host's grub-pc-bin) and an ESP under /boot/efi.
func grubTree(t *testing.T) string {
	t.Helper()
	requireTools(t, "grub-mkimage", "mkfs.ext4", "debugfs", "e2fsck", "mkfs.vfat", "mcopy", "mmd", "fsck.vfat", "sgdisk")
	if _, err := os.Stat(filepath.Join(hostGRUB, "boot.img")); err != nil {
		t.Skipf("needs grub-pc-bin (%s, installed by .ci/run): %v", hostGRUB, err)
	}
	tree := t.TempDir()
	for _, dst := range []string{"usr/lib/grub/i386-pc", "boot/grub/i386-pc"} {
		if err := os.MkdirAll(filepath.Join(tree, dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("cp", "-a", hostGRUB+"/.", filepath.Join(tree, dst)).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v\n%s", err, out)
		}
	}
	storetest.WriteFile(t, tree, "boot/grub/grub.cfg", "set timeout=1\n")
	storetest.WriteFile(t, tree, "boot/efi/EFI/BOOT/BOOTX64.EFI", strings.Repeat("efi binary\n", 20000))
	storetest.WriteFile(t, tree, "boot/efi/EFI/BOOT/grub.cfg", "configfile (hd0,gpt3)/boot/grub/grub.cfg\n")
	storetest.WriteFile(t, tree, "boot/efi/EFI/debian/a-long-file-name-for-vfat.conf", "long\n")
	if err := os.MkdirAll(filepath.Join(tree, "boot/efi/loader/entries"), 0o755); err != nil {
		t.Fatal(err)
	}
	storetest.WriteFile(t, tree, "etc/hostname", "kiln\n")
	return tree
}

// bootGPTOpts is the layout osbuild's generated qcow2 manifests use: a
// BIOS boot partition, an ESP and the root, so the disk boots both ways.
const bootGPTOpts = `{"format": "raw", "filename": "disk.img", "size": 134217728, "pttype": "gpt",
  "ptuuid": "d209c89e-ea5e-4fbd-b161-b461cce297e0", "bootloader": {"type": "grub2"}, "partitions": [
  {"start": 2048, "size": 2048, "type": "21686148-6449-6E6F-744E-656564454649", "name": "BIOS-BOOT"},
  {"size": 65536, "type": "` + espType + `", "name": "EFI-SYSTEM",
   "filesystem": {"type": "vfat", "uuid": "7B77-95E7", "label": "EFI-SYSTEM", "mountpoint": "/boot/efi"}},
  {"name": "root", "filesystem": {"type": "ext4", "uuid": "` + testUUID + `", "label": "root", "mountpoint": "/"}}]}`

// wantCore is what GRUB's core image at sector must be: grub-mkimage run
// here on the same modules with the prefix osbuild would give, its
// blocklist pointing at the sector after its first.
func wantCore(t *testing.T, tree, prefix, table string, sector int64) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "core.img")
	tool(t, "grub-mkimage", "--directory", filepath.Join(tree, "usr/lib/grub/i386-pc"), "--prefix", prefix,
		"--format", "i386-pc", "--compression", "auto", "--output", out, "biosdisk", table, "ext2")
	core, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint64(core[0x1f4:], uint64(sector+1))
	return core
}

// checkMBRCode checks the MBR's first 440 bytes: the tree's boot.img with
// the core image's sector at 0x5c.
func checkMBRCode(t *testing.T, tree string, disk []byte, coreSector int64) {
	t.Helper()
	boot, err := os.ReadFile(filepath.Join(tree, "usr/lib/grub/i386-pc/boot.img"))
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte(nil), boot[:440]...)
	binary.LittleEndian.PutUint64(want[0x5c:], uint64(coreSector))
	if !bytes.Equal(disk[:440], want) {
		t.Errorf("MBR bytes 0..439 are not boot.img with kernel sector %d", coreSector)
	}
	if got := binary.LittleEndian.Uint64(disk[0x5c:]); got != uint64(coreSector) {
		t.Errorf("boot.img's kernel sector is %d, want %d", got, coreSector)
	}
	if disk[510] != 0x55 || disk[511] != 0xaa {
		t.Errorf("MBR signature %x %x: the table's sector was overwritten", disk[510], disk[511])
	}
}

// TestQemuGRUBGPT: a GPT disk with a BIOS boot partition, an ESP (vfat)
// and the root: GRUB's core in the BIOS boot partition, boot.img in the
// MBR, the ESP passing fsck.vfat with the tree's /boot/efi in it, the root
// passing e2fsck without /boot/efi's files; two builds, the tree's atimes
// changed between them, give the same bytes.
func TestQemuGRUBGPT(t *testing.T) {
	tree := grubTree(t)
	path := runQemu(t, tree, bootGPTOpts)
	disk, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tool(t, "sgdisk", "-v", path)
	wantIn(t, "sgdisk -p", tool(t, "sgdisk", "-p", path),
		"   1            2048            4095   1024.0 KiB  EF02  BIOS-BOOT",
		"   2            4096           69631   32.0 MiB    EF00  EFI-SYSTEM",
		"   3           69632          262110   94.0 MiB    8300  root")
	checkMBRCode(t, tree, disk, 2048)
	core := wantCore(t, tree, "(,gpt3)/boot/grub", "part_gpt", 2048)
	if got := disk[2048*512 : 2048*512+len(core)]; !bytes.Equal(got, core) {
		t.Errorf("BIOS boot partition does not hold grub-mkimage's core image for (,gpt3)/boot/grub (%d bytes)", len(core))
	}

	esp := extract(t, disk, 4096, 65536)
	if out, err := exec.Command("fsck.vfat", "-n", esp).CombinedOutput(); err != nil {
		t.Errorf("fsck.vfat -n: %v\n%s", err, out)
	}
	wantIn(t, "mdir", tool(t, "mdir", "-i", esp, "::/"), "Volume in drive : is EFI-SYSTEM", "Volume Serial Number is 7B77-95E7")
	wantIn(t, "mdir", tool(t, "mdir", "-i", esp, "-/", "::/"), "BOOTX64  EFI    220000 2023-11-14  22:13", "a-long-file-name-for-vfat.conf", "entries")
	if got := tool(t, "mtype", "-i", esp, "::/EFI/BOOT/grub.cfg"); got != "configfile (hd0,gpt3)/boot/grub/grub.cfg\n" {
		t.Errorf("grub.cfg on the ESP: %q", got)
	}
	root := fmt.Sprintf("%s?offset=%d", path, 69632*512)
	fsck(t, path, 69632*512)
	wantIn(t, "root", debugfs(t, root, "cat /boot/grub/grub.cfg"), "set timeout=1")
	if ls := debugfs(t, root, "ls /boot/efi"); strings.Contains(ls, "EFI") {
		t.Errorf("the root filesystem holds the ESP's files:\n%s", ls)
	}

	// Reproducible: the same bytes from a second build after touching
	// every atime in the tree.
	touchAtimes(t, tree)
	again, err := os.ReadFile(runQemu(t, tree, bootGPTOpts))
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(disk) != sha256.Sum256(again) {
		t.Errorf("two builds of the same tree differ")
	}
}

func touchAtimes(t *testing.T, tree string) {
	t.Helper()
	err := filepath.Walk(tree, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.Mode()&os.ModeSymlink != 0 {
			return err
		}
		return os.Chtimes(p, fi.ModTime().Add(12345e9), fi.ModTime())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// extract copies sectors [start, start+n) of disk into a file.
func extract(t *testing.T, disk []byte, start, n int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "part.img")
	if err := os.WriteFile(p, disk[start*512:(start+n)*512], 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestQemuGRUBDos: on a dos disk the core goes into the gap after the MBR,
// at sector 1, and the disk identifier and the table stay.
func TestQemuGRUBDos(t *testing.T) {
	tree := grubTree(t)
	requireTools(t, "sfdisk")
	path := runQemu(t, tree, `{"format": "raw", "filename": "disk.img", "size": 67108864, "ptuuid": "0x14fc63d2",
	  "root_fs_uuid": "`+testUUID+`", "bootloader": {"type": "grub2", "platform": "i386-pc"}}`)
	disk, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	wantIn(t, "sfdisk --dump", tool(t, "sfdisk", "--dump", path), "label-id: 0x14fc63d2", "start=        2048, size=      129024, type=83, bootable")
	checkMBRCode(t, tree, disk, 1)
	core := wantCore(t, tree, "(,msdos1)/boot/grub", "part_msdos", 1)
	if !bytes.Equal(disk[512:512+len(core)], core) {
		t.Errorf("the MBR gap does not hold grub-mkimage's core image for (,msdos1)/boot/grub")
	}
	fsck(t, path, 2048*512)
}

// TestQemuGRUBBootPartition: with a /boot partition the prefix is the
// GRUB directory relative to it, and /boot/grub2 is taken where the tree
// has it (osbuild's trees).
func TestQemuGRUBBootPartition(t *testing.T) {
	tree := grubTree(t)
	if err := os.Rename(filepath.Join(tree, "boot/grub"), filepath.Join(tree, "boot/grub2")); err != nil {
		t.Fatal(err)
	}
	path := runQemu(t, tree, `{"format": "raw", "filename": "disk.img", "size": 134217728, "pttype": "gpt",
	  "ptuuid": "d209c89e-ea5e-4fbd-b161-b461cce297e0", "bootloader": {"type": "grub2"}, "partitions": [
	  {"size": 2048, "type": "21686148-6449-6E6F-744E-656564454649"},
	  {"size": 65536, "filesystem": {"type": "ext4", "uuid": "0194fdc2-fa2f-4cc0-81d3-ff12045b73c8", "mountpoint": "/boot"}},
	  {"filesystem": {"type": "ext4", "uuid": "`+testUUID+`", "mountpoint": "/"}}]}`)
	disk, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	core := wantCore(t, tree, "(,gpt2)/grub2", "part_gpt", 2048)
	if !bytes.Equal(disk[2048*512:2048*512+len(core)], core) {
		t.Errorf("the core image's prefix is not (,gpt2)/grub2")
	}
}

// TestQemuBootRefused: trees and layouts GRUB or vfat cannot use are
// refused, naming the option, and leave nothing behind.
func TestQemuBootRefused(t *testing.T) {
	base := func(parts string) string {
		return `{"format": "raw", "filename": "disk.img", "size": 134217728, "pttype": "gpt",
		  "ptuuid": "d209c89e-ea5e-4fbd-b161-b461cce297e0", "bootloader": {"type": "grub2"}, "partitions": [` + parts + `]}`
	}
	root := `{"filesystem": {"type": "ext4", "uuid": "` + testUUID + `", "mountpoint": "/"}}`
	esp := `{"size": 65536, "type": "` + espType + `", "filesystem": {"type": "vfat", "uuid": "7B77-95E7", "mountpoint": "/boot/efi"}}`
	bios := `{"size": 2048, "type": "21686148-6449-6E6F-744E-656564454649"}`
	tests := []struct {
		name   string
		tree   func(t *testing.T, tree string)
		opts   string
		option string
		msg    string
	}{
		{"no modules in the tree", func(t *testing.T, tree string) { os.RemoveAll(filepath.Join(tree, "usr/lib/grub")) },
			base(bios + "," + root), "bootloader", "the tree has no /usr/lib/grub/i386-pc"},
		{"no modules in the GRUB directory", func(t *testing.T, tree string) { os.RemoveAll(filepath.Join(tree, "boot/grub/i386-pc")) },
			base(bios + "," + root), "bootloader", "GRUB's modules are not in the tree's /boot/grub/i386-pc"},
		{"module is a symlink", func(t *testing.T, tree string) {
			p := filepath.Join(tree, "usr/lib/grub/i386-pc/ext2.mod")
			os.Remove(p)
			if err := os.Symlink("/etc/shadow", p); err != nil {
				t.Fatal(err)
			}
		}, base(bios + "," + root), "bootloader", "not a regular file"},
		{"module directory through a symlink", func(t *testing.T, tree string) {
			os.RemoveAll(filepath.Join(tree, "usr/lib/grub"))
			if err := os.Symlink(filepath.Dir(hostGRUB), filepath.Join(tree, "usr/lib/grub")); err != nil {
				t.Fatal(err)
			}
		}, base(bios + "," + root), "bootloader", "symlinks are not followed"},
		{"BIOS boot partition too small", nil,
			base(`{"size": 16, "type": "21686148-6449-6E6F-744E-656564454649"},` + root), "bootloader", "the BIOS boot partition holds 8192"},
		{"MBR gap too small", nil, `{"format": "raw", "filename": "disk.img", "size": 67108864, "ptuuid": "0x14fc63d2", "pttype": "dos",
		  "bootloader": {"type": "grub2"}, "partitions": [{"start": 40, ` + root[1:] + `]}`, "bootloader", "the gap between the MBR and the first partition holds 19968"},
		{"ESP symlink", func(t *testing.T, tree string) {
			if err := os.Symlink("/etc/shadow", filepath.Join(tree, "boot/efi/EFI/BOOT/shadow")); err != nil {
				t.Fatal(err)
			}
		}, base(bios + "," + esp + "," + root), "partitions[1].filesystem.mountpoint", "EFI/BOOT/shadow is a L"},
		{"ESP fifo", func(t *testing.T, tree string) {
			if err := unix.Mkfifo(filepath.Join(tree, "boot/efi/fifo"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, base(bios + "," + esp + "," + root), "partitions[1].filesystem.mountpoint", "holds directories and regular files only"},
		{"ESP names differing in case", func(t *testing.T, tree string) {
			storetest.WriteFile(t, tree, "boot/efi/EFI/boot/x", "x")
		}, base(bios + "," + esp + "," + root), "partitions[1].filesystem.mountpoint", "differ only in case"},
		{"ESP name with a wildcard", func(t *testing.T, tree string) {
			storetest.WriteFile(t, tree, "boot/efi/a*b", "x")
		}, base(bios + "," + esp + "," + root), "partitions[1].filesystem.mountpoint", `cannot hold the name "a*b"`},
		{"ESP name starting with a dash", func(t *testing.T, tree string) {
			storetest.WriteFile(t, tree, "boot/efi/-i", "x")
		}, base(bios + "," + esp + "," + root), "partitions[1].filesystem.mountpoint", `cannot hold the name "-i"`},
		{"ESP too small for its files", func(t *testing.T, tree string) {
			f, err := os.Create(filepath.Join(tree, "boot/efi/big"))
			if err != nil {
				t.Fatal(err)
			}
			_, err = io.CopyN(f, strings.NewReader(strings.Repeat("x", 40<<20)), 40<<20)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
		}, base(bios + "," + esp + "," + root), "partitions[1].filesystem", "do not fit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tree := grubTree(t)
			if tt.tree != nil {
				tt.tree(t, tree)
			}
			out := t.TempDir()
			a, _ := lookup("org.osbuild.qemu")
			err := a.Assemble(t.Context(), Input{Tree: tree, Output: out, Options: json.RawMessage(tt.opts), Epoch: testEpoch})
			if err == nil || !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), `option "`+tt.option+`"`) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("got %v, want ErrFailed naming option %q and %q", err, tt.option, tt.msg)
			}
			if entries, _ := os.ReadDir(out); len(entries) != 0 {
				t.Errorf("the output holds %d entries after the error", len(entries))
			}
		})
	}
}

// FuzzVFATName: a name the ESP's pattern lets through is one FAT keeps
// as it is and mtools reads as a plain name: no character FAT forbids or
// mtools takes as a wildcard, no leading '-', no trailing dot or space.
func FuzzVFATName(f *testing.F) {
	for _, s := range []string{"BOOTX64.EFI", "grub.cfg", "6.1.0-50-amd64", "a b", "-i", "a*b", "x.", "x ", ".", "a\x00b", "é", "[x]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if !vfatNameRE.MatchString(name) {
			return
		}
		if name == "" || strings.HasPrefix(name, "-") || strings.HasSuffix(name, ".") && name != "." || strings.HasSuffix(name, " ") {
			t.Errorf("%q: empty, a leading dash or a trailing dot or space", name)
		}
		for _, r := range name {
			if r < 0x20 || r > 0x7e || strings.ContainsRune(`*?<>|:"\/[]`, r) {
				t.Errorf("%q holds %q", name, r)
			}
		}
	})
}

// cancelAfter cancels itself at the n-th call of Err, so the test cancels
// the assembler at each place it looks at its context, without timing.
type cancelAfter struct {
	context.Context
	cancel context.CancelFunc
	n      int64
	calls  atomic.Int64
}

func (c *cancelAfter) Err() error {
	if c.calls.Add(1) >= c.n {
		c.cancel()
	}
	return c.Context.Err()
}

// TestQemuBootCancel: cancelled at any of its context checks while making
// the ESP and installing GRUB, the assembler returns context.Canceled (not
// a failure blamed on the input) and leaves the output empty.
func TestQemuBootCancel(t *testing.T) {
	tree := grubTree(t)
	a, _ := lookup("org.osbuild.qemu")
	run := func(n int64) (int64, int, error) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		c := &cancelAfter{Context: ctx, cancel: cancel, n: n}
		out := t.TempDir()
		err := a.Assemble(c, Input{Tree: tree, Output: out, Options: json.RawMessage(bootGPTOpts), Epoch: testEpoch})
		entries, _ := os.ReadDir(out)
		return c.calls.Load(), len(entries), err
	}
	total, _, err := run(1 << 62)
	if err != nil {
		t.Fatal(err)
	}
	// The last checks are the ESP's and GRUB's (the partitions are filled
	// in order, GRUB last): try each of the last 16 and a few before.
	for n := int64(1); n <= total; n++ {
		if n < total-16 && n&(n-1) != 0 {
			continue
		}
		_, left, err := run(n)
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrFailed) {
			t.Errorf("cancelled at check %d of %d: %v, want context.Canceled and not ErrFailed", n, total, err)
		}
		if left != 0 {
			t.Errorf("cancelled at check %d: the output holds %d entries", n, left)
		}
	}
}
