package assembler

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kilnbuild/kiln/store/storetest"

	"github.com/kilnbuild/kiln/store/treecopy"
)

func runQemu(t *testing.T, tree, opts string) string {
	t.Helper()
	return runImage(t, "org.osbuild.qemu", tree, opts)
}

func tool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func wantIn(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s: no %q in\n%s", what, w, got)
		}
	}
}

// bootTree is a RichTree with files for a /boot and a /boot/efi partition.
func bootTree(t *testing.T) string {
	tree := richTree(t)
	storetest.WriteFile(t, tree, "boot/vmlinuz", "kernel\n")
	storetest.WriteFile(t, tree, "boot/efi/EFI/BOOT/BOOTX64.EFI", "efi\n")
	return tree
}

const gptOpts = `{"format": "raw", "filename": "disk.img", "size": 100663296, "pttype": "gpt",
  "ptuuid": "d209c89e-ea5e-4fbd-b161-b461cce297e0", "partitions": [
  {"start": 2048, "size": 2048, "type": "21686148-6449-6E6F-744E-656564454649", "name": "bios"},
  {"size": 16384, "type": "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "name": "efi",
   "filesystem": {"type": "ext4", "uuid": "7b5a1b6e-0f4c-4c8e-9a0e-6f1d2c3b4a51", "mountpoint": "/boot/efi"}},
  {"size": 32768, "name": "boot", "uuid": "0194fdc2-fa2f-4cc0-81d3-ff12045b73c8",
   "filesystem": {"type": "ext4", "uuid": "4e9f1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b", "label": "boot", "mountpoint": "/boot"}},
  {"name": "root", "filesystem": {"type": "ext4", "uuid": "` + testUUID + `", "label": "root", "mountpoint": "/"}}]}`

// TestQemuGPT reads a four-partition GPT disk back with sgdisk, and each
// filesystem with e2fsck and debugfs at its offset: each holds its part
// of the tree and no other partition's files.
func TestQemuGPT(t *testing.T) {
	requireTools(t, "mkfs.ext4", "debugfs", "e2fsck", "sgdisk")
	tree := bootTree(t)
	disk := runQemu(t, tree, gptOpts)
	if st, _ := os.Stat(disk); st.Size() != 100663296 {
		t.Fatalf("disk size %d", st.Size())
	}
	tool(t, "sgdisk", "-v", disk) // verifies both headers and the entries
	wantIn(t, "sgdisk -p", tool(t, "sgdisk", "-p", disk),
		"Disk identifier (GUID): D209C89E-EA5E-4FBD-B161-B461CCE297E0",
		"   1            2048            4095   1024.0 KiB  EF02  bios",
		"   2            4096           20479   8.0 MiB     EF00  efi",
		"   3           20480           53247   16.0 MiB    8300  boot",
		"   4           53248          196574   70.0 MiB    8300  root")
	wantIn(t, "sgdisk -i 3", tool(t, "sgdisk", "-i", "3", disk), "Partition unique GUID: 0194FDC2-FA2F-4CC0-81D3-FF12045B73C8")

	dev := func(sector int64) string { return fmt.Sprintf("%s?offset=%d", disk, sector*512) }
	efi, boot, root := dev(4096), dev(20480), dev(53248)
	for _, d := range []string{efi, boot, root} {
		if out, err := exec.Command("e2fsck", "-fn", d).CombinedOutput(); err != nil {
			t.Errorf("e2fsck -fn %s: %v\n%s", d, err, out)
		}
	}
	checkFiles(t, root)
	wantIn(t, "efi", debugfs(t, efi, "cat /EFI/BOOT/BOOTX64.EFI"), "efi\n")
	wantIn(t, "boot", debugfs(t, boot, "cat /vmlinuz"), "kernel\n")
	wantIn(t, "boot label", debugfs(t, boot, "stats"), "Filesystem volume name:   boot", "Filesystem UUID:          4e9f1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b")
	// A mountpoint stays, empty, in the filesystem above it.
	for _, c := range []struct{ dev, dir string }{{root, "/boot"}, {boot, "/efi"}} {
		ls := debugfs(t, c.dev, "ls -l "+c.dir)
		if strings.Contains(ls, "vmlinuz") || strings.Contains(ls, "EFI") || !strings.Contains(ls, " .\n") && !strings.Contains(ls, " . ") {
			t.Errorf("%s in %s holds another partition's files or is missing:\n%s", c.dir, c.dev, ls)
		}
	}
	t.Run("mounted", func(t *testing.T) {
		requireRoot(t)
		// The root filesystem is the tree without the two boot partitions.
		want := t.TempDir()
		t.Cleanup(func() { makeWritable(want) })
		if err := treecopy.Copy(t.Context(), tree, filepath.Join(want, "t"), treecopy.Options{Exclude: []string{"boot"}}); err != nil {
			t.Fatal(err)
		}
		compareMounted(t, disk, 53248*512, filepath.Join(want, "t"))
	})
}

// TestQemuLegacy is osbuild's single-partition form in a qcow2 image,
// converted back to raw and read with qemu-img, sfdisk, e2fsck and
// debugfs.
func TestQemuLegacy(t *testing.T) {
	requireTools(t, "mkfs.ext4", "debugfs", "e2fsck", "qemu-img", "sfdisk")
	tree := richTree(t)
	disk := runQemu(t, tree, `{"format": "qcow2", "filename": "disk.qcow2", "size": 67108864,
		"ptuuid": "0x14fc63d2", "root_fs_uuid": "`+testUUID+`"}`)
	tool(t, "qemu-img", "check", disk)
	wantIn(t, "qemu-img info", tool(t, "qemu-img", "info", disk), "file format: qcow2", "virtual size: 64 MiB (67108864 bytes)")
	raw := filepath.Join(t.TempDir(), "disk.raw")
	tool(t, "qemu-img", "convert", "-O", "raw", disk, raw)
	wantIn(t, "sfdisk --dump", tool(t, "sfdisk", "--dump", raw),
		"label: dos", "label-id: 0x14fc63d2", "start=        2048, size=      129024, type=83, bootable")
	dev := fmt.Sprintf("%s?offset=%d", raw, 2048*512)
	if out, err := exec.Command("e2fsck", "-fn", dev).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn: %v\n%s", err, out)
	}
	checkFiles(t, dev)
}

// TestQemuFormats converts one small disk to every format and checks that
// qemu-img reads each back to the raw disk's bytes.
func TestQemuFormats(t *testing.T) {
	requireTools(t, "mkfs.ext4", "debugfs", "qemu-img", "xz")
	tree := t.TempDir()
	storetest.WriteFile(t, tree, "etc/hostname", "kiln\n")
	opts := func(format, extra string) string {
		return `{"format": "` + format + `", "filename": "disk", "size": 33554432, "ptuuid": "0x0badcafe", "root_fs_uuid": "` + testUUID + `"` + extra + `}`
	}
	want, err := os.ReadFile(runQemu(t, tree, opts("raw", "")))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ format, extra, info string }{
		{"qcow2", `, "qcow2_compat": "0.10"`, "compat: 0.10"},
		{"vmdk", `, "vmdk_subformat": "streamOptimized"`, "create type: streamOptimized"},
		{"vdi", "", "file format: vdi"},
		{"vpc", "", "file format: vpc"},
		{"vhdx", "", "file format: vhdx"},
		{"raw.xz", "", ""},
	} {
		t.Run(tc.format, func(t *testing.T) {
			disk := runQemu(t, tree, opts(tc.format, tc.extra))
			back := filepath.Join(t.TempDir(), "back.raw")
			if tc.format == "raw.xz" {
				f, err := os.Create(back)
				if err != nil {
					t.Fatal(err)
				}
				cmd := exec.Command("xz", "-dc", disk)
				cmd.Stdout = f
				if err := cmd.Run(); err != nil {
					t.Fatal(err)
				}
				f.Close()
			} else {
				wantIn(t, "qemu-img info", tool(t, "qemu-img", "info", disk), tc.info, "virtual size: 32 MiB (33554432 bytes)")
				tool(t, "qemu-img", "convert", "-O", "raw", disk, back)
			}
			got, err := os.ReadFile(back)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s read back differs from the raw disk", tc.format)
			}
		})
	}
}

// TestQemuMountpointSymlink: a mountpoint reached through a symlink in the
// tree is refused, since the host would follow the link out of the tree
// and put the build machine's files into the image.
func TestQemuMountpointSymlink(t *testing.T) {
	requireTools(t, "mkfs.ext4", "debugfs")
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("host secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, link := range []string{outside, "../../../../../../../../" + outside} {
		tree := t.TempDir()
		if err := os.Symlink(link, filepath.Join(tree, "data")); err != nil {
			t.Fatal(err)
		}
		a, _ := lookup("org.osbuild.qemu")
		opts := `{"filename": "d", "size": 67108864, "format": "raw", "pttype": "gpt", "ptuuid": "d209c89e-ea5e-4fbd-b161-b461cce297e0",
		  "partitions": [{"size": 40960, "filesystem": {"type": "ext4", "uuid": "` + testUUID + `", "mountpoint": "/"}},
		                 {"filesystem": {"type": "ext4", "uuid": "0194fdc2-fa2f-4cc0-81d3-ff12045b73c8", "mountpoint": "/data"}}]}`
		out := t.TempDir()
		err := a.Assemble(t.Context(), Input{Tree: tree, Output: out, Options: json.RawMessage(opts)})
		if err == nil || !strings.Contains(err.Error(), `option "partitions[1].filesystem.mountpoint"`) {
			t.Errorf("link %s: %v, want the mountpoint refused", link, err)
		}
	}
}
