package sdk

import (
	"io/fs"
	"structs"
	"time"
)

// Stat is what [Lstat] reports: the Linux stat of a path in the tree, with the
// permission bits, owner and device numbers WASI's filestat leaves out.
type Stat struct {
	Dev     uint64
	Ino     uint64
	Mode    fs.FileMode // type, permissions, setuid, setgid and sticky
	RawMode uint32      // st_mode as Linux has it, type bits (S_IFMT) included
	Nlink   uint32
	Uid     uint32
	Gid     uint32
	Rdev    uint64 // device number of a device node, Linux encoding
	Size    int64
	Atime   time.Time
	Mtime   time.Time
}

// Major is the major number of a device node's Rdev.
func (s Stat) Major() uint32 {
	return uint32((s.Rdev>>8)&0xfff) | uint32((s.Rdev>>32)&^0xfff)
}

// Minor is the minor number of a device node's Rdev.
func (s Stat) Minor() uint32 {
	return uint32(s.Rdev&0xff) | uint32((s.Rdev>>12)&^0xff)
}

// kilnStat is struct kiln_stat of the kiln_hostfs ABI (docs/hostfs.md): 80
// bytes, little-endian, C layout, which HostLayout guarantees across the
// wasmimport boundary.
type kilnStat struct {
	_         structs.HostLayout
	Dev       uint64
	Ino       uint64
	Mode      uint32
	Nlink     uint32
	Uid       uint32
	Gid       uint32
	Rdev      uint64
	Size      int64
	AtimeSec  int64
	AtimeNsec int64
	MtimeSec  int64
	MtimeNsec int64
}

// Linux st_mode type bits, which the ABI uses in kiln_stat.mode and mknod.
const (
	sIFMT   = 0o170000
	sIFSOCK = 0o140000
	sIFLNK  = 0o120000
	sIFREG  = 0o100000
	sIFBLK  = 0o060000
	sIFDIR  = 0o040000
	sIFCHR  = 0o020000
	sIFIFO  = 0o010000
	sISUID  = 0o4000
	sISGID  = 0o2000
	sISVTX  = 0o1000
)

func (k *kilnStat) stat() Stat {
	return Stat{
		Dev:     k.Dev,
		Ino:     k.Ino,
		Mode:    fileMode(k.Mode),
		RawMode: k.Mode,
		Nlink:   k.Nlink,
		Uid:     k.Uid,
		Gid:     k.Gid,
		Rdev:    k.Rdev,
		Size:    k.Size,
		Atime:   time.Unix(k.AtimeSec, k.AtimeNsec),
		Mtime:   time.Unix(k.MtimeSec, k.MtimeNsec),
	}
}

// fileMode converts a Linux st_mode to fs.FileMode.
func fileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & sIFMT {
	case sIFDIR:
		mode |= fs.ModeDir
	case sIFLNK:
		mode |= fs.ModeSymlink
	case sIFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case sIFBLK:
		mode |= fs.ModeDevice
	case sIFIFO:
		mode |= fs.ModeNamedPipe
	case sIFSOCK:
		mode |= fs.ModeSocket
	}
	if m&sISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&sISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&sISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// linuxMode converts an fs.FileMode to a Linux mode: the type bits for the
// node types mknod can make (a plain file when none is set), the permission
// bits, setuid, setgid and sticky. ok is false for types mknod cannot make.
func linuxMode(m fs.FileMode) (mode uint32, ok bool) {
	mode = uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= sISUID
	}
	if m&fs.ModeSetgid != 0 {
		mode |= sISGID
	}
	if m&fs.ModeSticky != 0 {
		mode |= sISVTX
	}
	switch m.Type() {
	case 0:
		mode |= sIFREG
	case fs.ModeDevice | fs.ModeCharDevice:
		mode |= sIFCHR
	case fs.ModeDevice:
		mode |= sIFBLK
	case fs.ModeNamedPipe:
		mode |= sIFIFO
	default:
		return 0, false
	}
	return mode, true
}
