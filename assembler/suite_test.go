package assembler_test

import (
	"flag"
	"os"
	"testing"

	"github.com/kilnbuild/kiln/assembler"
	"github.com/kilnbuild/kiln/assembler/assemblertest"
	"github.com/kilnbuild/kiln/store/mountns"
)

var update = flag.Bool("update", false, "record digests of assembler versions not yet in testdata/digests.json")

func TestMain(m *testing.M) {
	// The write-error checks mount small tmpfs filesystems: as root, in a
	// private mount namespace, so that a killed test leaves none behind.
	// Without root the tests run as they are (a user namespace would
	// pretend to be root and fail to give files away).
	if os.Geteuid() == 0 {
		mountns.MustEnter()
	}
	os.Exit(m.Run())
}

const (
	uuid  = "9c6ae55b-cf88-45b8-84e8-64990759f39d"
	uuid2 = "0194fdc2-fa2f-4cc0-81d3-ff12045b73c8"
	uuid3 = "4e9f1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
)

var ext4Tools = []string{"mkfs.ext4", "debugfs", "e2fsck"}

func lookup(t *testing.T, name string) assembler.Assembler {
	t.Helper()
	for _, a := range assembler.Builtins() {
		if a.Name() == name {
			return a
		}
	}
	t.Fatalf("no assembler %s", name)
	return nil
}

// configs are every assembler's cases and bad options. org.osbuild.error,
// which fails on purpose, is the one assembler left out.
func configs(t *testing.T) []assemblertest.Config {
	qemuLegacy := func(format, filename, extra string) string {
		return `{"format": "` + format + `", "filename": "` + filename + `", "size": 67108864, "ptuuid": "0x14fc63d2", "root_fs_uuid": "` + uuid + `"` + extra + `}`
	}
	qemuBase := `"filename": "d", "size": 33554432, "format": "raw"`
	legacy := qemuBase + `, "ptuuid": "0x0badcafe", "root_fs_uuid": "` + uuid + `"`
	gpt := qemuBase + `, "pttype": "gpt", "ptuuid": "d209c89e-ea5e-4fbd-b161-b461cce297e0"`
	fs := `"filesystem": {"type": "ext4", "uuid": "` + uuid + `", "mountpoint": "/"}`
	qemuTools := append([]string{"qemu-img"}, ext4Tools...)
	return []assemblertest.Config{
		{
			Assembler: lookup(t, "org.osbuild.noop"),
			Cases:     []assemblertest.Case{{Name: "noop", Options: `{}`, Reproducible: true}},
		},
		{
			Assembler: lookup(t, "org.osbuild.tar"),
			Cases: []assemblertest.Case{
				{Name: "none", Options: `{"filename": "root.tar"}`, Files: []string{"root.tar"}, Reproducible: true},
				{Name: "gzip", Options: `{"filename": "root.tar.gz", "compression": "gzip"}`, Files: []string{"root.tar.gz"}, Reproducible: true},
				{Name: "xz", Options: `{"filename": "root.tar.xz", "compression": "xz"}`, Files: []string{"root.tar.xz"}, Reproducible: true},
				{Name: "zstd", Options: `{"filename": "root.tar.zst", "compression": "zstd"}`, Files: []string{"root.tar.zst"}, Reproducible: true},
				{Name: "bzip2", Options: `{"filename": "root.tar.bz2", "compression": "bzip2"}`, Files: []string{"root.tar.bz2"}, Reproducible: true},
				{Name: "no xattrs", Options: `{"filename": "root.tar", "acls": false, "selinux": false, "xattrs": false}`, Files: []string{"root.tar"}, Reproducible: true},
			},
			Bad: []assemblertest.BadOption{
				{Options: `{"filename": "../escape.tar"}`, Option: "filename"},
				{Options: `{"filename": "a/b.tar"}`, Option: "filename"},
				{Options: `{"filename": "x.tar", "compression": "lzop"}`, Option: "compression"},
				{Options: `{"filename": 5}`, Option: "filename"},
			},
		},
		{
			Assembler: lookup(t, "org.osbuild.oci-archive"),
			Cases: []assemblertest.Case{{Name: "image", Files: []string{"image.tar"}, Reproducible: true,
				Options: `{"filename": "image.tar", "architecture": "x86_64", "tag": "v1", "annotations": {"org.example": "x"},
				  "config": {"Cmd": ["/bin/true"], "Env": ["A=1"], "ExposedPorts": ["80/tcp"], "User": "1000", "Labels": {"l": "v"}}}`}},
			Bad: []assemblertest.BadOption{
				{Options: `{"filename": "../x.tar", "architecture": "amd64"}`, Option: "filename"},
				{Options: `{"filename": "x.tar"}`, Option: "architecture"},
				{Options: `{"filename": "x.tar", "architecture": "amd64", "config": {"StopSignal": "SIGINT", "StopSiganl": "SIGTERM"}}`, Option: "config.StopSiganl"},
				{Options: `{"filename": "x.tar", "architecture": "amd64", "config": {"cmd": ["sh"]}}`, Option: "config.cmd"},
			},
		},
		{
			Assembler: lookup(t, "org.osbuild.rawfs"),
			Cases: []assemblertest.Case{{Name: "ext4", Tools: ext4Tools, Files: []string{"root.ext4"}, Reproducible: true,
				Options: `{"filename": "root.ext4", "root_fs_uuid": "` + uuid + `", "size": 67108864}`}},
			Bad: []assemblertest.BadOption{
				{Options: `{"filename": "x", "root_fs_uuid": "` + uuid + `", "size": 1048576, "fs_type": "xfs"}`, Option: "fs_type"},
				{Options: `{"filename": "x", "root_fs_uuid": "` + uuid + `", "size": 1048576, "fs_type": "btrfs"}`, Option: "fs_type"},
				{Options: `{"filename": "x", "root_fs_uuid": "not-a-uuid", "size": 1048576}`, Option: "root_fs_uuid"},
				{Options: `{"filename": "x", "root_fs_uuid": "` + uuid + `", "size": 0}`, Option: "size"},
				{Options: `{"filename": "x", "root_fs_uuid": "` + uuid + `", "size": "big"}`, Option: "size"},
				{Options: `{"filename": "../x", "root_fs_uuid": "` + uuid + `", "size": 1048576}`, Option: "filename"},
			},
		},
		{
			Assembler: lookup(t, "org.osbuild.qemu"),
			Cases: []assemblertest.Case{
				{Name: "raw", Tools: ext4Tools, Files: []string{"disk.img"}, Reproducible: true, Options: qemuLegacy("raw", "disk.img", "")},
				{Name: "raw gpt", Tools: ext4Tools, Files: []string{"disk.img"}, Reproducible: true,
					Options: `{"format": "raw", "filename": "disk.img", "size": 100663296, "pttype": "gpt",
					  "ptuuid": "d209c89e-ea5e-4fbd-b161-b461cce297e0", "partitions": [
					  {"start": 2048, "size": 2048, "type": "21686148-6449-6E6F-744E-656564454649", "name": "bios"},
					  {"size": 32768, "name": "boot", "uuid": "` + uuid2 + `",
					   "filesystem": {"type": "ext4", "uuid": "` + uuid3 + `", "label": "boot", "mountpoint": "/usr/share"}},
					  {"name": "root", "filesystem": {"type": "ext4", "uuid": "` + uuid + `", "label": "root", "mountpoint": "/"}}]}`},
				{Name: "raw.xz", Tools: append([]string{"xz"}, ext4Tools...), Files: []string{"disk.raw.xz"}, Reproducible: true, Options: qemuLegacy("raw.xz", "disk.raw.xz", "")},
				{Name: "qcow2", Tools: qemuTools, Files: []string{"disk.qcow2"}, Reproducible: true, Options: qemuLegacy("qcow2", "disk.qcow2", "")},
				// An EFI system partition: the fixed tree's /usr (directories and
				// regular files, long names, a hardlink) on vfat.
				{Name: "gpt vfat", Tools: append([]string{"mkfs.vfat", "mcopy", "mmd"}, ext4Tools...), Files: []string{"disk.img"}, Reproducible: true,
					Options: `{"format": "raw", "filename": "disk.img", "size": 67108864, "pttype": "gpt", "ptuuid": "d209c89e-ea5e-4fbd-b161-b461cce297e0", "partitions": [
					  {"size": 32768, "type": "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "filesystem": {"type": "vfat", "uuid": "7B77-95E7", "label": "EFI-SYSTEM", "mountpoint": "/usr"}},
					  {` + fs + `}]}`},
				{Name: "qcow2 0.10", Tools: qemuTools, Files: []string{"disk.qcow2"}, Reproducible: true, Options: qemuLegacy("qcow2", "disk.qcow2", `, "qcow2_compat": "0.10"`)},
				// Not reproducible: qemu-img writes a random CID (vmdk), random
				// UUIDs (vdi, vpc, vhdx) and the time (vpc).
				{Name: "vmdk", Tools: qemuTools, Files: []string{"disk.vmdk"}, Options: qemuLegacy("vmdk", "disk.vmdk", `, "vmdk_subformat": "streamOptimized"`)},
				{Name: "vmdk flat", Tools: qemuTools, Files: []string{"disk-flat.vmdk", "disk.vmdk"}, Options: qemuLegacy("vmdk", "disk.vmdk", `, "vmdk_subformat": "monolithicFlat"`)},
				{Name: "vdi", Tools: qemuTools, Files: []string{"disk.vdi"}, Options: qemuLegacy("vdi", "disk.vdi", "")},
				{Name: "vpc", Tools: qemuTools, Files: []string{"disk.vhd"}, Options: qemuLegacy("vpc", "disk.vhd", "")},
				{Name: "vhdx", Tools: qemuTools, Files: []string{"disk.vhdx"}, Options: qemuLegacy("vhdx", "disk.vhdx", "")},
			},
			Bad: []assemblertest.BadOption{
				{Options: `{` + legacy + `, "bootloader": {"type": "zipl"}}`, Option: "bootloader.type"},
				{Options: `{` + legacy + `, "bootloader": {"type": "grub2", "platform": "powerpc-ieee1275"}}`, Option: "bootloader.platform"},
				{Options: `{` + legacy + `, "bootloader": {}}`, Option: "bootloader.type"},
				// A GPT disk needs a BIOS boot partition for GRUB's core.
				{Options: `{` + gpt + `, "bootloader": {"type": "grub2"}, "partitions": [{` + fs + `}]}`, Option: "bootloader"},
				// GRUB reads its directory from ext4 only.
				{Options: `{` + gpt + `, "bootloader": {"type": "grub2"}, "partitions": [{"size": 2048, "type": "21686148-6449-6E6F-744E-656564454649"}, {"filesystem": {"type": "vfat", "uuid": "7B77-95E7", "mountpoint": "/"}}]}`, Option: "bootloader"},
				{Options: `{` + gpt + `, "bootloader": {"type": "grub2"}, "partitions": [{"size": 2048, "type": "21686148-6449-6E6F-744E-656564454649", ` + fs + `}]}`, Option: "partitions[0].filesystem"},
				{Options: `{` + legacy + `, "root_fs_type": "xfs"}`, Option: "root_fs_type"},
				{Options: `{"filename": "d", "size": 33554432, "format": "vmdk.gz", "ptuuid": "0x1", "root_fs_uuid": "` + uuid + `"}`, Option: "format"},
				{Options: `{"filename": "d", "size": 1000, "format": "raw", "ptuuid": "0x1", "root_fs_uuid": "` + uuid + `"}`, Option: "size"},
				{Options: `{` + legacy + `, "qcow2_compat": "1.1"}`, Option: "qcow2_compat"},
				{Options: `{` + qemuBase + `, "ptuuid": "nothex", "root_fs_uuid": "` + uuid + `"}`, Option: "ptuuid"},
				{Options: `{` + gpt + `, "partitions": [{"filesystem": {"type": "btrfs", "uuid": "` + uuid + `", "mountpoint": "/"}}]}`, Option: "partitions[0].filesystem.type"},
				{Options: `{` + gpt + `, "partitions": [{"filesystem": {"type": "vfat", "uuid": "` + uuid + `", "mountpoint": "/"}}]}`, Option: "partitions[0].filesystem.uuid"},
				{Options: `{` + gpt + `, "partitions": [{"filesystem": {"type": "vfat", "uuid": "7B77-95E7", "label": "EFI.SYSTEM", "mountpoint": "/"}}]}`, Option: "partitions[0].filesystem.label"},
				{Options: `{` + gpt + `, "partitions": [{"filesystem": {"type": "vfat", "uuid": "7B77-95E7", "label": "EFI-SYSTEM-X", "mountpoint": "/"}}]}`, Option: "partitions[0].filesystem.label"},
				{Options: `{` + gpt + `, "partitions": [{"filesystem": {"type": "ext4", "uuid": "x", "mountpoint": "/"}}]}`, Option: "partitions[0].filesystem.uuid"},
				{Options: `{` + gpt + `, "partitions": [{"filesystem": {"type": "ext4", "uuid": "` + uuid + `", "mountpoint": "boot/"}}]}`, Option: "partitions[0].filesystem.mountpoint"},
				{Options: `{` + gpt + `, "partitions": [{` + fs + `}, {` + fs + `}]}`, Option: "partitions[1].filesystem.mountpoint"},
				{Options: `{` + gpt + `, "partitions": [{"start": 2048, "size": 65536, ` + fs + `}]}`, Option: "partitions[0].size"},
				{Options: `{` + gpt + `, "partitions": [{"start": 2048, "size": 4096}, {"start": 4000}]}`, Option: "partitions[1].start"},
				{Options: `{` + gpt + `, "partitions": [{"type": "83"}]}`, Option: "partitions[0].type"},
				{Options: `{` + gpt + `, "partitions": [{"bootable": true}]}`, Option: "partitions[0].bootable"},
				{Options: `{` + gpt + `, "partitions": [{"filesystem": {"type": "ext4", "uuid": "` + uuid + `", "mountpoint": "/", "Label": "x"}}]}`, Option: "partitions[0].filesystem.Label"},
				{Options: `{` + qemuBase + `, "pttype": "gpt", "ptuuid": "0x0badcafe", "partitions": [{}]}`, Option: "ptuuid"},
				{Options: `{` + qemuBase + `, "pttype": "dos", "ptuuid": "0x0badcafe", "partitions": [{"size": 2048}, {"size": 2048}, {"size": 2048}, {"size": 2048}, {"size": 2048}]}`, Option: "partitions"},
				{Options: `{` + qemuBase + `, "pttype": "dos", "ptuuid": "0x0badcafe", "partitions": [{"type": "zz"}]}`, Option: "partitions[0].type"},
				{Options: `{` + qemuBase + `, "pttype": "dos", "ptuuid": "0x0badcafe", "partitions": [{"name": "x"}]}`, Option: "partitions[0].name"},
			},
		},
	}
}

// TestSuite runs assemblertest's suite on every assembler.
func TestSuite(t *testing.T) {
	for _, c := range configs(t) {
		t.Run(c.Assembler.Name(), func(t *testing.T) { assemblertest.Run(t, c) })
	}
}

// TestPinnedOutputs: the fixed tree's output digests are those recorded
// for each assembler's Version() in testdata/digests.json.
func TestPinnedOutputs(t *testing.T) {
	assemblertest.Pinned(t, "testdata/digests.json", configs(t), *update)
}
