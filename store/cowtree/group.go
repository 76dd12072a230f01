package cowtree

import (
	"context"
	"fmt"
	"path"

	"golang.org/x/sys/unix"
)

// Name is one name of an inode: a directory (relative to the tree's root,
// slash-separated, "" for the root) and a base name in it.
type Name struct{ Dir, Base string }

func (n Name) String() string { return path.Join("/", n.Dir, n.Base) }

// walk calls f for every entry below the directory rootfd, depth first,
// without following symlinks or entering other filesystems. f gets the
// entry's directory, as an open descriptor and a relative path, its name
// and its lstat.
func walk(ctx context.Context, rootfd int, f func(dirfd int, dir, base string, st *unix.Stat_t) error) error {
	var rootSt unix.Stat_t
	if err := unix.Fstat(rootfd, &rootSt); err != nil {
		return fmt.Errorf("cowtree: %w", err)
	}
	var visit func(dirfd int, dir string) error
	visit = func(dirfd int, dir string) error {
		d, err := openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			return fmt.Errorf("cowtree: reading /%s: %w", dir, err)
		}
		names, err := d.Readdirnames(-1)
		if err != nil {
			d.Close()
			return fmt.Errorf("cowtree: reading /%s: %w", dir, err)
		}
		defer d.Close()
		fd := int(d.Fd())
		for _, name := range names {
			if err := ctx.Err(); err != nil {
				return err
			}
			var st unix.Stat_t
			if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return fmt.Errorf("cowtree: lstat %s: %w", Name{dir, name}, err)
			}
			if err := f(fd, dir, name, &st); err != nil {
				return err
			}
			if st.Mode&unix.S_IFMT == unix.S_IFDIR && st.Dev == rootSt.Dev {
				sub, err := unix.Openat(fd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
				if err != nil {
					return fmt.Errorf("cowtree: %s: %w", Name{dir, name}, err)
				}
				err = visit(sub, path.Join(dir, name))
				unix.Close(sub)
				if err != nil {
					return err
				}
			}
		}
		return nil
	}
	return visit(rootfd, "")
}

// CopyUpGroup copies up the name base in dirfd, and when flags mark its
// inode as an image-internal hardlink group, every other name of that
// inode below rootfd too, onto the one new inode: the group stays one file,
// now private. It returns the copy's stat.
func CopyUpGroup(ctx context.Context, rootfd, dirfd int, base string, want *unix.Stat_t, flags uint8) (unix.Stat_t, error) {
	st, err := CopyUp(ctx, dirfd, base, want)
	if err != nil || flags&Group == 0 {
		return st, err
	}
	err = walk(ctx, rootfd, func(fd int, dir, name string, e *unix.Stat_t) error {
		if e.Dev != want.Dev || e.Ino != want.Ino {
			return nil
		}
		return LinkOver(dirfd, base, fd, name)
	})
	return st, err
}

// Unshare gives every file of the tree at dir that is in shared an inode
// of its own, keeping image-internal hardlink groups together: after it,
// the tree can be handed to a writer that does not copy up.
func Unshare(ctx context.Context, dir string, shared map[uint64]uint8) error {
	rootfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("cowtree: %w", err)
	}
	defer unix.Close(rootfd)
	type first struct {
		dirfd int
		base  string
	}
	copies := map[uint64]first{} // group inode -> the name holding its copy
	defer func() {
		for _, c := range copies {
			unix.Close(c.dirfd)
		}
	}()
	return walk(ctx, rootfd, func(fd int, dir, name string, st *unix.Stat_t) error {
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			return nil
		}
		flags, ok := shared[st.Ino]
		if !ok {
			return nil
		}
		if c, done := copies[st.Ino]; done {
			return LinkOver(c.dirfd, c.base, fd, name)
		}
		if _, err := CopyUp(ctx, fd, name, st); err != nil {
			return err
		}
		if flags&Group != 0 {
			keep, err := unix.Dup(fd)
			if err != nil {
				return fmt.Errorf("cowtree: %w", err)
			}
			copies[st.Ino] = first{keep, name}
		}
		return nil
	})
}
