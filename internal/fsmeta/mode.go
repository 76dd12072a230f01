package fsmeta

import (
	"fmt"
	"io/fs"
)

// Linux st_mode bits. They are spelled here rather than taken from
// golang.org/x/sys/unix so that the conversions build for wasip1 guests,
// whose ABI (docs/hostfs.md) carries Linux modes too.
const (
	S_IFMT   = 0o170000 // mask of the type bits
	S_IFSOCK = 0o140000
	S_IFLNK  = 0o120000
	S_IFREG  = 0o100000
	S_IFBLK  = 0o060000
	S_IFDIR  = 0o040000
	S_IFCHR  = 0o020000
	S_IFIFO  = 0o010000
	S_ISUID  = 0o4000
	S_ISGID  = 0o2000
	S_ISVTX  = 0o1000
	// PermBits are the permission and special bits of a mode: what chmod
	// sets.
	PermBits = 0o7777
)

// FileMode converts a Linux st_mode to an fs.FileMode: type, permission
// bits, setuid, setgid and sticky.
func FileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & S_IFMT {
	case S_IFDIR:
		mode |= fs.ModeDir
	case S_IFLNK:
		mode |= fs.ModeSymlink
	case S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case S_IFBLK:
		mode |= fs.ModeDevice
	case S_IFIFO:
		mode |= fs.ModeNamedPipe
	case S_IFSOCK:
		mode |= fs.ModeSocket
	}
	if m&S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// Perm converts the permission and special bits of an fs.FileMode to a
// Linux mode (within PermBits); the type is left out.
func Perm(m fs.FileMode) uint32 {
	p := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		p |= S_ISUID
	}
	if m&fs.ModeSetgid != 0 {
		p |= S_ISGID
	}
	if m&fs.ModeSticky != 0 {
		p |= S_ISVTX
	}
	return p
}

// NodeMode converts an fs.FileMode to the Linux mode mknod takes: Perm's
// bits and the type bits of a node mknod can make (a plain file when no
// type is set, a character or block device, a FIFO). ok is false for the
// types mknod cannot make.
func NodeMode(m fs.FileMode) (mode uint32, ok bool) {
	mode = Perm(m)
	switch m.Type() {
	case 0:
		mode |= S_IFREG
	case fs.ModeDevice | fs.ModeCharDevice:
		mode |= S_IFCHR
	case fs.ModeDevice:
		mode |= S_IFBLK
	case fs.ModeNamedPipe:
		mode |= S_IFIFO
	default:
		return 0, false
	}
	return mode, true
}

// TypeName names the file type of a Linux st_mode for messages, e.g.
// "a FIFO" in "x.wasm: not a regular file (a FIFO)".
func TypeName(mode uint32) string {
	switch mode & S_IFMT {
	case S_IFREG:
		return "a regular file"
	case S_IFDIR:
		return "a directory"
	case S_IFLNK:
		return "a symlink"
	case S_IFCHR:
		return "a character device"
	case S_IFBLK:
		return "a block device"
	case S_IFIFO:
		return "a FIFO"
	case S_IFSOCK:
		return "a socket"
	}
	return fmt.Sprintf("file type %#o", mode&S_IFMT)
}
