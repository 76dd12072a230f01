package hostfs

import (
	"context"
	"encoding/binary"
	"fmt"
	"path"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"golang.org/x/sys/unix"
)

// ModuleName is the import module of the host functions; docs/hostfs.md
// holds their ABI.
const ModuleName = "kiln_hostfs"

const (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

// hostFunc is one kiln_hostfs export. Each returns one i32 WASI errno.
type hostFunc struct {
	name   string
	fn     errnoFunc
	params []api.ValueType
	names  []string
}

// errnoFunc is the one shape of every kiln_hostfs function, as wazero's
// wasiFunc is of its wasi_snapshot_preview1 functions: it reads its
// parameters from c, writes any result into guest memory itself, and
// returns the WASI errno, which goModuleFunc stores as the call's one
// result. A function cannot return without an errno, nor store one twice.
type errnoFunc func(c *call) uint32

// goModuleFunc adapts f to wazero.
func (f errnoFunc) goModuleFunc() api.GoModuleFunc {
	return func(ctx context.Context, mod api.Module, stack []uint64) {
		errno := f(&call{ctx: ctx, mem: mod.Memory(), stack: stack})
		stack[0] = uint64(errno) // after f: the result overwrites the first parameter
	}
}

var hostFuncs = []hostFunc{
	{"chmod", hostChmod, []api.ValueType{i32, i32, i32}, []string{"path", "path_len", "mode"}},
	{"lchown", hostLchown, []api.ValueType{i32, i32, i32, i32}, []string{"path", "path_len", "uid", "gid"}},
	{"mknod", hostMknod, []api.ValueType{i32, i32, i32, i32, i32}, []string{"path", "path_len", "mode", "major", "minor"}},
	{"setxattr", hostSetxattr, []api.ValueType{i32, i32, i32, i32, i32, i32, i32},
		[]string{"path", "path_len", "name", "name_len", "value", "value_len", "flags"}},
	{"getxattr", hostGetxattr, []api.ValueType{i32, i32, i32, i32, i32, i32, i32},
		[]string{"path", "path_len", "name", "name_len", "buf", "buf_len", "result.size"}},
	{"listxattr", hostListxattr, []api.ValueType{i32, i32, i32, i32, i32},
		[]string{"path", "path_len", "buf", "buf_len", "result.size"}},
	{"removexattr", hostRemovexattr, []api.ValueType{i32, i32, i32, i32}, []string{"path", "path_len", "name", "name_len"}},
	{"utimens", hostUtimens, []api.ValueType{i32, i32, i64, i32, i64, i32},
		[]string{"path", "path_len", "atime_sec", "atime_nsec", "mtime_sec", "mtime_nsec"}},
	{"lstat", hostLstat, []api.ValueType{i32, i32, i32}, []string{"path", "path_len", "result.stat"}},
	{"eio_cause", hostEIOCause, []api.ValueType{i32}, []string{"result.errno"}},
	{"write_file", hostWriteFile, []api.ValueType{i32, i32, i32, i32, i32, i32, i32, i64, i32, i32},
		[]string{"path", "path_len", "data", "data_len", "mode", "uid", "gid", "mtime_sec", "mtime_nsec", "flags"}},
	{"stream_open", hostStreamOpen, []api.ValueType{i32, i32, i64, i64, i32, i32},
		[]string{"path", "path_len", "offset", "length", "kind", "result.handle"}},
	{"stream_read", hostStreamRead, []api.ValueType{i32, i32, i32, i32}, []string{"handle", "buf", "buf_len", "result.size"}},
	{"stream_error", hostStreamError, []api.ValueType{i32, i32, i32, i32}, []string{"handle", "buf", "buf_len", "result.size"}},
	{"stream_close", hostStreamClose, []api.ValueType{i32}, []string{"handle"}},
	{"tar_next", hostTarNext, []api.ValueType{i32, i32, i32, i32}, []string{"handle", "buf", "buf_len", "result.size"}},
	{"tar_write", hostTarWrite, []api.ValueType{i32, i32, i32, i32, i32, i32, i64, i32, i32, i32},
		[]string{"handle", "path", "path_len", "mode", "uid", "gid", "mtime_sec", "mtime_nsec", "flags", "result.md5"}},
}

// Instantiate adds the kiln_hostfs host module to r. Call it once per
// runtime; each call of its functions finds its mounts in the context given
// to the guest call (see [WithMounts]). Close the result, or the runtime, to
// remove it.
func Instantiate(ctx context.Context, r wazero.Runtime) (api.Closer, error) {
	b := r.NewHostModuleBuilder(ModuleName)
	for _, h := range hostFuncs {
		b.NewFunctionBuilder().
			WithGoModuleFunction(h.fn.goModuleFunc(), h.params, []api.ValueType{i32}).
			WithParameterNames(h.names...).
			WithResultNames("errno").
			Export(h.name)
	}
	m, err := b.Instantiate(ctx)
	if err != nil {
		return nil, fmt.Errorf("hostfs: instantiate %s: %w", ModuleName, err)
	}
	return m, nil
}

// call is the guest side of one host call: its mount table and memory.
type call struct {
	ctx   context.Context
	mem   api.Memory
	stack []uint64
}

// target resolves the guest path at stack[i], stack[i+1] to its mount and the
// path inside it. A path relative to no directory is relative to "/".
func (c *call) target(i int) (Mount, string, uint32) {
	table, ok := c.ctx.Value(mountsKey{}).(mountTable)
	if !ok {
		return Mount{}, "", wasiENOTCAPABLE
	}
	p, errno := c.str(i)
	if errno != 0 {
		return Mount{}, "", errno
	}
	if err := checkPath(p); err != nil {
		return Mount{}, "", wasiErrno(err)
	}
	m, rel, ok := table.find(path.Clean("/" + p))
	if !ok {
		return Mount{}, "", wasiENOENT
	}
	if strings.HasSuffix(p, "/") && rel != "." {
		rel += "/" // keep the demand for a directory
	}
	return m, rel, 0
}

// writable is target for a call that changes the tree.
func (c *call) writable(i int) (*Root, string, uint32) {
	m, rel, errno := c.target(i)
	if errno != 0 {
		return nil, "", errno
	}
	if m.ReadOnly {
		return nil, "", wasiEROFS
	}
	return m.Root, rel, 0
}

// bytes returns a view of the guest memory at stack[i], stack[i+1].
func (c *call) bytes(i int) ([]byte, uint32) {
	ptr, n := uint32(c.stack[i]), uint32(c.stack[i+1])
	b, ok := c.mem.Read(ptr, n)
	if !ok {
		return nil, wasiEFAULT
	}
	return b, 0
}

// str copies the guest string at stack[i], stack[i+1].
func (c *call) str(i int) (string, uint32) {
	if uint32(c.stack[i+1]) >= maxPath {
		return "", wasiENAMETOOLONG
	}
	b, errno := c.bytes(i)
	return string(b), errno
}

func (c *call) u32(i int) uint32 { return uint32(c.stack[i]) }

// id converts a guest uid or gid; 0xffffffff is -1, "leave unchanged".
func (c *call) id(i int) int { return int(int32(c.u32(i))) }

// writeU32 stores v, little-endian, at the guest pointer in stack[i].
func (c *call) writeU32(i int, v uint32) uint32 {
	if !c.mem.WriteUint32Le(c.u32(i), v) {
		return wasiEFAULT
	}
	return wasiESUCCESS
}

// size is the errno of a call that returns a size: the error's, or that of
// writing n at the guest pointer in stack[i].
func (c *call) size(i int, n int, err error) uint32 {
	if err != nil {
		return wasiErrno(err)
	}
	return c.writeU32(i, uint32(n))
}

func hostChmod(c *call) uint32 {
	root, rel, errno := c.writable(0)
	if errno != 0 {
		return errno
	}
	return wasiErrno(root.chmod(rel, c.u32(2)))
}

func hostLchown(c *call) uint32 {
	root, rel, errno := c.writable(0)
	if errno != 0 {
		return errno
	}
	return wasiErrno(root.lchown(rel, c.id(2), c.id(3)))
}

func hostMknod(c *call) uint32 {
	root, rel, errno := c.writable(0)
	if errno != 0 {
		return errno
	}
	// The kernel keeps 12 bits of major and 20 of minor and would silently
	// drop the rest, making a different device than the one asked for.
	major, minor := c.u32(3), c.u32(4)
	if major > 0xfff || minor > 0xfffff {
		return wasiEINVAL
	}
	return wasiErrno(root.mknod(rel, c.u32(2), unix.Mkdev(major, minor)))
}

func hostSetxattr(c *call) uint32 {
	root, rel, errno := c.writable(0)
	if errno != 0 {
		return errno
	}
	name, errno := c.str(2)
	if errno != 0 {
		return errno
	}
	value, errno := c.bytes(4)
	if errno != 0 {
		return errno
	}
	flags := int(c.u32(6))
	if flags&^(unix.XATTR_CREATE|unix.XATTR_REPLACE) != 0 {
		return wasiEINVAL
	}
	return wasiErrno(root.setxattr(rel, name, value, flags))
}

func hostGetxattr(c *call) uint32 {
	m, rel, errno := c.target(0)
	if errno != 0 {
		return errno
	}
	name, errno := c.str(2)
	if errno != 0 {
		return errno
	}
	// The value is read straight into the guest's buffer: Read returns a
	// view of guest memory, not a copy.
	buf, errno := c.bytes(4)
	if errno != 0 {
		return errno
	}
	n, err := m.Root.getxattr(rel, name, buf)
	return c.size(6, n, err)
}

func hostListxattr(c *call) uint32 {
	m, rel, errno := c.target(0)
	if errno != 0 {
		return errno
	}
	buf, errno := c.bytes(2)
	if errno != 0 {
		return errno
	}
	n, err := m.Root.listxattr(rel, buf)
	return c.size(4, n, err)
}

func hostRemovexattr(c *call) uint32 {
	root, rel, errno := c.writable(0)
	if errno != 0 {
		return errno
	}
	name, errno := c.str(2)
	if errno != 0 {
		return errno
	}
	return wasiErrno(root.removexattr(rel, name))
}

func hostUtimens(c *call) uint32 {
	root, rel, errno := c.writable(0)
	if errno != 0 {
		return errno
	}
	var ts [2]unix.Timespec
	for i, at := range [2]int{2, 4} {
		sec, nsec := int64(c.stack[at]), int64(c.u32(at+1))
		// UTIME_NOW would stamp the host's clock into the image.
		if nsec != unix.UTIME_OMIT && nsec >= 1e9 {
			return wasiEINVAL
		}
		ts[i] = unix.Timespec{Sec: sec, Nsec: nsec}
	}
	return wasiErrno(root.utimens(rel, ts, false))
}

// statSize is the size of struct kiln_stat in docs/hostfs.md.
const statSize = 80

func hostLstat(c *call) uint32 {
	m, rel, errno := c.target(0)
	if errno != 0 {
		return errno
	}
	st, err := m.Root.lstat(rel)
	if err != nil {
		return wasiErrno(err)
	}
	m.Root.present(&st, devFor(m.GuestPath))
	var b [statSize]byte
	le := binary.LittleEndian
	le.PutUint64(b[0:], st.Dev)
	le.PutUint64(b[8:], st.Ino)
	le.PutUint32(b[16:], st.Mode)
	le.PutUint32(b[20:], uint32(st.Nlink))
	le.PutUint32(b[24:], st.Uid)
	le.PutUint32(b[28:], st.Gid)
	le.PutUint64(b[32:], st.Rdev)
	le.PutUint64(b[40:], uint64(st.Size))
	le.PutUint64(b[48:], uint64(st.Atim.Sec))
	le.PutUint64(b[56:], uint64(st.Atim.Nsec))
	le.PutUint64(b[64:], uint64(st.Mtim.Sec))
	le.PutUint64(b[72:], uint64(st.Mtim.Nsec))
	if !c.mem.Write(c.u32(2), b[:]) {
		return wasiEFAULT
	}
	return wasiESUCCESS
}

// hostEIOCause writes, as a little-endian u32, the WASI errno of the host
// error behind the latest EIO this stage's WASI filesystem returned (0 if
// none did): WASI cannot carry ENOSPC and friends through wazero, see
// Root.sysErrno.
func hostEIOCause(c *call) uint32 {
	table, ok := c.ctx.Value(mountsKey{}).(mountTable)
	if !ok {
		return wasiENOTCAPABLE
	}
	return c.writeU32(0, table.eioCause())
}
