package hostfs

import (
	"context"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/store/cowtree"
)

// # Copy-up and the journal
//
// A root opened [WithTreeState] belongs to a store object whose tree may
// share inodes with committed objects (a hardlink tree, package cowtree).
// Before any operation that could change a shared file or its metadata
// (opening it for writing or truncation, chmod, chown, utimens, setxattr,
// removexattr, and link, which would give the shared inode a new name) the
// file is copied up: a private copy with the same contents and metadata is
// renamed over the name, and the operation acts on the copy. A file with
// several names in the tree (a hardlink of the image) is copied up with all
// of them onto one new inode, so they stay one file. Rename and unlink
// change no inode's content or metadata that a treesum covers, so they need
// no copy-up. Whether a file is shared is decided by its inode, not its
// name, so renaming a shared file does not make it writable in place.
//
// Every change is first recorded in the state's journal, the entry alone
// ("e": content or metadata) or its whole subtree ("s": the name now holds
// something else, or nothing), so that a commit re-hashes only those.

func (r *Root) cowOn() bool { return r.cow != nil }

// relOf returns the tree-relative path of base in the resolved directory
// dirfd; ok is false when the kernel's name for dirfd is not below the
// root's (see inRootPath).
func (r *Root) relOf(dirfd int, base string) (string, bool) {
	dir, ok := r.inRootPath(dirfd)
	if !ok {
		return "", false
	}
	return strings.TrimPrefix(path.Join(dir, base), "/"), true
}

// touchAt records that base in dirfd is about to change: only the entry
// itself, or (subtree) whatever the name holds.
func (r *Root) touchAt(dirfd int, base string, subtree bool) error {
	if !r.cowOn() {
		return nil
	}
	rel, ok := r.relOf(dirfd, base)
	if !ok {
		// Where the change happens is unknown: the whole tree is then
		// re-hashed at commit.
		return r.cow.Touch("", true)
	}
	return r.cow.Touch(rel, subtree)
}

// changeAt prepares a change of the entry base in dirfd itself (chown,
// utimens, xattrs, link): it is journaled and, if shared, copied up.
func (r *Root) changeAt(dirfd int, base string) error {
	if !r.cowOn() {
		return nil
	}
	if base == "" {
		return r.cow.Touch("", false) // the root, a directory: never shared
	}
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	rel, ok := r.relOf(dirfd, base)
	if !ok {
		rel = ""
	}
	if err := r.touchInode(rel, ok, &st); err != nil {
		return err
	}
	return r.copyUpAt(dirfd, base)
}

// touchInode journals a change of the inode st, reached at rel. A file
// with other names changes at all of them, and only a walk would find
// them: the journal then names the whole tree, which costs a full hash
// at commit, for what image-internal hardlinks are, rare.
func (r *Root) touchInode(rel string, ok bool, st *unix.Stat_t) error {
	if !ok || (st.Mode&unix.S_IFMT == unix.S_IFREG && st.Nlink > 1) {
		if shared, flags := r.cow.Shared(st); ok && shared && flags&cowtree.Group == 0 {
			// Its other names are the base's: the copy-up leaves it one.
			return r.cow.Touch(rel, false)
		}
		return r.cow.Touch("", true)
	}
	return r.cow.Touch(rel, false)
}

func (r *Root) copyUpAt(dirfd int, base string) error {
	r.cow.Lock()
	defer r.cow.Unlock()
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	shared, flags := r.cow.Shared(&st)
	if !shared {
		return nil
	}
	root, err := r.acquire()
	if err != nil {
		return err
	}
	defer r.mu.RUnlock()
	// Guest operations carry no context; a copy-up is bounded by the file.
	_, err = cowtree.CopyUpGroup(context.Background(), root, dirfd, base, &st, flags)
	return err
}

// changePath is changeAt for a guest path that names the entry itself.
func (r *Root) changePath(p string) error {
	if !r.cowOn() {
		return nil
	}
	dirfd, base, err := r.parent(p)
	if err != nil {
		return err
	}
	defer closeFd(dirfd)
	return r.changeAt(dirfd, base)
}

// changeFd prepares a change of the file a resolved descriptor fd holds
// (O_PATH or open; a followed symlink, an open file): it is journaled and,
// if shared, copied up, in which case the old descriptor is closed and one
// of the copy (O_PATH) returned instead.
func (r *Root) changeFd(fd int) (int, error) {
	if !r.cowOn() {
		return fd, nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fd, err
	}
	rel, ok := r.inRootPath(fd)
	if !ok {
		if shared, _ := r.cow.Shared(&st); shared {
			// No name to copy up at: an open file whose name was removed.
			// Refuse rather than change the shared inode.
			return fd, unix.EROFS
		}
		return fd, r.cow.Touch("", true)
	}
	rel = strings.TrimPrefix(rel, "/")
	if err := r.touchInode(rel, true, &st); err != nil {
		return fd, err
	}
	if shared, _ := r.cow.Shared(&st); !shared {
		return fd, nil
	}
	dirfd, base, err := r.parent(rel)
	if err != nil {
		return fd, err
	}
	defer closeFd(dirfd)
	if err := r.copyUpAt(dirfd, base); err != nil {
		return fd, err
	}
	nfd, err := unix.Openat(dirfd, base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fd, err
	}
	closeFd(fd)
	return nfd, nil
}

// writes reports whether open flags may change a file.
func writes(flags int) bool {
	return flags&unix.O_ACCMODE != unix.O_RDONLY || flags&unix.O_TRUNC != 0
}

// changeOpen is changeFd for a lookup about to be reopened with flags.
func (r *Root) changeOpen(fd, flags int) (int, error) {
	if !writes(flags) {
		return fd, nil
	}
	nfd, err := r.changeFd(fd)
	if err != nil {
		closeFd(nfd)
		return -1, err
	}
	return nfd, nil
}

// changeOpenFile prepares a change of an open file's metadata through its
// descriptor (futimens): a shared file is copied up and the descriptor
// replaced by one of the copy, opened the same way.
func (r *Root) changeOpenFile(f *file) error {
	if !r.cowOn() {
		return nil
	}
	dup, err := dupFd(f.fd)
	if err != nil {
		return err
	}
	nfd, err := r.changeFd(dup)
	if err != nil {
		closeFd(nfd)
		return err
	}
	if nfd == dup {
		closeFd(dup)
		return nil
	}
	defer closeFd(nfd)
	reopened, err := reopen(mustDup(nfd), f.flags&^(unix.O_CREAT|unix.O_EXCL|unix.O_TRUNC))
	if err != nil {
		return err
	}
	closeFd(f.fd)
	f.fd, f.statDone = reopened, false
	return nil
}

// mustDup duplicates fd for reopen, which closes what it is given; a
// failed dup leaves -1, on which reopen fails with EBADF.
func mustDup(fd int) int {
	d, err := dupFd(fd)
	if err != nil {
		return -1
	}
	return d
}
