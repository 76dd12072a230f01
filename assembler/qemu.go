package assembler

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/kilnbuild/kiln/internal/fsmeta"
	"github.com/kilnbuild/kiln/store/treecopy"
)

// qemu writes a partitioned disk image: the partition table (go-diskfs),
// one ext4 filesystem per partition made from the part of the tree under
// its mountpoint, then qemu-img converts the raw disk to the format asked
// for. With the bootloader option it installs GRUB for BIOS (grub.go);
// vfat partitions (an EFI system partition) are made by fat.go.
type qemu struct{}

func (qemu) Name() string { return "org.osbuild.qemu" }
func (qemu) Summary() string {
	return "Write a partitioned disk image (raw, qcow2, vmdk, vdi, vpc, vhdx)"
}

// Version: bump on any change of output bytes.
func (qemu) Version() string { return "4" }

func (qemu) Schema() []byte {
	uuid := `"pattern": ` + schemaPattern(uuidPattern)
	serial := `"pattern": ` + schemaPattern(vfatSerialPattern)
	return []byte(`{
  "type": "object",
  "additionalProperties": false,
  "required": ["format", "filename", "ptuuid", "size"],
  "oneOf": [{"required": ["root_fs_uuid"]}, {"required": ["pttype", "partitions"]}],
  "properties": {
    "bootloader": {"type": "object", "additionalProperties": false, "required": ["type"],
      "description": "install a bootloader: grub2 for BIOS (i386-pc), core image from the tree's /usr/lib/grub/i386-pc; zipl and powerpc-ieee1275 are refused",
      "properties": {
        "type": {"type": "string", "enum": ["grub2", "zipl"], "description": "the bootloader; kiln installs grub2 only"},
        "platform": {"type": "string", "enum": ["i386-pc", "powerpc-ieee1275"], "default": "i386-pc", "description": "GRUB's platform; kiln installs i386-pc only"}
      }},
    "format": {"type": "string", "enum": ["raw", "raw.xz", "qcow2", "vdi", "vmdk", "vpc", "vhdx"],
      "description": "image format; raw.xz is the raw image compressed with xz -T1"},
    "qcow2_compat": {"type": "string", "enum": ` + schemaEnum(qcow2Compats) + `,
      "description": "qcow2 compatibility version (qemu-img -o compat=)"},
    "vmdk_subformat": {"type": "string", "enum": ` + schemaEnum(vmdkSubformats) + `,
      "description": "VMDK subformat (qemu-img -o subformat=)"},
    "filename": {"type": "string", "pattern": ` + schemaPattern(filenamePattern) + `,
      "description": "name of the image in the output directory"},
    "partitions": {"type": "array", "maxItems": 128, "description": "the partitions, in table order",
      "items": {"type": "object", "additionalProperties": false, "properties": {
        "bootable": {"type": "boolean", "description": "set the active flag (dos only)"},
        "name": {"type": "string", "pattern": ` + schemaPattern(partNamePattern) + `,
          "description": "partition name (gpt only): up to 36 letters, digits, spaces and _.+@- (not first)"},
        "size": {"type": "integer", "minimum": 1, "maximum": ` + fmt.Sprint(maxImageSize/sectorSize) + `,
          "description": "size in 512-byte sectors; default: up to the next partition or the end of the disk"},
        "start": {"type": "integer", "minimum": 1, "maximum": ` + fmt.Sprint(maxImageSize/sectorSize) + `,
          "description": "first sector (512 bytes); default: the end of the previous partition rounded up to 1 MiB (2048 for the first)"},
        "type": {"type": "string", "anyOf": [{` + uuid + `}, {"pattern": ` + schemaPattern(dosTypePattern) + `}],
          "description": "partition type: a GUID (gpt, default Linux filesystem) or a hex byte such as 83 or 0xef (dos, default 83)"},
        "uuid": {"type": "string", ` + uuid + `,
          "description": "partition GUID (gpt only); default: derived from ptuuid and the partition number, so the image is reproducible"},
        "filesystem": {"type": "object", "additionalProperties": false, "required": ["mountpoint", "type", "uuid"], "properties": {
          "label": {"type": "string", "pattern": ` + schemaPattern(labelPattern) + `,
            "description": "filesystem label: up to 16 letters, digits, spaces and _.+@- (not first); vfat: up to 11 letters, digits, spaces and _-"},
          "mountpoint": {"type": "string", "maxLength": 4096, "pattern": ` + schemaPattern(mountpointPattern) + `,
            "description": "where it is mounted: the filesystem holds the tree below it, less other partitions' mountpoints"},
          "type": {"type": "string", "enum": ["ext4", "xfs", "vfat", "btrfs"], "description": "filesystem; kiln makes ext4 and vfat"},
          "uuid": {"type": "string", "anyOf": [{` + uuid + `}, {` + serial + `}],
            "description": "ext4: the filesystem UUID, also its directory hash seed; vfat: the volume serial, as 7B77-95E7"}
        }}
      }}},
    "ptuuid": {"type": "string", "anyOf": [{` + uuid + `}, {"pattern": ` + schemaPattern(dosIDPattern) + `}],
      "description": "disk identifier: a GUID (gpt) or up to 8 hex digits, optionally 0x-prefixed (dos)"},
    "pttype": {"type": "string", "enum": ["mbr", "dos", "gpt"], "description": "partition table type; mbr is dos; default dos"},
    "root_fs_uuid": {"type": "string", ` + uuid + `,
      "description": "without partitions: one bootable partition from sector 2048 to the end holds the whole tree with this UUID"},
    "size": {"type": "integer", "minimum": 512, "maximum": ` + fmt.Sprint(maxImageSize) + `,
      "description": "virtual disk size in bytes, a multiple of 512, at most 64 TiB"},
    "root_fs_type": {"type": "string", "enum": ["ext4", "xfs", "btrfs"], "default": "ext4",
      "description": "with root_fs_uuid: the root filesystem; kiln makes ext4 only"}
  }
}`)
}

type qemuOptions struct {
	Format        string      `json:"format"`
	Filename      string      `json:"filename"`
	Size          int64       `json:"size"`
	PTUUID        string      `json:"ptuuid"`
	PTType        string      `json:"pttype"`
	Partitions    []partition `json:"partitions"`
	RootFSUUID    string      `json:"root_fs_uuid"`
	RootFSType    string      `json:"root_fs_type"`
	Bootloader    *bootloader `json:"bootloader"`
	QCOW2Compat   string      `json:"qcow2_compat"`
	VMDKSubformat string      `json:"vmdk_subformat"`
}

type partition struct {
	Start      int64       `json:"start"` // sectors
	Size       int64       `json:"size"`  // sectors
	Type       string      `json:"type"`
	UUID       string      `json:"uuid"`
	Name       string      `json:"name"`
	Bootable   bool        `json:"bootable"`
	Filesystem *filesystem `json:"filesystem"`
}

type filesystem struct {
	Type       string `json:"type"`
	UUID       string `json:"uuid"`
	Label      string `json:"label"`
	Mountpoint string `json:"mountpoint"`
}

const sectorSize = 512

// qemuFormats maps the format option to qemu-img's -O argument.
var qemuFormats = map[string]string{"raw": "raw", "raw.xz": "raw", "qcow2": "qcow2", "vdi": "vdi", "vmdk": "vmdk", "vpc": "vpc", "vhdx": "vhdx"}

// options reads and checks the options, turning the legacy form
// (root_fs_uuid without partitions) into its one partition as osbuild
// does.
func (a qemu) options(in Input) (qemuOptions, error) {
	opts := qemuOptions{PTType: "dos", RootFSType: "ext4"}
	if err := decode(in, a.Name(), &opts); err != nil {
		return opts, err
	}
	if opts.Bootloader != nil {
		if err := checkBootloader(a.Name(), opts.Bootloader); err != nil {
			return opts, err
		}
	}
	if _, ok := qemuFormats[opts.Format]; !ok {
		return opts, errOption(a.Name(), "format", "%q is not one of raw, raw.xz, qcow2, vdi, vmdk, vpc, vhdx", opts.Format)
	}
	if opts.Size <= 0 || opts.Size%sectorSize != 0 {
		return opts, errOption(a.Name(), "size", "%d is not a positive multiple of %d bytes", opts.Size, sectorSize)
	}
	if err := checkImageSize(a.Name(), opts.Size); err != nil {
		return opts, err
	}
	if !filenameRE.MatchString(opts.Filename) {
		return opts, errOption(a.Name(), "filename", "%q must be a plain file name (%s)", opts.Filename, filenamePattern)
	}
	// These two go into qemu-img's -o, where a comma starts another
	// setting (data_file= would write the disk over a host file).
	if opts.QCOW2Compat != "" {
		if opts.Format != "qcow2" {
			return opts, errOption(a.Name(), "qcow2_compat", "applies to format qcow2, not %s", opts.Format)
		}
		if err := checkEnum(a.Name(), "qcow2_compat", opts.QCOW2Compat, qcow2Compats); err != nil {
			return opts, err
		}
	}
	if opts.VMDKSubformat != "" {
		if opts.Format != "vmdk" {
			return opts, errOption(a.Name(), "vmdk_subformat", "applies to format vmdk, not %s", opts.Format)
		}
		if err := checkEnum(a.Name(), "vmdk_subformat", opts.VMDKSubformat, vmdkSubformats); err != nil {
			return opts, err
		}
	}
	if !uuidRE.MatchString(opts.PTUUID) && !dosIDRE.MatchString(opts.PTUUID) {
		return opts, errOption(a.Name(), "ptuuid", "%q is neither a GUID (gpt) nor a dos disk identifier (8 hex digits, as 0x14fc63d2)", opts.PTUUID)
	}
	if opts.PTType == "mbr" {
		opts.PTType = "dos"
	}
	if opts.Partitions == nil {
		if opts.RootFSUUID == "" {
			return opts, errOption(a.Name(), "partitions", "give partitions, or root_fs_uuid for a single root partition")
		}
		if err := checkUUID(a.Name(), "root_fs_uuid", opts.RootFSUUID); err != nil {
			return opts, err
		}
		if opts.RootFSType != "ext4" {
			return opts, errOption(a.Name(), "root_fs_type", "%q is not supported: kiln makes ext4 filesystems only", opts.RootFSType)
		}
		opts.Partitions = []partition{{Start: 2048, Bootable: true,
			Filesystem: &filesystem{Type: "ext4", UUID: opts.RootFSUUID, Mountpoint: "/"}}}
	}
	if len(opts.Partitions) > 128 {
		return opts, errOption(a.Name(), "partitions", "%d partitions: a GPT holds 128, a dos table 4", len(opts.Partitions))
	}
	for i, p := range opts.Partitions {
		opt := fmt.Sprintf("partitions[%d]", i)
		if p.Start < 0 || p.Start > maxImageSize/sectorSize {
			return opts, errOption(a.Name(), opt+".start", "sector %d is not on a disk of at most %d sectors", p.Start, maxImageSize/sectorSize)
		}
		if p.Size < 0 || p.Size > maxImageSize/sectorSize {
			return opts, errOption(a.Name(), opt+".size", "%d sectors is more than a disk of at most %d sectors", p.Size, maxImageSize/sectorSize)
		}
		if p.Type != "" && !uuidRE.MatchString(p.Type) && !dosTypeRE.MatchString(p.Type) {
			return opts, errOption(a.Name(), opt+".type", "%q is neither a GUID (gpt) nor a hex byte such as 83 or 0xef (dos)", p.Type)
		}
		if p.UUID != "" {
			if err := checkUUID(a.Name(), opt+".uuid", p.UUID); err != nil {
				return opts, err
			}
		}
		if p.Name != "" {
			if err := checkPattern(a.Name(), opt+".name", p.Name, partNameRE, "a partition name"); err != nil {
				return opts, err
			}
		}
		if p.Filesystem == nil {
			continue
		}
		opt += ".filesystem"
		switch p.Filesystem.Type {
		case "ext4":
			if err := checkUUID(a.Name(), opt+".uuid", p.Filesystem.UUID); err != nil {
				return opts, err
			}
			if l := p.Filesystem.Label; l != "" {
				if err := checkPattern(a.Name(), opt+".label", l, labelRE, "an ext4 label"); err != nil {
					return opts, err
				}
			}
		case "vfat":
			if err := checkPattern(a.Name(), opt+".uuid", p.Filesystem.UUID, vfatSerialRE, "a vfat volume serial, as 7B77-95E7"); err != nil {
				return opts, err
			}
			if l := p.Filesystem.Label; l != "" {
				if err := checkPattern(a.Name(), opt+".label", l, vfatLabelRE, "a vfat label"); err != nil {
					return opts, err
				}
			}
		default:
			return opts, errOption(a.Name(), opt+".type", "%q is not supported: kiln makes ext4 and vfat filesystems only", p.Filesystem.Type)
		}
		mp := p.Filesystem.Mountpoint
		if !path.IsAbs(mp) || path.Clean(mp) != mp || !mountpointRE.MatchString(mp) {
			return opts, errOption(a.Name(), opt+".mountpoint", "%q is not a clean absolute path (%s)", mp, mountpointPattern)
		}
		for j := range i {
			if q := opts.Partitions[j].Filesystem; q != nil && q.Mountpoint == mp {
				return opts, errOption(a.Name(), opt+".mountpoint", "%q is also partition %d's", mp, j)
			}
		}
	}
	if opts.Bootloader != nil {
		// Where GRUB goes depends on the layout: check it with the plan.
		parts, err := layout(a.Name(), opts)
		if err != nil {
			return opts, err
		}
		if _, err := planGRUB(a.Name(), opts, parts); err != nil {
			return opts, err
		}
	}
	return opts, nil
}

// Validate implements Validator: the plan refuses what options would.
func (a qemu) Validate(options json.RawMessage) error {
	_, err := a.options(Input{Options: options})
	return err
}

func (a qemu) Assemble(ctx context.Context, in Input) (err error) {
	discard, err := guardOutput(a.Name(), in.Output)
	if err != nil {
		return err
	}
	defer discard(&err)
	opts, err := a.options(in)
	if err != nil {
		return err
	}
	out, err := outputFile(a.Name(), in.Output, opts.Filename)
	if err != nil {
		return err
	}
	out.Close()
	scratch, cleanup, err := scratchDir(in.Output)
	if err != nil {
		return err
	}
	defer cleanup()

	// A raw image is written in place; other formats convert a raw one
	// from the scratch directory.
	rawPath := filepath.Join(in.Output, opts.Filename)
	if opts.Format != "raw" {
		rawPath = filepath.Join(scratch, "disk.raw")
	}
	disk, err := os.OpenFile(rawPath, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer disk.Close()
	if err := disk.Truncate(opts.Size); err != nil {
		return err
	}
	parts, err := writeTable(a.Name(), disk, opts)
	if err != nil {
		return err
	}
	for i, p := range parts {
		if p.Filesystem == nil {
			continue
		}
		if err := a.fillPartition(ctx, in, scratch, disk, parts, i); err != nil {
			return fmt.Errorf("%s: partition %d (%s): %w", a.Name(), i+1, p.Filesystem.Mountpoint, err)
		}
	}
	if opts.Bootloader != nil {
		if err := installGRUB(ctx, a.Name(), in, scratch, disk, opts, parts); err != nil {
			return err
		}
	}
	if err := disk.Sync(); err != nil {
		return err
	}
	if err := disk.Close(); err != nil {
		return err
	}
	return a.convert(ctx, opts, rawPath, filepath.Join(in.Output, opts.Filename))
}

// treeDir returns the host path of the directory at mountpoint in the tree,
// refusing a path through a symlink: the host kernel would follow it out of
// the tree (a link /data -> /home would put the build machine's /home in
// the image). A missing directory is not an error (an empty filesystem);
// the tree is a read-only bind mount, so nothing changes it meanwhile.
func treeDir(tree, mountpoint string) (string, error) {
	p := tree
	for _, c := range strings.Split(strings.Trim(path.Clean("/"+mountpoint), "/"), "/") {
		if c == "" {
			continue
		}
		p = filepath.Join(p, c)
		fi, err := os.Lstat(p)
		if os.IsNotExist(err) {
			return filepath.Join(tree, mountpoint), nil
		}
		if err != nil {
			return "", err
		}
		if !fi.IsDir() {
			return "", fmt.Errorf("%s in the tree is a %v, not a directory (symlinks are not followed out of the tree)", strings.TrimPrefix(p, tree), fi.Mode().Type())
		}
	}
	return p, nil
}

// fillPartition makes partition i's filesystem from the tree under its
// mountpoint, leaving out what other partitions mounted below it hold, and
// copies it into the disk at the partition's offset.
func (a qemu) fillPartition(ctx context.Context, in Input, scratch string, disk *os.File, parts []partition, i int) error {
	p := parts[i]
	src, err := treeDir(in.Tree, p.Filesystem.Mountpoint)
	if err != nil {
		return errOption(a.Name(), fmt.Sprintf("partitions[%d].filesystem.mountpoint", i), "%v", err)
	}
	var exclude []string
	for j, q := range parts {
		if j == i || q.Filesystem == nil {
			continue
		}
		if rel, ok := below(p.Filesystem.Mountpoint, q.Filesystem.Mountpoint); ok {
			exclude = append(exclude, rel)
		}
	}
	dir := filepath.Join(scratch, fmt.Sprintf("part%d", i+1))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	defer fsmeta.RemoveAll(dir)
	if p.Filesystem.Type == "vfat" {
		// mtools copies file by file, leaving out the excluded paths
		// itself: no copy of the tree needed.
		err := makeVFAT(ctx, vfatSpec{
			Assembler: a.Name(), Option: fmt.Sprintf("partitions[%d].filesystem", i), Dir: src, Exclude: exclude,
			Path: filepath.Join(dir, "fs.img"), Size: p.Size * sectorSize, Serial: p.Filesystem.UUID, Label: p.Filesystem.Label, Epoch: in.Epoch,
		})
		if err != nil {
			return err
		}
		return copySparse(ctx, disk, p.Start*sectorSize, filepath.Join(dir, "fs.img"))
	}
	files := src
	if _, err := os.Lstat(src); os.IsNotExist(err) {
		// Nothing in the tree below the mountpoint: an empty filesystem.
		files = filepath.Join(dir, "empty")
		if err := os.Mkdir(files, 0o755); err != nil {
			return err
		}
	} else if len(exclude) > 0 {
		// Refuse what ext4 cannot hold before copying it: a 4 EiB sparse
		// file would take the copy as long as reading 4 EiB.
		if _, err := readSourceTree(ctx, src, ext4MaxFileSize(p.Size*sectorSize)); err != nil {
			return err
		}
		// mkfs.ext4 -d copies a whole directory: give it a copy of the
		// tree without the other partitions' contents.
		files = filepath.Join(dir, "tree")
		if err := treecopy.Copy(ctx, src, files, treecopy.Options{Exclude: exclude}); err != nil {
			return fmt.Errorf("copying the tree: %w", err)
		}
	}
	image := filepath.Join(dir, "fs.img")
	err = makeExt4(ctx, dir, ext4Spec{
		Assembler: a.Name(), Dir: files, Path: image, Size: p.Size * sectorSize,
		UUID: p.Filesystem.UUID, Label: p.Filesystem.Label, Epoch: in.Epoch,
	})
	if err != nil {
		return err
	}
	return copySparse(ctx, disk, p.Start*sectorSize, image)
}

// below reports whether mountpoint q lies strictly below p, and where
// relative to p.
func below(p, q string) (string, bool) {
	if p == q {
		return "", false
	}
	prefix := strings.TrimSuffix(p, "/") + "/"
	if !strings.HasPrefix(q, prefix) {
		return "", false
	}
	return strings.TrimPrefix(q, prefix), true
}

// convert writes the raw disk at raw to out in the format asked for.
func (a qemu) convert(ctx context.Context, opts qemuOptions, raw, out string) error {
	switch opts.Format {
	case "raw":
		return nil
	case "raw.xz":
		// One thread: xz's multi-threaded output depends on the thread
		// count, and a raw disk is mostly zeros.
		f, err := os.OpenFile(out, os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := runToolTo(ctx, f, "xz", "--threads=1", "--stdout", "--", raw); err != nil {
			return failure(a.Name(), err)
		}
		return f.Close()
	}
	args := []string{"convert", "-f", "raw", "-O", qemuFormats[opts.Format]}
	var o []string
	if opts.QCOW2Compat != "" {
		o = append(o, "compat="+opts.QCOW2Compat)
	}
	if opts.VMDKSubformat != "" {
		o = append(o, "subformat="+opts.VMDKSubformat)
	}
	if opts.Format == "vpc" {
		// Without it qemu-img rounds the size to a CHS geometry.
		o = append(o, "force_size=on")
	}
	if len(o) > 0 {
		args = append(args, "-o", strings.Join(o, ","))
	}
	// raw and out are absolute (no protocol prefix, no leading '-'), and
	// "--" ends the options anyway.
	if _, err := runTool(ctx, nil, "qemu-img", append(args, "--", raw, out)...); err != nil {
		return failure(a.Name(), err)
	}
	return nil
}
