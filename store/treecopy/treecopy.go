// Package treecopy copies a filesystem tree with everything kiln's trees
// carry: modes with special bits, numeric owners, xattrs, timestamps,
// symlinks, device nodes, fifos, sockets and hardlinks. File data is cloned
// with reflinks where the filesystem has them and copied otherwise, by a
// pool of workers. The object store initializes writable objects with it,
// and the disk assembler uses it to stage a partition's part of a tree.
package treecopy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/internal/fsmeta"
	"github.com/kilnbuild/kiln/store/crashpoint"
	"github.com/kilnbuild/kiln/store/internal/parwalk"
)

// Mode chooses how file data is copied.
type Mode int

const (
	// Auto clones file data with reflinks (FICLONE) where the filesystem
	// supports them and copies it otherwise. The default.
	Auto Mode = iota
	// Reflink requires reflinks and fails on filesystems without them.
	Reflink
	// Plain always copies file data (copy_file_range where possible).
	Plain
	// Hardlink links every regular file of the copy to the source's inode
	// and creates the rest (directories, symlinks, special files) anew. The
	// copy shares its files with the source: only a writer that copies a
	// file up before changing it (hostfs with package cowtree) may write to
	// it. Options.Shared receives the inodes shared.
	Hardlink
)

func (m Mode) String() string {
	switch m {
	case Auto:
		return "auto"
	case Reflink:
		return "reflink"
	case Plain:
		return "copy"
	case Hardlink:
		return "hardlink"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Options tune Copy.
type Options struct {
	Mode Mode
	// Exclude lists directories, as slash-separated paths relative to
	// src, that are copied empty: their own metadata is kept, their
	// contents are not.
	Exclude []string
	// Shared, in Hardlink mode, is filled with the inode number of every
	// regular file linked, flagged cowtree.Group (1) when the inode has more
	// than one name in the tree.
	Shared map[uint64]uint8
	// Visit, if set, is called for every directory the copy reads, rel
	// "." for src itself, with its entries' names (sorted) and their
	// lstat results, taken before the entries were copied, while the
	// source directory is open as dirfd: a caller that needs to look at
	// every entry of src (the store's check on use) does it in the copy's
	// walk instead of one of its own. An error ends the copy.
	Visit func(ctx context.Context, dirfd int, rel string, names []string, sts []unix.Stat_t) error
}

// ErrNoReflink is returned in Reflink mode on a filesystem without reflinks.
var ErrNoReflink = errors.New("filesystem does not support reflinks")

// copier copies one tree into a new directory, keeping modes, ownership,
// xattrs, timestamps, symlinks, device nodes, fifos, sockets and hardlinks.
//
// The directories are read by a parallel walk (package parwalk), which
// creates their subdirectories, special files and, in Hardlink mode, the
// links, with *at calls relative to the two directories' descriptors: a
// hardlink tree costs a stat and a link per file, each resolving one name,
// which keeps it below `cp -al`, which resolves whole paths. In the other
// modes a pool of workers copies the files' data as the walk finds them.
// Directory metadata is applied last, deepest first, because creating
// entries changes a directory's mtime and a read-only directory would
// refuse them.
type copier struct {
	opts      Options
	src, dst  string
	noReflink atomic.Bool // Auto mode saw the filesystem refuse a reflink
	files     chan fileJob

	mu    sync.Mutex
	dirs  []dirJob             // in discovery order: a parent before its children
	links []linkJob            // names of a multiply linked file after its first copy
	seen  map[[2]uint64]string // (dev, ino) of multiply linked files -> first copy
}

type fileJob struct {
	src, dst string
	st       unix.Stat_t
}

type linkJob struct{ first, dst string }

type dirJob struct {
	dst string
	st  unix.Stat_t
	src string
}

// Copy copies the tree at src to dst, which must not exist.
func Copy(ctx context.Context, src, dst string, opts Options) error {
	c := &copier{
		opts: opts, src: src, dst: dst,
		files: make(chan fileJob, 256), seen: map[[2]uint64]string{},
	}
	var rootSt unix.Stat_t
	if err := unix.Lstat(src, &rootSt); err != nil {
		return fmt.Errorf("treecopy: %w", err)
	}
	if err := os.Mkdir(dst, 0o700); err != nil {
		return fmt.Errorf("treecopy: %w", err)
	}
	c.dirs = append(c.dirs, dirJob{dst: dst, st: rootSt, src: src})
	workers := 2 * runtime.GOMAXPROCS(0)
	g, gctx := errgroup.WithContext(ctx)
	for range workers {
		g.Go(func() error {
			for j := range c.files {
				if err := c.copyFile(gctx, j); err != nil {
					return err
				}
			}
			return nil
		})
	}
	walkErr := parwalk.Walk(gctx, src, workers, c.readDir)
	close(c.files)
	if err := g.Wait(); err != nil {
		return err
	}
	if walkErr != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("treecopy: %w", walkErr)
	}
	for _, l := range c.links {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := os.Link(l.first, l.dst); err != nil {
			return fmt.Errorf("treecopy: %w", err)
		}
	}
	for _, d := range slices.Backward(c.dirs) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := setMeta(d.src, d.dst, &d.st); err != nil {
			return err
		}
	}
	return nil
}

// readDir copies the entries of the directory d: directories are made and
// returned to be walked, files linked (Hardlink) or handed to the copy
// workers, the rest recreated.
func (c *copier) readDir(ctx context.Context, d *parwalk.Dir) ([]string, error) {
	sdir, ddir := filepath.Join(c.src, d.Rel), filepath.Join(c.dst, d.Rel)
	df, err := os.OpenFile(ddir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer df.Close()
	sfd, dfd := int(d.File.Fd()), int(df.Fd())
	var sts []unix.Stat_t
	if c.opts.Visit != nil {
		sts = make([]unix.Stat_t, len(d.Names))
	}
	var descend []string
	for i, name := range d.Names {
		if err := ctx.Err(); err != nil { // a directory may hold millions
			return nil, err
		}
		s, dp := filepath.Join(sdir, name), filepath.Join(ddir, name)
		var st unix.Stat_t
		if err := unix.Fstatat(sfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return nil, fmt.Errorf("stat %s: %w", s, err)
		}
		if sts != nil {
			sts[i] = st
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			if err := unix.Mkdirat(dfd, name, 0o700); err != nil {
				return nil, fmt.Errorf("mkdir %s: %w", dp, err)
			}
			c.mu.Lock()
			c.dirs = append(c.dirs, dirJob{dst: dp, st: st, src: s})
			c.mu.Unlock()
			if !slices.Contains(c.opts.Exclude, d.Join(name)) {
				descend = append(descend, name)
			}
		case unix.S_IFREG:
			if c.opts.Mode == Hardlink {
				if err := unix.Linkat(sfd, name, dfd, name, 0); err != nil {
					return nil, fmt.Errorf("linking %s to %s: %w", s, dp, err)
				}
				c.share(st.Ino)
				continue
			}
			if st.Nlink > 1 && c.linkedBefore(st, dp) {
				continue
			}
			select {
			case c.files <- fileJob{src: s, dst: dp, st: st}:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		default:
			if err := copySpecial(s, dp, &st); err != nil {
				return nil, err
			}
		}
	}
	if c.opts.Visit != nil {
		if err := c.opts.Visit(ctx, sfd, d.Rel, d.Names, sts); err != nil {
			return nil, err
		}
	}
	return descend, nil
}

// share records a linked inode in Options.Shared, flagging a second name.
func (c *copier) share(ino uint64) {
	if c.opts.Shared == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, again := c.opts.Shared[ino]; again {
		c.opts.Shared[ino] = 1
	} else {
		c.opts.Shared[ino] = 0
	}
}

// linkedBefore reports whether the multiply linked file st has a copy
// already, and then queues dst to be linked to it; otherwise dst becomes
// its first copy.
func (c *copier) linkedBefore(st unix.Stat_t, dst string) bool {
	key := [2]uint64{st.Dev, st.Ino}
	c.mu.Lock()
	defer c.mu.Unlock()
	if first, ok := c.seen[key]; ok {
		c.links = append(c.links, linkJob{first: first, dst: dst})
		return true
	}
	c.seen[key] = dst
	return false
}

func (c *copier) copyFile(ctx context.Context, j fileJob) error {
	in, err := os.OpenFile(j.src, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("treecopy: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(j.dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("treecopy: %w", err)
	}
	crashpoint.Hit("treecopy.file")
	if err := c.copyData(ctx, in, out, j.st.Size); err != nil {
		out.Close()
		// Name the copy, not only the source: a full disk is the
		// destination's, and that is the path a user must look at.
		return fmt.Errorf("treecopy: copying %s to %s: %w", j.src, j.dst, err)
	}
	// Ownership before mode: chown clears setuid and setgid bits.
	fd := int(out.Fd())
	if err := unix.Fchown(fd, int(j.st.Uid), int(j.st.Gid)); err != nil {
		out.Close()
		return chownError(j.dst, err)
	}
	if err := unix.Fchmod(fd, j.st.Mode&07777); err != nil {
		out.Close()
		return fmt.Errorf("treecopy: chmod %s: %w", j.dst, err)
	}
	if err := copyXattrs(j.src, j.dst); err != nil {
		out.Close()
		return err
	}
	ts := []unix.Timespec{j.st.Atim, j.st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, j.dst, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		out.Close()
		return fmt.Errorf("treecopy: utimes %s: %w", j.dst, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("treecopy: %w", err)
	}
	return nil
}

func (c *copier) copyData(ctx context.Context, in, out *os.File, size int64) error {
	if c.opts.Mode != Plain && !c.noReflink.Load() {
		err := unix.IoctlFileClone(int(out.Fd()), int(in.Fd()))
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EXDEV) &&
			!errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOTTY) {
			return fmt.Errorf("FICLONE: %w", err)
		}
		if c.opts.Mode == Reflink {
			return fmt.Errorf("%w: %w", ErrNoReflink, err)
		}
		c.noReflink.Store(true)
	}
	return copySparse(ctx, in, out, size)
}

// chunk is how much file data one copy_file_range call moves, and so how
// often a copy looks at its context.
const chunk = 8 << 20

// chunkHook, when set by a test, runs after each chunk of file data copied.
var chunkHook func()

// copySparse copies only the data segments of in (SEEK_DATA/SEEK_HOLE) and
// sets out's size last, so holes stay holes: a 4 EiB sparse file costs a few
// calls, not exabytes of zeros. Each segment goes through copy_file_range
// (which shares extents where the filesystem can), chunk by chunk, checking
// ctx in between.
func copySparse(ctx context.Context, in, out *os.File, size int64) error {
	ifd := int(in.Fd())
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return err
		}
		data, err := unix.Seek(ifd, off, unix.SEEK_DATA)
		switch {
		case errors.Is(err, unix.ENXIO):
			data = size
		case err != nil:
			data = off // no SEEK_DATA here: copy everything
		}
		if data >= size {
			break
		}
		hole, err := unix.Seek(ifd, data, unix.SEEK_HOLE)
		if err != nil || hole <= data {
			hole = size
		}
		hole = min(hole, size)
		if err := copyRange(ctx, in, out, data, hole); err != nil {
			return err
		}
		off = hole
	}
	if err := out.Truncate(size); err != nil {
		return fmt.Errorf("setting size %d: %w", size, err)
	}
	return nil
}

func copyRange(ctx context.Context, in, out *os.File, from, to int64) error {
	var buf []byte
	for off := from; off < to; {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := int(min(to-off, chunk))
		roff, woff := off, off
		k, err := unix.CopyFileRange(int(in.Fd()), &roff, int(out.Fd()), &woff, n, 0)
		if err != nil && (errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EINVAL) ||
			errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP)) {
			// No copy_file_range between these files: copy through memory.
			if buf == nil {
				buf = make([]byte, 1<<20)
			}
			k, err = in.ReadAt(buf[:min(n, len(buf))], off)
			if errors.Is(err, io.EOF) && k > 0 {
				err = nil
			}
			if err == nil {
				_, err = out.WriteAt(buf[:k], off)
			}
		}
		if err != nil {
			return fmt.Errorf("copying bytes %d-%d: %w", off, to, err)
		}
		if k == 0 {
			return fmt.Errorf("file shrank to %d bytes while being copied", off)
		}
		off += int64(k)
		if chunkHook != nil {
			chunkHook()
		}
	}
	return nil
}

// copySpecial recreates a symlink, device node, fifo or socket.
func copySpecial(src, dst string, st *unix.Stat_t) error {
	var err error
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		var target string
		if target, err = os.Readlink(src); err == nil {
			err = os.Symlink(target, dst)
		}
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO, unix.S_IFSOCK:
		err = unix.Mknod(dst, st.Mode&unix.S_IFMT|0o600, int(st.Rdev))
	default:
		return fmt.Errorf("treecopy: %s has unsupported mode %#o", src, st.Mode)
	}
	if err != nil {
		return fmt.Errorf("treecopy: %w", err)
	}
	return setMeta(src, dst, st)
}

// setMeta applies ownership, mode, xattrs and timestamps to dst by path,
// never following a final symlink.
func setMeta(src, dst string, st *unix.Stat_t) error {
	if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return chownError(dst, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := unix.Fchmodat(unix.AT_FDCWD, dst, st.Mode&07777, 0); err != nil {
			return fmt.Errorf("treecopy: chmod %s: %w", dst, err)
		}
	}
	if err := copyXattrs(src, dst); err != nil {
		return err
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("treecopy: utimes %s: %w", dst, err)
	}
	return nil
}

func copyXattrs(src, dst string) error {
	names, err := fsmeta.ListXattrs(src)
	if err != nil {
		return fmt.Errorf("treecopy: %w", err)
	}
	for _, name := range names {
		v, err := fsmeta.GetXattr(src, name)
		if err != nil {
			return fmt.Errorf("treecopy: %w", err)
		}
		if err := unix.Lsetxattr(dst, name, v, 0); err != nil {
			return fmt.Errorf("treecopy: setxattr %s %s: %w", dst, name, err)
		}
	}
	return nil
}

// chownError explains the usual cause: an unprivileged process (or root
// mapped in a user namespace) cannot give files to other owners.
func chownError(path string, err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("treecopy: chown %s: %w (keeping other owners needs root)", path, err)
	}
	return fmt.Errorf("treecopy: chown %s: %w", path, err)
}

// CopyData copies the data of in to out, which must be empty, keeping holes
// as holes, and sets out's size to size. It never clones (a copy-up must
// get blocks of its own: a reflink would do as well, but where reflinks
// exist, trees are not hardlinked in the first place).
func CopyData(ctx context.Context, in, out *os.File, size int64) error {
	return copySparse(ctx, in, out, size)
}
