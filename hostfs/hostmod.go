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
	fn     api.GoModuleFunc
	params []api.ValueType
	names  []string
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
}

// Instantiate adds the kiln_hostfs host module to r. Call it once per
// runtime; each call of its functions finds its mounts in the context given
// to the guest call (see [WithMounts]). Close the result, or the runtime, to
// remove it.
func Instantiate(ctx context.Context, r wazero.Runtime) (api.Closer, error) {
	b := r.NewHostModuleBuilder(ModuleName)
	for _, h := range hostFuncs {
		b.NewFunctionBuilder().
			WithGoModuleFunction(h.fn, h.params, []api.ValueType{i32}).
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

func newCall(ctx context.Context, mod api.Module, stack []uint64) *call {
	return &call{ctx: ctx, mem: mod.Memory(), stack: stack}
}

// ret stores the errno result.
func (c *call) ret(errno uint32) { c.stack[0] = uint64(errno) }

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

func hostChmod(ctx context.Context, mod api.Module, stack []uint64) {
	c := newCall(ctx, mod, stack)
	root, rel, errno := c.writable(0)
	if errno != 0 {
		c.ret(errno)
		return
	}
	c.ret(wasiErrno(root.chmod(rel, c.u32(2))))
}

func hostLchown(ctx context.Context, mod api.Module, stack []uint64) {
	c := newCall(ctx, mod, stack)
	root, rel, errno := c.writable(0)
	if errno != 0 {
		c.ret(errno)
		return
	}
	c.ret(wasiErrno(root.lchown(rel, c.id(2), c.id(3))))
}

func hostMknod(ctx context.Context, mod api.Module, stack []uint64) {
	c := newCall(ctx, mod, stack)
	root, rel, errno := c.writable(0)
	if errno != 0 {
		c.ret(errno)
		return
	}
	// The kernel keeps 12 bits of major and 20 of minor and would silently
	// drop the rest, making a different device than the one asked for.
	major, minor := c.u32(3), c.u32(4)
	if major > 0xfff || minor > 0xfffff {
		c.ret(wasiEINVAL)
		return
	}
	dev := unix.Mkdev(major, minor)
	c.ret(wasiErrno(root.mknod(rel, c.u32(2), dev)))
}

func hostSetxattr(ctx context.Context, mod api.Module, stack []uint64) {
	c := newCall(ctx, mod, stack)
	root, rel, errno := c.writable(0)
	if errno != 0 {
		c.ret(errno)
		return
	}
	name, errno := c.str(2)
	if errno != 0 {
		c.ret(errno)
		return
	}
	value, errno := c.bytes(4)
	if errno != 0 {
		c.ret(errno)
		return
	}
	flags := int(c.u32(6))
	if flags&^(unix.XATTR_CREATE|unix.XATTR_REPLACE) != 0 {
		c.ret(wasiEINVAL)
		return
	}
	c.ret(wasiErrno(root.setxattr(rel, name, value, flags)))
}

func hostGetxattr(ctx context.Context, mod api.Module, stack []uint64) {
	c := newCall(ctx, mod, stack)
	m, rel, errno := c.target(0)
	if errno != 0 {
		c.ret(errno)
		return
	}
	name, errno := c.str(2)
	if errno != 0 {
		c.ret(errno)
		return
	}
	// The value is read straight into the guest's buffer: Read returns a
	// view of guest memory, not a copy.
	buf, errno := c.bytes(4)
	if errno != 0 {
		c.ret(errno)
		return
	}
	n, err := m.Root.getxattr(rel, name, buf)
	c.retSize(6, n, err)
}

func hostListxattr(ctx context.Context, mod api.Module, stack []uint64) {
	c := newCall(ctx, mod, stack)
	m, rel, errno := c.target(0)
	if errno != 0 {
		c.ret(errno)
		return
	}
	buf, errno := c.bytes(2)
	if errno != 0 {
		c.ret(errno)
		return
	}
	n, err := m.Root.listxattr(rel, buf)
	c.retSize(4, n, err)
}

// retSize writes a size result at the pointer in stack[i] and the errno.
func (c *call) retSize(i int, n int, err error) {
	if err != nil {
		c.ret(wasiErrno(err))
		return
	}
	if !c.mem.WriteUint32Le(c.u32(i), uint32(n)) {
		c.ret(wasiEFAULT)
		return
	}
	c.ret(wasiESUCCESS)
}

func hostRemovexattr(ctx context.Context, mod api.Module, stack []uint64) {
	c := newCall(ctx, mod, stack)
	root, rel, errno := c.writable(0)
	if errno != 0 {
		c.ret(errno)
		return
	}
	name, errno := c.str(2)
	if errno != 0 {
		c.ret(errno)
		return
	}
	c.ret(wasiErrno(root.removexattr(rel, name)))
}

func hostUtimens(ctx context.Context, mod api.Module, stack []uint64) {
	c := newCall(ctx, mod, stack)
	root, rel, errno := c.writable(0)
	if errno != 0 {
		c.ret(errno)
		return
	}
	var ts [2]unix.Timespec
	for i, at := range [2]int{2, 4} {
		sec, nsec := int64(c.stack[at]), int64(c.u32(at+1))
		// UTIME_NOW would stamp the host's clock into the image.
		if nsec != unix.UTIME_OMIT && nsec >= 1e9 {
			c.ret(wasiEINVAL)
			return
		}
		ts[i] = unix.Timespec{Sec: sec, Nsec: nsec}
	}
	c.ret(wasiErrno(root.utimens(rel, ts, false)))
}

// statSize is the size of struct kiln_stat in docs/hostfs.md.
const statSize = 80

func hostLstat(ctx context.Context, mod api.Module, stack []uint64) {
	c := newCall(ctx, mod, stack)
	m, rel, errno := c.target(0)
	if errno != 0 {
		c.ret(errno)
		return
	}
	st, err := m.Root.lstat(rel)
	if err != nil {
		c.ret(wasiErrno(err))
		return
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
		c.ret(wasiEFAULT)
		return
	}
	c.ret(wasiESUCCESS)
}

// hostEIOCause writes, as a little-endian u32, the WASI errno of the host
// error behind the latest EIO this stage's WASI filesystem returned (0 if
// none did): WASI cannot carry ENOSPC and friends through wazero, see
// Root.sysErrno.
func hostEIOCause(ctx context.Context, mod api.Module, stack []uint64) {
	c := newCall(ctx, mod, stack)
	table, ok := c.ctx.Value(mountsKey{}).(mountTable)
	if !ok {
		c.ret(wasiENOTCAPABLE)
		return
	}
	if !c.mem.WriteUint32Le(c.u32(0), table.eioCause()) {
		c.ret(wasiEFAULT)
		return
	}
	c.ret(wasiESUCCESS)
}
