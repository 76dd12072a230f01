package assembler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/store/treesum"
)

// stageTree copies src to dst (which must not exist) with modes, owners,
// xattrs, mtimes, devices and hardlinks, leaving the directories at the
// relative paths in exclude empty. It is how a partition's filesystem gets
// the tree under its mountpoint without the partitions mounted below it.
// File contents go through copy_file_range, which on the store's XFS or
// btrfs shares extents instead of copying bytes.
func stageTree(ctx context.Context, src, dst string, exclude []string) error {
	links := map[[2]uint64]string{}
	type dirMeta struct {
		path string
		st   unix.Stat_t
	}
	var dirs []dirMeta
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return err
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			// Owner-writable until the end, so a read-only directory can
			// be filled; modes and mtimes are set last, deepest first.
			if err := os.Mkdir(target, 0o700); err != nil {
				return err
			}
			dirs = append(dirs, dirMeta{target, st})
			if err := copyMeta(path, target, &st); err != nil {
				return err
			}
			if slices.Contains(exclude, filepath.ToSlash(rel)) {
				return fs.SkipDir
			}
			return nil
		case unix.S_IFREG:
			key := [2]uint64{st.Dev, st.Ino}
			if first, ok := links[key]; ok {
				return os.Link(first, target)
			}
			if st.Nlink > 1 {
				links[key] = target
			}
			if err := copyContent(path, target); err != nil {
				return err
			}
		case unix.S_IFLNK:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			if err := os.Symlink(link, target); err != nil {
				return err
			}
		case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO:
			if err := unix.Mknod(target, st.Mode, int(st.Rdev)); err != nil {
				return fmt.Errorf("mknod %s: %w", target, err)
			}
		default:
			return nil // a socket: mkfs.ext4 -d leaves them out too
		}
		if err := copyMeta(path, target, &st); err != nil {
			return err
		}
		return setTimes(target, &st)
	})
	if err != nil {
		return err
	}
	for _, d := range slices.Backward(dirs) {
		if err := unix.Chmod(d.path, d.st.Mode&07777); err != nil {
			return err
		}
		if err := setTimes(d.path, &d.st); err != nil {
			return err
		}
	}
	return nil
}

// copyMeta gives target src's owner, xattrs and, except for directories
// and symlinks, mode (chown clears setuid bits, so the mode comes after).
func copyMeta(src, target string, st *unix.Stat_t) error {
	if err := unix.Lchown(target, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("chown %s: %w (keeping owners needs root)", target, err)
	}
	names, err := treesum.ListXattrs(src)
	if err != nil {
		return err
	}
	for _, n := range names {
		v, err := treesum.GetXattr(src, n)
		if err != nil {
			return err
		}
		if err := unix.Lsetxattr(target, n, v, 0); err != nil {
			return fmt.Errorf("setxattr %s %s: %w", target, n, err)
		}
	}
	if t := st.Mode & unix.S_IFMT; t != unix.S_IFDIR && t != unix.S_IFLNK {
		return unix.Chmod(target, st.Mode&07777)
	}
	return nil
}

func setTimes(path string, st *unix.Stat_t) error {
	ts := []unix.Timespec{st.Atim, st.Mtim}
	return unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW)
}

func copyContent(src, dst string) error {
	in, err := os.OpenFile(src, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in) // copy_file_range where the kernel can
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// copySparse copies the file at src into dst at offset off, data regions
// only: a filesystem image is mostly holes, which the disk already has.
func copySparse(dst *os.File, off int64, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	fd := int(in.Fd())
	for pos := int64(0); pos < st.Size(); {
		data, err := unix.Seek(fd, pos, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole is left
		}
		if err != nil {
			return err
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return err
		}
		r := io.NewSectionReader(in, data, hole-data)
		if _, err := io.Copy(io.NewOffsetWriter(dst, off+data), r); err != nil {
			return err
		}
		pos = hole
	}
	return nil
}
