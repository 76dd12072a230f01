package hostfs

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/store/cowtree"
)

// Resolver names the strategy a [Root] uses to resolve guest paths.
type Resolver int

const (
	// ResolveAuto uses openat2 when the kernel has it (Linux 5.6+), and the
	// userspace walk otherwise.
	ResolveAuto Resolver = iota
	// ResolveOpenat2 uses openat2(RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS).
	// OpenRoot fails (wrapping ENOSYS) on a kernel without it.
	ResolveOpenat2
	// ResolveUserspace walks the path one component at a time with
	// O_PATH|O_NOFOLLOW and follows symlinks itself, at most 40 of them.
	ResolveUserspace
)

func (r Resolver) String() string {
	switch r {
	case ResolveAuto:
		return "auto"
	case ResolveOpenat2:
		return "openat2"
	case ResolveUserspace:
		return "userspace"
	}
	return "Resolver(" + strconv.Itoa(int(r)) + ")"
}

type options struct {
	resolver Resolver
	epoch    int64
	state    string
}

// Option configures [OpenRoot].
type Option func(*options) error

// WithResolver picks how paths are resolved; the default is ResolveAuto.
func WithResolver(r Resolver) Option {
	return func(o *options) error {
		if r < ResolveAuto || r > ResolveUserspace {
			return fmt.Errorf("unknown resolver %v", r)
		}
		o.resolver = r
		return nil
	}
}

// WithEpoch sets the clock the root's files are stamped with, in seconds
// since 1970 (SOURCE_DATE_EPOCH): a file, directory, symlink or node created
// through the root gets it as atime and mtime, and every later change of its
// data or of a directory's entries sets its mtime to it, as if the clock had
// stopped at the epoch. The default is 0, kiln's default epoch.
func WithEpoch(sec int64) Option {
	return func(o *options) error {
		o.epoch = sec
		return nil
	}
}

// WithTreeState opens the tree as a store object's, with state the
// directory the store made for it (store.HostfsWriteContext, package
// cowtree): files the tree shares with committed objects are copied up
// before they change, and every change is journaled (copyup.go).
func WithTreeState(state string) Option {
	return func(o *options) error {
		o.state = state
		return nil
	}
}

// maxSymlinks is the hop limit of the userspace walk, the kernel's own
// (MAXSYMLINKS), so both resolvers fail the same paths with ELOOP.
const maxSymlinks = 40

// A Root is one directory tree, held open as an O_PATH|O_DIRECTORY descriptor.
// Every path given to its methods is resolved beneath it. A Root is safe for
// concurrent use; Close it once nothing uses it any more.
type Root struct {
	dir      string
	resolver Resolver
	mount    mountKey // the mount the tree is on; resolution never leaves it
	epoch    unix.Timespec

	// inodes numbers the files the guest sees, so that no host inode
	// number reaches it (see inodes.go).
	inodes inodeTable
	// lastEIO is the host error behind the latest EIO the filesystem gave
	// the guest (see errno.go).
	lastEIO atomic.Pointer[eioRecord]

	// cow is the tree's copy-up state; nil for a tree of its own.
	cow *cowtree.State

	// mu guards fd against Close while an operation is using it: operations
	// hold a read lock, so Close waits for them and none sees a reused number.
	mu     sync.RWMutex
	fd     int
	closed bool
}

// OpenRoot opens dir as a confinement root. The host path dir itself is
// trusted and may contain symlinks; only guest paths are confined.
func OpenRoot(dir string, opts ...Option) (*Root, error) {
	var o options
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("hostfs: open root %q: %w", dir, err)
		}
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("hostfs: open root %q: %w", dir, err)
	}
	r := &Root{dir: dir, fd: fd, resolver: o.resolver, epoch: unix.Timespec{Sec: o.epoch}}
	if err := r.probe(); err != nil {
		closeFd(fd)
		return nil, fmt.Errorf("hostfs: open root %q: %w", dir, err)
	}
	// The tree itself is the first inode every stage sees.
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		closeFd(fd)
		return nil, fmt.Errorf("hostfs: open root %q: %w", dir, err)
	}
	r.inodes.number(st.Dev, st.Ino)
	if o.state != "" {
		if r.cow, err = cowtree.Open(o.state); err != nil {
			closeFd(fd)
			return nil, fmt.Errorf("hostfs: open root %q: %w", dir, err)
		}
	}
	return r, nil
}

// probe settles ResolveAuto and checks what the resolvers rely on.
func (r *Root) probe() error {
	var stx unix.Statx_t
	if err := unix.Statx(r.fd, "", unix.AT_EMPTY_PATH, unix.STATX_TYPE|unix.STATX_MNT_ID, &stx); err != nil {
		return fmt.Errorf("statx: %w", err)
	}
	// Before Linux 5.8 statx has no mount ID: tell mounts apart by device,
	// which catches procfs, sysfs and other filesystems, but not a bind
	// mount of the tree's own filesystem.
	r.mount.byDev = stx.Mask&unix.STATX_MNT_ID == 0
	_, r.mount.id, _ = mountOfStatx(&stx, r.mount.byDev)
	if r.resolver != ResolveUserspace {
		fd, err := openat2(r.fd, ".", unix.O_PATH, 0)
		switch {
		case err == nil:
			closeFd(fd)
			r.resolver = ResolveOpenat2
		case r.resolver == ResolveAuto && (errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM)):
			// EPERM: a seccomp filter that predates openat2 may deny it.
			r.resolver = ResolveUserspace
		default:
			return fmt.Errorf("openat2: %w", err)
		}
	}
	// Opening a file is done by reopening a checked O_PATH descriptor through
	// its /proc magic link (see reopen); without procfs nothing could be read.
	var viaProc, direct unix.Stat_t
	if err := unix.Stat(procFd(r.fd), &viaProc); err != nil {
		return fmt.Errorf("hostfs needs /proc mounted: %w", err)
	}
	if err := unix.Fstat(r.fd, &direct); err != nil {
		return err
	}
	if viaProc.Dev != direct.Dev || viaProc.Ino != direct.Ino {
		return errors.New("hostfs needs /proc to be this process's procfs")
	}
	return nil
}

// Close releases the root's descriptor, after any operation in flight.
// Later operations fail with EBADF.
func (r *Root) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	if r.cow != nil {
		_ = r.cow.Close() // appends are not buffered: nothing to lose
	}
	if err := unix.Close(r.fd); err != nil {
		return fmt.Errorf("hostfs: close root %q: %w", r.dir, err)
	}
	return nil
}

// Path returns the host directory the root was opened from, for messages.
func (r *Root) Path() string { return r.dir }

// Resolver reports the resolver in use, never ResolveAuto.
func (r *Root) Resolver() Resolver { return r.resolver }

// acquire pins the root descriptor for one operation; release with r.mu.RUnlock.
func (r *Root) acquire() (int, error) {
	r.mu.RLock()
	if r.closed {
		r.mu.RUnlock()
		return -1, unix.EBADF
	}
	return r.fd, nil
}

// maxPath bounds guest paths like the kernel's PATH_MAX (4096 with the NUL).
const maxPath = unix.PathMax

// checkPath refuses what no kernel call could name: the NUL would cut the
// path short in C, and the kernel refuses PATH_MAX and more anyway, but only
// after we would have split and walked it.
func checkPath(p string) error {
	if strings.IndexByte(p, 0) >= 0 {
		return unix.EINVAL
	}
	if len(p) >= maxPath {
		return unix.ENAMETOOLONG
	}
	return nil
}

// clean turns a guest path ("/a/b", "a/b/", ".", "") into a clean relative
// path ("a/b", "." for the root) and reports a trailing slash, which demands
// a directory. ".." is removed lexically, and at the root it stays at the
// root; wazero hands paths already cleaned this way.
func clean(p string) (rel string, dirOnly bool) {
	dirOnly = strings.HasSuffix(p, "/") && strings.Trim(p, "/") != ""
	c := path.Clean("/" + p)
	if c == "/" {
		return ".", dirOnly
	}
	return c[1:], dirOnly
}

// lookup resolves guest path p to an O_PATH descriptor of the file itself,
// following a final symlink only when follow is set (so a symlink yields a
// descriptor of the link). The caller closes the descriptor.
func (r *Root) lookup(p string, follow bool) (int, error) {
	if err := checkPath(p); err != nil {
		return -1, err
	}
	rel, dirOnly := clean(p)
	root, err := r.acquire()
	if err != nil {
		return -1, err
	}
	defer r.mu.RUnlock()
	return r.resolve(root, rel, follow || dirOnly, dirOnly)
}

// resolve dispatches to the root's resolver. rel may hold "..", "." and
// repeated slashes (symlink targets do); all of them stay beneath root. With
// dir set, anything but a directory fails with ENOTDIR.
func (r *Root) resolve(root int, rel string, follow, dir bool) (int, error) {
	if r.resolver == ResolveOpenat2 {
		return resolveOpenat2(root, rel, follow, dir)
	}
	return resolveWalk(root, r.mount, rel, follow, dir)
}

// parent resolves the directory holding guest path p (following symlinks)
// and returns it as an O_PATH descriptor with the base name to act on. For
// the root itself base is "", so callers can refuse or special-case it: base
// is never "." or "..", which would name the directory or its parent.
func (r *Root) parent(p string) (dirfd int, base string, err error) {
	if err := checkPath(p); err != nil {
		return -1, "", err
	}
	rel, _ := clean(p)
	root, err := r.acquire()
	if err != nil {
		return -1, "", err
	}
	defer r.mu.RUnlock()
	if rel == "." {
		fd, err := dupFd(root)
		return fd, "", err
	}
	dir, base := path.Split(rel)
	if dir == "" {
		dir = "."
	}
	fd, err := r.resolve(root, dir, true, true)
	if err != nil {
		return -1, "", err
	}
	return fd, base, nil
}

// dupFd returns a new close-on-exec descriptor of the same open file, so the
// root's own descriptor is never handed out to be closed.
func dupFd(fd int) (int, error) {
	return unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
}

// noEmptyPathUtimens is set once utimensat has refused AT_EMPTY_PATH
// (kernels before 5.8): utimensFd then goes through procfs.
var noEmptyPathUtimens atomic.Bool

// utimensFd sets the times of the file fd holds, an O_PATH descriptor
// included, which futimens refuses (EBADF). AT_EMPTY_PATH on the
// descriptor itself costs half what the procfs magic link does, whose
// resolution walks /proc for every file a stage creates (the parent's
// epoch stamp).
func utimensFd(fd int, ts []unix.Timespec) error {
	if !noEmptyPathUtimens.Load() {
		err := unix.UtimesNanoAt(fd, "", ts, unix.AT_EMPTY_PATH)
		if err != unix.EINVAL {
			return err
		}
		noEmptyPathUtimens.Store(true)
	}
	return unix.UtimesNanoAt(unix.AT_FDCWD, procFd(fd), ts, 0)
}

// procFd names descriptor fd of this process in procfs. Opening it (a "magic
// link") reaches the very file the descriptor holds, without a path lookup
// in the tree that a guest could race.
func procFd(fd int) string {
	return "/proc/self/fd/" + strconv.Itoa(fd)
}

// retryEINTR repeats f while it is interrupted by a signal; Go's runtime
// sends SIGURG for preemption, and slow filesystems let it land mid-call.
func retryEINTR(f func() error) error {
	for {
		if err := f(); err != unix.EINTR {
			return err
		}
	}
}

// mountKey identifies a mount: by the mount ID statx reports (Linux 5.8+),
// or by device number where it reports none.
type mountKey struct {
	byDev bool
	id    uint64
}

// A mount inside the tree is not part of it: a procfs there would show the
// kiln process itself (/proc/self/environ), a bind mount a host directory.
// Both resolvers refuse to enter one (EXDEV), like RESOLVE_NO_XDEV, and so do
// the operations on a final name, through sameMount.

// statMount returns the type bits and mount of name in dirfd ("" for dirfd
// itself), without following a symlink or triggering an automount.
func statMount(dirfd int, name string, byDev bool) (typ uint32, id uint64, err error) {
	flags := unix.AT_SYMLINK_NOFOLLOW | unix.AT_NO_AUTOMOUNT
	if name == "" {
		flags |= unix.AT_EMPTY_PATH
	}
	var stx unix.Statx_t
	if err := unix.Statx(dirfd, name, flags, unix.STATX_TYPE|unix.STATX_MNT_ID, &stx); err != nil {
		return 0, 0, err
	}
	return mountOfStatx(&stx, byDev)
}

func mountOfStatx(stx *unix.Statx_t, byDev bool) (typ uint32, id uint64, err error) {
	typ = uint32(stx.Mode) & unix.S_IFMT
	if byDev {
		return typ, unix.Mkdev(stx.Dev_major, stx.Dev_minor), nil
	}
	return typ, stx.Mnt_id, nil
}

// sameMount fails with EXDEV if base in dirfd is the root of another mount.
// Only the host can mount, so no guest can race this check. A missing name
// passes: the operation itself reports it.
func (r *Root) sameMount(dirfd int, base string) error {
	_, id, err := statMount(dirfd, base, r.mount.byDev)
	if err == unix.ENOENT {
		return nil
	}
	if err != nil {
		return err
	}
	if id != r.mount.id {
		return unix.EXDEV
	}
	return nil
}
