package hostfs

import (
	"strings"

	"golang.org/x/sys/unix"
)

// resolveWalk resolves rel beneath root without openat2, with the same
// results as RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS.
//
// Each component is opened with O_PATH|O_NOFOLLOW relative to the directory
// reached so far, so the kernel never follows a link on our behalf: a symlink
// is read with readlinkat and its target spliced into the remaining path, an
// absolute target restarting at root. Magic links are thereby harmless too:
// their text is just a path inside the tree. ".." never opens "..": it pops
// the stack of directories already resolved, so at the root it stays at the
// root, and a directory renamed away mid-walk cannot lead the walk outside.
// Each component must be on the root's mount, or the walk fails with EXDEV.
// The returned O_PATH descriptor belongs to the caller.
func resolveWalk(root int, mount mountKey, rel string, follow, dir bool) (fd int, err error) {
	// stack[0] is root, borrowed; the rest are ours to close.
	stack := make([]int, 1, 8)
	stack[0] = root
	defer func() {
		for _, d := range stack[1:] {
			closeFd(d)
		}
	}()
	pop := func() {
		if len(stack) > 1 {
			closeFd(stack[len(stack)-1])
			stack = stack[:len(stack)-1]
		}
	}

	rest := rel
	hops := 0
	for {
		var name string
		name, rest = nextComponent(rest)
		if name == "" {
			break // path exhausted
		}
		switch name {
		case ".":
			continue
		case "..":
			pop()
			continue
		}
		last := strings.Trim(rest, "/") == ""
		// A trailing slash demands a directory and follows a final symlink,
		// as in the kernel's own lookup; so does the caller's dir.
		mustDir := last && (rest != "" || dir)
		var next int
		err := retryEINTR(func() (err error) {
			next, err = unix.Openat(stack[len(stack)-1], name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			return err
		})
		if err != nil {
			return -1, err
		}
		typ, id, err := statMount(next, "", mount.byDev)
		if err == nil && id != mount.id {
			err = unix.EXDEV
		}
		if err != nil {
			closeFd(next)
			return -1, err
		}
		switch typ {
		case unix.S_IFLNK:
			if last && !follow && !mustDir {
				stack = append(stack, next)
				continue
			}
			hops++
			if hops > maxSymlinks {
				closeFd(next)
				return -1, unix.ELOOP
			}
			target, err := readlinkFd(next, "")
			closeFd(next)
			if err != nil {
				return -1, err
			}
			if target == "" {
				return -1, unix.ENOENT // as the kernel treats an empty link
			}
			if strings.HasPrefix(target, "/") {
				for len(stack) > 1 {
					pop()
				}
			}
			if rest != "" {
				target += "/"
			}
			rest = target + rest
		case unix.S_IFDIR:
			stack = append(stack, next)
		default:
			if !last || mustDir {
				closeFd(next)
				return -1, unix.ENOTDIR
			}
			stack = append(stack, next)
		}
	}
	if len(stack) == 1 {
		return dupFd(root)
	}
	fd = stack[len(stack)-1]
	stack = stack[:len(stack)-1]
	return fd, nil
}

// nextComponent splits the first path component off p, skipping slashes.
// It returns "" when p holds no more components.
func nextComponent(p string) (name, rest string) {
	p = strings.TrimLeft(p, "/")
	if i := strings.IndexByte(p, '/'); i >= 0 {
		return p[:i], p[i:]
	}
	return p, ""
}

// readlinkFd reads the symlink named by dirfd and name; name "" reads dirfd
// itself, which works on an O_PATH|O_NOFOLLOW descriptor of a link.
func readlinkFd(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		var n int
		err := retryEINTR(func() (err error) {
			n, err = unix.Readlinkat(dirfd, name, buf)
			return err
		})
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
		if size >= maxPath {
			return "", unix.ENAMETOOLONG
		}
	}
}

// closeFd closes a descriptor on a path where the close cannot lose data (an
// O_PATH or read-only descriptor, or a write already reported), so its error
// carries nothing to act on.
func closeFd(fd int) {
	_ = unix.Close(fd)
}
