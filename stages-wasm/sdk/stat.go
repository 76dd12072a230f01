package sdk

import (
	"io/fs"
	"structs"
	"time"

	"github.com/kilnbuild/kiln/internal/fsmeta"
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

func (k *kilnStat) stat() Stat {
	return Stat{
		Dev:     k.Dev,
		Ino:     k.Ino,
		Mode:    fsmeta.FileMode(k.Mode),
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
