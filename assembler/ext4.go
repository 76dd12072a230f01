package assembler

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// mke2fsConf pins mkfs.ext4's defaults: with the build host's
// /etc/mke2fs.conf the same manifest would give a different filesystem on a
// host whose e2fsprogs enables other features (1.47 upstream turns on
// orphan_file and metadata_csum_seed, which older GRUBs cannot read).
// These are Debian 12's ext4 defaults.
const mke2fsConf = `[defaults]
	base_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
	default_mntopts = acl,user_xattr
	enable_periodic_fsck = 0
	blocksize = 4096
	inode_size = 256
	inode_ratio = 16384
[fs_types]
	ext4 = {
		features = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
	}
	small = {
		blocksize = 1024
		inode_ratio = 4096
	}
	floppy = {
		blocksize = 1024
		inode_ratio = 8192
	}
	big = {
		inode_ratio = 32768
	}
	huge = {
		inode_ratio = 65536
	}
`

// ext4Spec describes one ext4 image.
type ext4Spec struct {
	Assembler string // for errors
	Dir       string // the files: a directory, read only
	Path      string // the image file to create
	Size      int64  // bytes
	UUID      string
	Label     string
	Epoch     int64
}

// makeExt4 writes an ext4 image of spec.Dir with mkfs.ext4 -d, then fixes
// every inode's times with debugfs. What mkfs alone leaves varying between
// two runs on the same tree (checked by TestRawfsReproducible): the UUID
// and directory hash seed, fixed to spec.UUID; the superblock and crtime
// stamps, fixed by E2FSPROGS_FAKE_TIME; and each inode's atime, ctime and
// mtime, which mkfs -d copies from the source, where ctime cannot be set
// and atime changes on reads. The journal has no UUID of its own
// (internal), and mkfs -d visits directories in sorted order (scandir with
// alphasort, made byte order by LC_ALL=C), so inode numbers do not depend
// on the source's readdir order. scratch holds the config and command
// files.
func makeExt4(ctx context.Context, scratch string, spec ext4Spec) error {
	conf := filepath.Join(scratch, "mke2fs.conf")
	if err := os.WriteFile(conf, []byte(mke2fsConf), 0o644); err != nil {
		return err
	}
	if spec.Size <= 0 {
		return errOption(spec.Assembler, "size", "%d is not a positive number of bytes", spec.Size)
	}
	f, err := os.OpenFile(spec.Path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	err = f.Truncate(spec.Size) // sparse: only what mkfs writes takes space
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	// e2fsprogs reads a fake time of 0 as "none" and stamps the superblock
	// and every inode's crtime with the clock, so epoch 0 (kiln's default)
	// is given as 1: one second off, but the same on every build.
	env := []string{"MKE2FS_CONFIG=" + conf, "E2FSPROGS_FAKE_TIME=" + strconv.FormatInt(max(spec.Epoch, 1), 10)}
	// nodiscard: the file is already a hole; discarding would punch it
	// again for nothing.
	args := []string{"-q", "-F", "-t", "ext4", "-U", spec.UUID, "-E", "hash_seed=" + spec.UUID + ",nodiscard", "-d", spec.Dir}
	if spec.Label != "" {
		args = append(args, "-L", spec.Label)
	}
	if _, err := runTool(ctx, env, "mkfs.ext4", append(args, spec.Path)...); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrFailed, spec.Assembler, err)
	}
	script := filepath.Join(scratch, "times.debugfs")
	if err := writeTimesScript(ctx, script, spec.Dir, spec.Epoch); err != nil {
		return err
	}
	if _, err := runTool(ctx, env, "debugfs", "-w", "-f", script, spec.Path); err != nil {
		return fmt.Errorf("%s: setting inode times: %w", spec.Assembler, err)
	}
	return nil
}

// writeTimesScript writes the debugfs commands that set every inode's
// mtime to the source's, clamped to epoch (as the tar assembler does), and
// its atime and ctime to epoch, and the root's mode and owner.
func writeTimesScript(ctx context.Context, script, dir string, epoch int64) error {
	f, err := os.Create(script)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.Type()&fs.ModeSocket != 0 {
			return nil // mkfs -d leaves sockets out
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		name, err := debugfsQuote("/" + filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return err
		}
		if rel == "." {
			// mkfs.ext4 -d gives the filesystem's root 0755 and 0:0
			// whatever the tree's root is (Fedora's / is 0555).
			fmt.Fprintf(w, "sif / mode 0%o\nsif / uid %d\nsif / gid %d\n", st.Mode, st.Uid, st.Gid)
		}
		mtime := min(st.Mtim.Sec, epoch)
		for _, field := range []struct {
			name string
			t    int64
		}{{"mtime", mtime}, {"atime", epoch}, {"ctime", epoch}} {
			fmt.Fprintf(w, "sif %s %s @%d\n", name, field.name, field.t)
		}
		return nil
	})
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Close()
	}
	return err
}

// debugfsQuote quotes a path for a debugfs command line, whose parser
// groups words in double quotes and reads "" inside them as one quote. A
// newline ends a command and cannot be quoted.
func debugfsQuote(path string) (string, error) {
	if strings.ContainsRune(path, '\n') {
		return "", fmt.Errorf("%w: %q: a file name with a newline cannot be put in an ext4 image by kiln", ErrFailed, path)
	}
	return `"` + strings.ReplaceAll(path, `"`, `""`) + `"`, nil
}

// checkUUID refuses what is not an RFC 4122 UUID in its usual form, before
// a tool gets it and says something less clear (or, for a hash seed, reads
// a random one instead).
func checkUUID(assembler, option, s string) error {
	if len(s) != 36 {
		return errOption(assembler, option, "%q is not a UUID (8-4-4-4-12 hex digits)", s)
	}
	for i, c := range s {
		dash := i == 8 || i == 13 || i == 18 || i == 23
		hex := '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
		if dash != (c == '-') || !dash && !hex {
			return errOption(assembler, option, "%q is not a UUID (8-4-4-4-12 hex digits)", s)
		}
	}
	return nil
}
