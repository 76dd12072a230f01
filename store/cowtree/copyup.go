package cowtree

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/store/treecopy"
)

// ErrChanged: the name no longer holds the inode the caller checked.
var ErrChanged = errors.New("cowtree: file changed during copy-up")

// tmpName is a name for a copy being made next to the original. Random, so
// that no guest can have made it in advance; made with O_EXCL anyway.
func tmpName() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return ".kiln-copyup-" + hex.EncodeToString(b[:])
}

func procFd(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// CopyUp replaces the regular file base in the directory dirfd (which may
// be an O_PATH descriptor) by a private copy: a new inode in the same
// directory with the same contents (holes kept), owner, mode (setuid and
// setgid bits included), xattrs, atime and mtime, renamed over the name.
// want is the caller's lstat of the name; if the name holds another inode
// now, nothing is done and ErrChanged is returned. It returns the copy's
// stat. The original inode, and every other name of it, is left untouched.
func CopyUp(ctx context.Context, dirfd int, base string, want *unix.Stat_t) (unix.Stat_t, error) {
	var st unix.Stat_t
	// O_NOATIME: reading the base's inode must not change it either.
	in, err := openat(dirfd, base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_NOATIME, 0)
	if errors.Is(err, unix.EPERM) { // O_NOATIME needs ownership or CAP_FOWNER
		in, err = openat(dirfd, base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	}
	if err != nil {
		return st, fmt.Errorf("cowtree: copy-up of %s: %w", base, err)
	}
	defer in.Close()
	var cur unix.Stat_t
	if err := unix.Fstat(int(in.Fd()), &cur); err != nil {
		return st, fmt.Errorf("cowtree: copy-up of %s: %w", base, err)
	}
	if cur.Dev != want.Dev || cur.Ino != want.Ino || cur.Mode&unix.S_IFMT != unix.S_IFREG {
		return st, fmt.Errorf("%w: %s", ErrChanged, base)
	}
	tmp := tmpName()
	out, err := openat(dirfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return st, fmt.Errorf("cowtree: copy-up of %s: %w", base, err)
	}
	ok := false
	defer func() {
		out.Close()
		if !ok {
			_ = unix.Unlinkat(dirfd, tmp, 0)
		}
	}()
	if err := treecopy.CopyData(ctx, in, out, cur.Size); err != nil {
		return st, fmt.Errorf("cowtree: copy-up of %s: %w", base, err)
	}
	if err := copyMeta(in, out, &cur); err != nil {
		return st, fmt.Errorf("cowtree: copy-up of %s: %w", base, err)
	}
	if err := unix.Renameat(dirfd, tmp, dirfd, base); err != nil {
		return st, fmt.Errorf("cowtree: copy-up of %s: %w", base, err)
	}
	ok = true
	err = unix.Fstat(int(out.Fd()), &st)
	return st, err
}

// copyMeta gives out in's owner, mode, xattrs and times. Ownership comes
// before the mode, because chown clears the setuid and setgid bits.
func copyMeta(in, out *os.File, st *unix.Stat_t) error {
	ifd, ofd := int(in.Fd()), int(out.Fd())
	if err := unix.Fchown(ofd, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if err := unix.Fchmod(ofd, st.Mode&0o7777); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	names, err := listXattrs(ifd)
	if err != nil {
		return err
	}
	for _, name := range names {
		v, err := getXattr(ifd, name)
		if err != nil {
			return err
		}
		if err := unix.Fsetxattr(ofd, name, v, 0); err != nil {
			return fmt.Errorf("setxattr %s: %w", name, err)
		}
	}
	// The times last: nothing after this may touch the data.
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, procFd(ofd), ts, 0); err != nil {
		return fmt.Errorf("utimens: %w", err)
	}
	return nil
}

func listXattrs(fd int) ([]string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Flistxattr(fd, buf)
		if errors.Is(err, unix.ERANGE) && size < 1<<20 {
			continue
		}
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("listxattr: %w", err)
		}
		var names []string
		for start := 0; start < n; {
			end := start
			for end < n && buf[end] != 0 {
				end++
			}
			if end > start {
				names = append(names, string(buf[start:end]))
			}
			start = end + 1
		}
		return names, nil
	}
}

func getXattr(fd int, name string) ([]byte, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Fgetxattr(fd, name, buf)
		if errors.Is(err, unix.ERANGE) && size < 1<<20 {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("getxattr %s: %w", name, err)
		}
		return buf[:n], nil
	}
}

// LinkOver makes the name base in dirfd a link to the file newBase in
// newDir, atomically (a link under a temporary name renamed over base): the
// other names of an image-internal hardlink group follow a copy-up this way.
func LinkOver(newDir int, newBase string, dirfd int, base string) error {
	tmp := tmpName()
	if err := unix.Linkat(newDir, newBase, dirfd, tmp, 0); err != nil {
		return fmt.Errorf("cowtree: linking %s: %w", base, err)
	}
	if err := unix.Renameat(dirfd, tmp, dirfd, base); err != nil {
		_ = unix.Unlinkat(dirfd, tmp, 0)
		return fmt.Errorf("cowtree: linking %s: %w", base, err)
	}
	return nil
}

func openat(dirfd int, name string, flags int, perm uint32) (*os.File, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags|unix.O_CLOEXEC, perm)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return os.NewFile(uintptr(fd), name), nil
	}
}
