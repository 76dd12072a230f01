package hostfs

import (
	"hash/fnv"
	"path"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// What a stage sees of its files must not depend on the host it runs on:
// not the host's clock, device numbers, inode numbers or directory order.
// This file holds the pieces of that (docs/hostfs.md, "Determinism"):
//
//   - every node the guest creates gets the root's epoch as atime and mtime,
//     and every change of a file's data or a directory's entries sets the
//     mtime to it again (stamp*). ctime cannot be set, so the guest is shown
//     the mtime as ctime; atime is shown as min(atime, mtime), because the
//     kernel moves atime to the host's clock on reads and symlink lookups
//     (relatime updates an atime that is not later than the mtime, which an
//     epoch stamp never is).
//   - st_dev is a hash of the mount's guest path and inode numbers are
//     counted per root in the order the guest first meets each host inode
//     (inodeTable), so hard links share a number and a renamed file keeps
//     its own.
//   - directories show nlink 1 and size 0, which differ between host
//     filesystems (ext4 counts subdirectories and 4 KiB blocks, btrfs
//     neither), and readdir is sorted by name bytes (file.go).

// hostInode names an inode on the host.
type hostInode struct{ dev, ino uint64 }

// inodeTable hands out the guest's inode numbers. The numbers are 1, 2, 3,
// ... in first-seen order, which the guest's own sequence of calls fixes
// (readdir numbers a directory's entries in name order), so the same stage
// over the same tree sees the same numbers on every host. A host inode that
// dies (its last name removed) is forgotten, so that a host reusing its
// number for a new file (ext4 does at once, tmpfs does not) cannot show the
// guest an old number.
type inodeTable struct {
	mu   sync.Mutex
	next uint64
	m    map[hostInode]uint64
}

func (t *inodeTable) number(dev, ino uint64) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := hostInode{dev, ino}
	if n, ok := t.m[k]; ok {
		return n
	}
	if t.m == nil {
		t.m = map[hostInode]uint64{}
	}
	t.next++
	t.m[k] = t.next
	return t.next
}

func (t *inodeTable) forget(dev, ino uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, hostInode{dev, ino})
}

// forgetIfLast is called with the stat of a name just before it is
// removed or replaced: once that removal succeeds, an inode whose last link
// it was is gone.
func (r *Root) forgetIfLast(st *unix.Stat_t) {
	if st.Mode&unix.S_IFMT == unix.S_IFDIR || st.Nlink <= 1 {
		r.inodes.forget(st.Dev, st.Ino)
	}
}

// devFor is the st_dev the guest sees for a mount at guestPath: FNV-1a 64 of
// the clean path, so two mounts of one stage never share a device (which
// would make their inode numbers, counted per root, look like the same
// files) and no host device number shows.
func devFor(guestPath string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(path.Clean("/" + guestPath)))
	return h.Sum64()
}

// present turns a host stat into what the guest of a mount with device dev
// sees; see the top of this file.
func (r *Root) present(st *unix.Stat_t, dev uint64) {
	r.presentIno(st, dev, r.inodes.number(st.Dev, st.Ino))
}

// presentIno is present with the guest inode number already known.
func (r *Root) presentIno(st *unix.Stat_t, dev, ino uint64) {
	st.Dev, st.Ino = dev, ino
	if st.Atim.Nano() > st.Mtim.Nano() {
		st.Atim = st.Mtim
	}
	st.Ctim = st.Mtim
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		st.Nlink, st.Size = 1, 0
	}
}

// The stamps below are best effort: the operation they follow has already
// happened, and failing it afterwards would make a guest retry a write that
// was done. They can fail only where kiln lacks CAP_FOWNER for a node the
// guest chowned away, and then the host clock shows.

var timeOmit = unix.Timespec{Nsec: unix.UTIME_OMIT}

// stampCreated gives the node base just made in dirfd the epoch as atime and
// mtime, and its directory the epoch as mtime.
func (r *Root) stampCreated(dirfd int, base string) {
	ts := [2]unix.Timespec{r.epoch, r.epoch}
	_ = unix.UtimesNanoAt(dirfd, base, ts[:], unix.AT_SYMLINK_NOFOLLOW)
	r.stampDir(dirfd)
}

// stampDir sets the mtime of the O_PATH directory dirfd, whose entries just
// changed, to the epoch. utimensat refuses O_PATH descriptors; the magic
// link names the same directory.
func (r *Root) stampDir(dirfd int) {
	ts := [2]unix.Timespec{timeOmit, r.epoch}
	_ = utimensFd(dirfd, ts[:])
}

// stampFd sets the mtime of an open (not O_PATH) file, whose data just
// changed, to the epoch; with atime set too for a file just created.
func (r *Root) stampFd(fd int, atime bool) {
	ts := [2]unix.Timespec{timeOmit, r.epoch}
	if atime {
		ts[0] = r.epoch
	}
	_ = futimens(fd, &ts)
}

// futimens is utimensat(fd, NULL, ts, 0), which x/sys/unix does not offer:
// it sets the times of the open file itself, without a path lookup.
func futimens(fd int, ts *[2]unix.Timespec) error {
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(ts)), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}
