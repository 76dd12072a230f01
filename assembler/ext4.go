package assembler

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
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
// every inode's times with debugfs, then checks the result with e2fsck. What
// mkfs alone leaves varying between two runs on the same tree (checked by
// TestRawfsReproducible): the UUID and directory hash seed, fixed to
// spec.UUID; the superblock and crtime stamps, fixed by
// E2FSPROGS_FAKE_TIME; and each inode's atime, ctime and mtime, which mkfs
// -d copies from the source, where ctime cannot be set and atime changes on
// reads. The journal has no UUID of its own (internal), and mkfs -d visits
// directories in sorted order (scandir with alphasort, made byte order by
// LC_ALL=C), so inode numbers do not depend on the source's readdir order.
// scratch holds the config and command files.
func makeExt4(ctx context.Context, scratch string, spec ext4Spec) error {
	// The UUID goes into -E hash_seed=, where a comma would add settings;
	// callers check their options, this keeps every caller honest.
	if err := checkUUID(spec.Assembler, "uuid", spec.UUID); err != nil {
		return err
	}
	if spec.Label != "" {
		if err := checkPattern(spec.Assembler, "label", spec.Label, labelRE, "an ext4 label"); err != nil {
			return err
		}
	}
	if err := checkImageSize(spec.Assembler, spec.Size); err != nil {
		return err
	}
	dir, err := argPath(spec.Dir)
	if err != nil {
		return err
	}
	image, err := argPath(spec.Path)
	if err != nil {
		return err
	}
	conf := filepath.Join(scratch, "mke2fs.conf")
	if err := os.WriteFile(conf, []byte(mke2fsConf), 0o644); err != nil {
		return err
	}
	tree, err := readSourceTree(ctx, dir, ext4MaxFileSize(spec.Size))
	if err != nil {
		return err
	}
	f, err := os.OpenFile(image, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	err = f.Truncate(spec.Size) // sparse: only what mkfs writes takes space
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", image, err)
	}
	// e2fsprogs reads a fake time of 0 as "none" and stamps the superblock
	// and every inode's crtime with the clock, so epoch 0 (kiln's default)
	// is given as 1: one second off, but the same on every build.
	// DEBUGFS_PAGER: debugfs would otherwise pipe listings through a pager
	// it finds on PATH.
	env := []string{"MKE2FS_CONFIG=" + conf, "E2FSPROGS_FAKE_TIME=" + strconv.FormatInt(max(spec.Epoch, 1), 10), "DEBUGFS_PAGER=__none__"}
	// nodiscard: the file is already a hole; discarding would punch it
	// again for nothing.
	args := []string{"-q", "-F", "-t", "ext4", "-U", spec.UUID, "-E", "hash_seed=" + spec.UUID + ",nodiscard", "-d", dir}
	if spec.Label != "" {
		args = append(args, "-L", spec.Label)
	}
	if _, err := runTool(ctx, env, "mkfs.ext4", append(args, "--", image)...); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// "No space left on device" is the host's filesystem (the output
		// directory's) being full; ext2fs says "Could not allocate" when
		// the image is.
		if hostErrno(err) == nil && strings.Contains(err.Error(), "Could not allocate") {
			return errOption(spec.Assembler, "size", "the tree does not fit in a filesystem of %d bytes: %v", spec.Size, err)
		}
		return failure(spec.Assembler, err)
	}
	if err := fixInodes(ctx, env, scratch, image, tree, spec.Epoch); err != nil {
		return fmt.Errorf("%s: setting inode times: %w", spec.Assembler, err)
	}
	return e2fsck(ctx, spec.Assembler, image)
}

// ext4MaxFileSize is the largest file an ext4 filesystem of the given size
// holds: extents address 2^32 blocks, and mke2fs.conf gives images under
// 512 MiB 1 KiB blocks. mkfs.ext4 -d copies a sparse file that is larger
// without a word and leaves a filesystem e2fsck calls damaged.
func ext4MaxFileSize(fsSize int64) int64 {
	block := int64(4096)
	if fsSize < 512<<20 {
		block = 1024
	}
	return (1<<32 - 1) * block
}

// srcNode is an entry of the source tree, as mkfs.ext4 -d copies it: what
// fixInodes needs and no more, since a tree can hold millions of entries.
type srcNode struct {
	mtime    int64
	path     string              // directories only, for errors
	children map[string]*srcNode // directories only
}

// srcTree is the source tree, with its root's mode and owner.
type srcTree struct {
	root     *srcNode
	mode     uint32
	uid, gid uint32
}

// readSourceTree lstats every entry mkfs.ext4 -d will copy (all but
// sockets), refusing files an ext4 filesystem cannot hold before mkfs makes
// a damaged one of them.
func readSourceTree(ctx context.Context, dir string, maxFile int64) (*srcTree, error) {
	tree := &srcTree{root: &srcNode{path: dir, children: map[string]*srcNode{}}}
	dirs := map[string]*srcNode{".": tree.root}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
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
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return fmt.Errorf("lstat %s: %w", path, err)
		}
		n := tree.root
		if rel == "." {
			tree.mode, tree.uid, tree.gid = st.Mode, st.Uid, st.Gid
		} else {
			n = &srcNode{}
			dirs[filepath.Dir(rel)].children[filepath.Base(rel)] = n
		}
		n.mtime = st.Mtim.Sec
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			if n.children == nil {
				n.path, n.children = path, map[string]*srcNode{}
			}
			dirs[rel] = n
		case unix.S_IFREG:
			if st.Size > maxFile {
				return fmt.Errorf("%w: %s: %d bytes is more than a file in this ext4 filesystem can hold (%d)", ErrFailed, path, st.Size, maxFile)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return tree, nil
}

// fixInodes sets every inode's mtime to its source's, clamped to epoch (as
// the tar assembler does), its atime and ctime to epoch, and the root's
// mode and owner (mkfs.ext4 -d gives the root 0755 and 0:0 whatever the
// tree's root is; Fedora's / is 0555).
//
// debugfs commands address inodes by number (<12>), never by name: its
// command parser ends a line at CR or LF and reads quotes and spaces
// itself, so a name holding them would set another file's times, or none.
// The numbers come from debugfs's own parseable listings (ls -p), one
// directory level per run, which are exact whatever the names hold: a
// field ends at '/', which no name contains.
func fixInodes(ctx context.Context, env []string, scratch, image string, tree *srcTree, epoch int64) error {
	const rootIno = 2
	times := map[uint64]int64{rootIno: min(tree.root.mtime, epoch)}
	level := map[uint64]*srcNode{rootIno: tree.root}
	for len(level) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		inos := slices.Sorted(maps.Keys(level))
		cmds := make([]string, len(inos))
		for i, ino := range inos {
			cmds[i] = fmt.Sprintf("ls -p <%d>", ino)
		}
		out, err := runDebugfs(ctx, env, filepath.Join(scratch, "ls.debugfs"), image, false, cmds)
		if err != nil {
			return err
		}
		listings, err := parseListings(out, cmds)
		if err != nil {
			return err
		}
		next := map[uint64]*srcNode{}
		for i, ino := range inos {
			dir := level[ino]
			for name, n := range dir.children {
				childIno, ok := listings[i][name]
				if !ok {
					return fmt.Errorf("%s is not in the filesystem mkfs.ext4 made", filepath.Join(dir.path, name))
				}
				times[childIno] = min(n.mtime, epoch)
				if n.children != nil {
					next[childIno] = n
				}
			}
		}
		level = next
	}
	cmds := []string{
		fmt.Sprintf("sif <%d> mode 0%o", rootIno, tree.mode),
		fmt.Sprintf("sif <%d> uid %d", rootIno, tree.uid),
		fmt.Sprintf("sif <%d> gid %d", rootIno, tree.gid),
	}
	for _, ino := range slices.Sorted(maps.Keys(times)) {
		cmds = append(cmds,
			fmt.Sprintf("sif <%d> mtime @%d", ino, times[ino]),
			fmt.Sprintf("sif <%d> atime @%d", ino, epoch),
			fmt.Sprintf("sif <%d> ctime @%d", ino, epoch))
	}
	_, err := runDebugfs(ctx, env, filepath.Join(scratch, "times.debugfs"), image, true, cmds)
	return err
}

// runDebugfs runs cmds as a debugfs command file on image. debugfs exits 0
// whatever its commands report, so anything on stderr past its version
// banner is an error.
func runDebugfs(ctx context.Context, env []string, script, image string, write bool, cmds []string) ([]byte, error) {
	var b strings.Builder
	for _, c := range cmds {
		if strings.ContainsAny(c, "\r\n") {
			return nil, fmt.Errorf("debugfs command %q holds a line break", c) // a bug: commands are made of numbers
		}
		b.WriteString(c)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(script, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	args := []string{"-f", script}
	if write {
		args = append([]string{"-w"}, args...)
	}
	cmd := exec.CommandContext(ctx, "debugfs", append(args, "--", image)...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C"}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return nil, fmt.Errorf("debugfs is not installed: %w", err)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, blame(fmt.Errorf("debugfs reports errors on %s: %w: %s", image, err, strings.TrimSpace(stderr.String())))
	}
	var msgs []string
	for line := range strings.Lines(stderr.String()) {
		line = strings.TrimSpace(line)
		if line != "" && !debugfsBanner.MatchString(line) {
			msgs = append(msgs, line)
		}
	}
	if len(msgs) > 0 {
		const most = 10
		if len(msgs) > most {
			msgs = append(msgs[:most], fmt.Sprintf("(%d more)", len(msgs)-most))
		}
		return nil, blame(fmt.Errorf("debugfs reports errors on %s: %s", image, strings.Join(msgs, "; ")))
	}
	return stdout.Bytes(), nil
}

var debugfsBanner = regexp.MustCompile(`^debugfs [0-9][0-9.]* \([^)]*\)$`)

// parseListings reads the output of debugfs -f running cmds, each an
// "ls -p <N>", into one map per command from name to inode number. debugfs
// echoes each command as "debugfs: CMD"; an entry is
// "/ino/mode/uid/gid/name/size/" and a line break, and a listing ends with
// an empty line. A name holds no '/' and may hold line breaks, so the
// fields are read up to each '/', never by lines.
func parseListings(out []byte, cmds []string) ([]map[string]uint64, error) {
	listings := make([]map[string]uint64, len(cmds))
	pos := 0
	bad := func(what string) error {
		return fmt.Errorf("debugfs listing: %s at byte %d", what, pos)
	}
	for i, c := range cmds {
		echo := "debugfs: " + c + "\n"
		if !bytes.HasPrefix(out[pos:], []byte(echo)) {
			return nil, bad(fmt.Sprintf("no %q", c))
		}
		pos += len(echo)
		m := map[string]uint64{}
		for pos < len(out) && (out[pos] == '/' || out[pos] == '\n') {
			if out[pos] == '\n' {
				pos++
				continue
			}
			pos++
			var fields [6][]byte
			for f := range fields {
				end := bytes.IndexByte(out[pos:], '/')
				if end < 0 {
					return nil, bad("a truncated entry")
				}
				fields[f] = out[pos : pos+end]
				pos += end + 1
			}
			if pos >= len(out) || out[pos] != '\n' {
				return nil, bad("no line break after an entry")
			}
			pos++
			ino, err := strconv.ParseUint(string(fields[0]), 10, 32)
			if err != nil {
				return nil, bad("a bad inode number")
			}
			if name := string(fields[4]); name != "." && name != ".." {
				m[name] = ino
			}
		}
		listings[i] = m
	}
	if pos != len(out) {
		return nil, bad("trailing output")
	}
	return listings, nil
}

// e2fsck checks the filesystem at image without changing it, so that an
// assembler never returns a damaged filesystem as a result (mkfs.ext4 -d
// has been seen to make one and exit 0).
func e2fsck(ctx context.Context, assembler, image string) error {
	cmd := exec.CommandContext(ctx, "e2fsck", "-fn", "--", image)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C"}
	out, err := cmd.CombinedOutput()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, exec.ErrNotFound) {
		return fmt.Errorf("e2fsck is not installed: %w", err)
	}
	msg := strings.TrimSpace(string(out))
	if len(msg) > 2000 {
		msg = msg[:2000] + " ..."
	}
	return fmt.Errorf("%w: %s: the filesystem made is damaged (e2fsck -fn: %v): %s", ErrFailed, assembler, err, msg)
}
