package assembler

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// GRUB for BIOS (i386-pc), installed as osbuild's v1 qemu assembler
// installs it: grub-mkimage makes a core image holding just what finds the
// partition with /boot (biosdisk, the table's part_ module, ext2), boot.img's
// first 440 bytes go into the MBR with the core's sector patched in, and the
// core goes into the BIOS boot partition (GPT) or the gap after the MBR
// (dos). The rest of GRUB (normal.mod, grub.cfg) is read at boot from the
// tree's GRUB directory on that partition.

const (
	biosBootType = "21686148-6449-6E6F-744E-656564454649"
	// bootImgCode is how much of boot.img is code: the rest of the sector
	// is the disk identifier and the partition table.
	bootImgCode = 440
	// bootImgKernelSector is GRUB_BOOT_MACHINE_KERNEL_SECTOR (boot.S): a
	// little-endian uint64, the sector where the core image starts.
	bootImgKernelSector = 0x5c
	// coreBlocklistStart is where diskboot.img, the core's first sector,
	// keeps the start (uint64) of its one blocklist entry: the sector
	// after itself (0x200 - GRUB_BOOT_MACHINE_LIST_SIZE).
	coreBlocklistStart = 0x1f4
	// grubModulesMax bounds what kiln copies out of the tree's module
	// directory (Debian 12's is 3.5 MiB).
	grubModulesMax = 64 << 20
)

// grubMkimage is the host's tool: kiln runs no program from a tree (the
// tree is untrusted, see docs/threat-model.md) and has no build root for
// assemblers, so osbuild's "from the build pipeline" is the host here.
const grubMkimage = "grub-mkimage"

// bootloader is the bootloader option.
type bootloader struct {
	Type     string `json:"type"`
	Platform string `json:"platform"`
}

// checkBootloader refuses what kiln does not install: zipl (s390x) and
// GRUB for Open Firmware (powerpc-ieee1275), which osbuild's schema allows.
func checkBootloader(name string, b *bootloader) error {
	switch b.Type {
	case "grub2":
	case "zipl":
		return errOption(name, "bootloader.type", "zipl (s390x) is not supported: kiln installs grub2 for i386-pc only")
	default:
		return errOption(name, "bootloader.type", "%q is not grub2", b.Type)
	}
	switch b.Platform {
	case "", "i386-pc":
	case "powerpc-ieee1275":
		return errOption(name, "bootloader.platform", "powerpc-ieee1275 (a PReP partition) is not supported: kiln installs grub2 for i386-pc only")
	default:
		return errOption(name, "bootloader.platform", "%q is not i386-pc", b.Platform)
	}
	return nil
}

// grubPlan is where the pieces of GRUB go on one disk, decided from the
// options alone (Validate checks it before any stage runs).
type grubPlan struct {
	bootPart int    // index of the partition holding the GRUB directory
	coreAt   int64  // first sector of the core image
	coreMax  int64  // bytes the core may take there
	label    string // "gpt" or "msdos", GRUB's name for the table
}

// planGRUB finds the partition holding /boot (else /) and where the core
// image goes, as osbuild does.
func planGRUB(name string, opts qemuOptions, parts []partition) (grubPlan, error) {
	plan := grubPlan{bootPart: -1, label: "msdos"}
	for _, mp := range []string{"/boot", "/"} {
		for i, p := range parts {
			if p.Filesystem != nil && p.Filesystem.Mountpoint == mp {
				plan.bootPart = i
				break
			}
		}
		if plan.bootPart >= 0 {
			break
		}
	}
	if plan.bootPart < 0 {
		return plan, errOption(name, "bootloader", "no partition is mounted at /boot or /, where GRUB's directory would be")
	}
	if fs := parts[plan.bootPart].Filesystem; fs.Type != "ext4" {
		return plan, errOption(name, "bootloader", "GRUB's directory would be on partition %d, a %s filesystem; it must be ext4", plan.bootPart+1, fs.Type)
	}
	if opts.PTType == "gpt" {
		plan.label = "gpt"
		bb := -1
		for i, p := range parts {
			if strings.EqualFold(p.Type, biosBootType) {
				bb = i
				break
			}
		}
		if bb < 0 {
			return plan, errOption(name, "bootloader", "a gpt disk needs a BIOS boot partition (type %s) to hold GRUB's core image", biosBootType)
		}
		if parts[bb].Filesystem != nil {
			return plan, errOption(name, fmt.Sprintf("partitions[%d].filesystem", bb), "the BIOS boot partition holds GRUB's core image, not a filesystem")
		}
		plan.coreAt, plan.coreMax = parts[bb].Start, parts[bb].Size*sectorSize
		return plan, nil
	}
	// dos: the gap between the MBR and the first partition.
	plan.coreAt = 1
	plan.coreMax = (parts[0].Start - 1) * sectorSize
	for _, p := range parts {
		plan.coreMax = min(plan.coreMax, (p.Start-1)*sectorSize)
	}
	return plan, nil
}

// grubDir returns GRUB's directory in the tree: /boot/grub2 where the tree
// has one (osbuild's, Fedora's), else /boot/grub (Debian's).
func grubDir(tree string) string {
	if d, err := treeDir(tree, "/boot/grub2"); err == nil {
		if fi, err := os.Lstat(d); err == nil && fi.IsDir() {
			return "/boot/grub2"
		}
	}
	return "/boot/grub"
}

// installGRUB writes GRUB's boot image and core image into disk.
func installGRUB(ctx context.Context, name string, in Input, scratch string, disk *os.File, opts qemuOptions, parts []partition) error {
	plan, err := planGRUB(name, opts, parts)
	if err != nil {
		return err
	}
	boot := parts[plan.bootPart]
	dir := grubDir(in.Tree)
	// The GRUB directory must hold the modules the core loads first
	// (normal.mod): without them GRUB stops at its rescue prompt, so
	// refuse the disk instead of writing one that cannot boot.
	if err := treeFile(in.Tree, path.Join(dir, "i386-pc", "normal.mod")); err != nil {
		return errOption(name, "bootloader", "GRUB's modules are not in the tree's %s/i386-pc (%v): copy /usr/lib/grub/i386-pc/*.mod there with a stage, as org.osbuild.grub2 does", dir, err)
	}
	modules, err := copyGRUBModules(ctx, name, in.Tree, filepath.Join(scratch, "grub-i386-pc"))
	if err != nil {
		return err
	}
	rel, _ := below(boot.Filesystem.Mountpoint, dir)
	// The prefix is made of kiln's names only: no GRUB syntax in it.
	prefix := "(," + plan.label + strconv.Itoa(plan.bootPart+1) + ")/" + rel
	table := "part_msdos"
	if plan.label == "gpt" {
		table = "part_gpt"
	}
	core := filepath.Join(scratch, "core.img")
	if _, err := runTool(ctx, nil, grubMkimage, "--directory", modules, "--prefix", prefix,
		"--format", "i386-pc", "--compression", "auto", "--output", core, "--", "biosdisk", table, "ext2"); err != nil {
		return toolFailure(ctx, name, err)
	}
	img, err := os.ReadFile(core)
	if err != nil {
		return err
	}
	if int64(len(img)) > plan.coreMax || len(img) < sectorSize {
		where := "the gap between the MBR and the first partition"
		if plan.label == "gpt" {
			where = "the BIOS boot partition"
		}
		return errOption(name, "bootloader", "GRUB's core image takes %d bytes; %s holds %d", len(img), where, plan.coreMax)
	}
	// The core's first sector reads the rest from the sector after it.
	binary.LittleEndian.PutUint64(img[coreBlocklistStart:], uint64(plan.coreAt+1))
	if _, err := disk.WriteAt(img, plan.coreAt*sectorSize); err != nil {
		return err
	}
	bootImg, err := os.ReadFile(filepath.Join(modules, "boot.img"))
	if err != nil {
		return err
	}
	if len(bootImg) != sectorSize {
		return errOption(name, "bootloader", "the tree's /usr/lib/grub/i386-pc/boot.img is %d bytes, not one sector", len(bootImg))
	}
	mbr := bootImg[:bootImgCode]
	binary.LittleEndian.PutUint64(mbr[bootImgKernelSector:], uint64(plan.coreAt))
	_, err = disk.WriteAt(mbr, 0)
	return err
}

// treeFile checks that p in the tree is a regular file reached without
// following a symlink.
func treeFile(tree, p string) error {
	dir, err := treeDir(tree, path.Dir(p))
	if err != nil {
		return err
	}
	fi, err := os.Lstat(filepath.Join(dir, path.Base(p)))
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is a %v, not a regular file", p, fi.Mode().Type())
	}
	return nil
}

// copyGRUBModules copies GRUB's i386-pc images and modules out of the tree
// into dst, for grub-mkimage: it would follow a symlink in the tree out to
// the host's files and put them in the image, so only regular files are
// taken, through a directory reached without symlinks.
func copyGRUBModules(ctx context.Context, name, tree, dst string) (string, error) {
	const src = "/usr/lib/grub/i386-pc"
	dir, err := treeDir(tree, src)
	if err != nil {
		return "", errOption(name, "bootloader", "%v", err)
	}
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return "", errOption(name, "bootloader", "the tree has no %s (Debian's grub-pc-bin, Fedora's grub2-pc-modules): GRUB's core image is made from it", src)
	}
	if err != nil {
		return "", err
	}
	if err := os.Mkdir(dst, 0o755); err != nil {
		return "", err
	}
	var total int64
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		n := e.Name()
		if !strings.HasSuffix(n, ".mod") && !strings.HasSuffix(n, ".lst") && !strings.HasSuffix(n, ".img") {
			continue
		}
		if !e.Type().IsRegular() {
			return "", errOption(name, "bootloader", "%s/%s in the tree is a %v, not a regular file", src, n, e.Type())
		}
		size, err := copyRegular(filepath.Join(dir, n), filepath.Join(dst, n), grubModulesMax-total)
		if err != nil {
			return "", errOption(name, "bootloader", "%s/%s: %v", src, n, err)
		}
		total += size
	}
	return dst, nil
}

// copyRegular copies the regular file src to dst, at most limit bytes,
// refusing a src that is not a regular file when opened.
func copyRegular(src, dst string, limit int64) (int64, error) {
	f, err := os.OpenFile(src, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("not a regular file")
	}
	if fi.Size() > limit {
		return 0, fmt.Errorf("GRUB's modules take more than %d bytes", grubModulesMax)
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(out, io.LimitReader(f, limit))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return n, err
}
