package treesum

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/internal/fsmeta"
)

// Version prefixes every treesum's hash input, so that a future change of
// the encoding can never collide with addresses computed by this one.
const Version = "kiln-treesum-v1\x00"

// ErrUnsupported is returned for entries a tree may not hold (for example a
// file type unknown to this encoding).
var ErrUnsupported = errors.New("treesum: unsupported file type")

// Entry type bytes, as written into the encoding.
const (
	typeDir     = 'd'
	typeFile    = 'f'
	typeSymlink = 'l'
	typeChar    = 'c'
	typeBlock   = 'b'
	typeFifo    = 'p'
	typeSocket  = 's'
)

// node is one entry of the tree being summed.
type node struct {
	name     string
	typ      byte
	mode     uint32 // permission and special bits (07777)
	uid, gid uint32
	xattrs   []xattr
	target   string // symlink target
	rdev     uint64
	path     string  // host path, for files to hash and directories to read
	children []*node // sorted by name
	digest   [32]byte
	// reuse, for Update, is the entry's subtree from the previous index,
	// starting at its position reuseAt there: its encoding is taken from
	// there, nothing is read.
	reuse   []record
	reuseAt int
}

type xattr struct{ name, value string }

// Sum returns the hex-encoded treesum of the tree rooted at dir. The root's
// own mode, ownership and xattrs are part of the sum; its name is not.
func Sum(ctx context.Context, dir string) (string, error) {
	root, files, err := scan(ctx, dir)
	if err != nil {
		return "", err
	}
	if err := hashFiles(ctx, files); err != nil {
		return "", err
	}
	h := sha256.New()
	io.WriteString(h, Version)
	writeEntry(h, root)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// scan reads the tree's metadata depth-first, directories one after another
// (readdir is cheap next to hashing), and returns the regular files whose
// contents still need hashing.
func scan(ctx context.Context, dir string) (*node, []*node, error) {
	root, err := stat(dir, "")
	if err != nil {
		return nil, nil, err
	}
	if root.typ != typeDir {
		return nil, nil, fmt.Errorf("treesum: %s is not a directory", dir)
	}
	var files []*node
	stack := []*node{root}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		names, err := readNames(d.path)
		if err != nil {
			return nil, nil, err
		}
		d.children = make([]*node, 0, len(names))
		for _, name := range names {
			if err := ctx.Err(); err != nil { // a directory may hold millions
				return nil, nil, err
			}
			c, err := stat(filepath.Join(d.path, name), name)
			if err != nil {
				return nil, nil, err
			}
			d.children = append(d.children, c)
			switch c.typ {
			case typeDir:
				stack = append(stack, c)
			case typeFile:
				files = append(files, c)
			}
		}
	}
	return root, files, nil
}

// readNames lists a directory sorted bytewise, the order the encoding uses.
func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("treesum: %w", err)
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("treesum: reading %s: %w", dir, err)
	}
	slices.Sort(names)
	return names, nil
}

func stat(path, name string) (*node, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return nil, fmt.Errorf("treesum: lstat %s: %w", path, err)
	}
	n := &node{name: name, path: path, mode: st.Mode & 07777, uid: st.Uid, gid: st.Gid}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		n.typ = typeDir
	case unix.S_IFREG:
		n.typ = typeFile
	case unix.S_IFLNK:
		n.typ = typeSymlink
		t, err := os.Readlink(path)
		if err != nil {
			return nil, fmt.Errorf("treesum: %w", err)
		}
		n.target = t
	case unix.S_IFCHR:
		n.typ, n.rdev = typeChar, st.Rdev
	case unix.S_IFBLK:
		n.typ, n.rdev = typeBlock, st.Rdev
	case unix.S_IFIFO:
		n.typ = typeFifo
	case unix.S_IFSOCK:
		n.typ = typeSocket
	default:
		return nil, fmt.Errorf("%w: %s has mode %#o", ErrUnsupported, path, st.Mode)
	}
	xs, err := readXattrs(path)
	if err != nil {
		return nil, err
	}
	n.xattrs = xs
	return n, nil
}

// readXattrs returns the entry's extended attributes sorted by name, without
// following symlinks.
func readXattrs(path string) ([]xattr, error) {
	names, err := fsmeta.ListXattrs(path)
	if err != nil {
		return nil, fmt.Errorf("treesum: %w", err)
	}
	xs := make([]xattr, 0, len(names))
	for _, name := range names {
		v, err := fsmeta.GetXattr(path, name)
		if err != nil {
			return nil, fmt.Errorf("treesum: %w", err)
		}
		xs = append(xs, xattr{name, string(v)})
	}
	slices.SortFunc(xs, func(a, b xattr) int { return strings.Compare(a.name, b.name) })
	return xs, nil
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// zeros stands in for a file's holes: a hole reads as zeros, so it is
// hashed as zeros, but from memory, without a read(2) per chunk.
var zeros = make([]byte, 1<<20)

// MaxFileSize is the largest regular file Sum hashes, counting holes: the
// encoding hashes a file's whole contents and a hole reads as zeros, so a
// sparse file costs as much SHA-256 work as a dense one (about 0.6 s per GiB
// on one core), and a 4 EiB hole would never finish. Larger files are
// refused with ErrTooLarge. docs/treesum.md documents the limit.
const MaxFileSize = 1 << 40

// ErrTooLarge is returned for a regular file larger than MaxFileSize.
var ErrTooLarge = errors.New("treesum: file too large to hash")

// chunkHook, when set by a test, runs after each chunk a file hash
// consumes, so that a test can cancel in the middle of a file.
var chunkHook func()

// hashFiles hashes file contents on all CPUs: sha256 of a large file is
// CPU-bound, and a tree of small files is bound by open/read latency, which
// parallelism hides too.
func hashFiles(ctx context.Context, files []*node) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(2 * runtime.GOMAXPROCS(0))
	for _, f := range files {
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				return err
			}
			return hashFile(ctx, f)
		})
	}
	return g.Wait()
}

// hashFile hashes a file's contents the way reading it would see them, but
// reads only its data segments (SEEK_DATA/SEEK_HOLE) and feeds holes as
// zeros from memory; ctx is checked after every chunk, so a cancelled
// commit of a huge file stops within a chunk.
func hashFile(ctx context.Context, n *node) error {
	f, err := os.OpenFile(n.path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NOATIME, 0)
	if errors.Is(err, unix.EPERM) { // O_NOATIME needs ownership or CAP_FOWNER
		f, err = os.OpenFile(n.path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	}
	if err != nil {
		return fmt.Errorf("treesum: %w", err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("treesum: fstat %s: %w", n.path, err)
	}
	size := st.Size
	if size > MaxFileSize {
		return fmt.Errorf("%w: %s is %d bytes, more than treesum's limit of %d (1 TiB, holes included)", ErrTooLarge, n.path, size, int64(MaxFileSize))
	}
	h := sha256.New()
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	fd := int(f.Fd())
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		switch {
		case errors.Is(err, unix.ENXIO):
			data = size // only a hole is left
		case err != nil:
			data = off // no SEEK_DATA here: treat everything as data
		}
		data = min(data, size)
		if err := hashZeros(ctx, h, data-off); err != nil {
			return err
		}
		if data == size {
			break
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			hole = size
		}
		hole = min(hole, size)
		if hole <= data {
			hole = size // a filesystem that reports nonsense: read the rest
		}
		if err := hashData(ctx, h, f, data, hole, *bp); err != nil {
			return fmt.Errorf("treesum: reading %s: %w", n.path, err)
		}
		off = hole
	}
	h.Sum(n.digest[:0])
	return nil
}

func hashZeros(ctx context.Context, h io.Writer, n int64) error {
	for n > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		k := min(n, int64(len(zeros)))
		h.Write(zeros[:k])
		n -= k
		if chunkHook != nil {
			chunkHook()
		}
	}
	return nil
}

func hashData(ctx context.Context, h io.Writer, f *os.File, from, to int64, buf []byte) error {
	for off := from; off < to; {
		if err := ctx.Err(); err != nil {
			return err
		}
		k, err := f.ReadAt(buf[:min(int64(len(buf)), to-off)], off)
		h.Write(buf[:k])
		off += int64(k)
		if errors.Is(err, io.EOF) && off < to {
			return fmt.Errorf("file shrank to %d bytes while being hashed", off)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if chunkHook != nil {
			chunkHook()
		}
	}
	return nil
}

// writeEntry appends the encoding of n (see docs/treesum.md) to w.
func writeEntry(w io.Writer, n *node) {
	if n.reuse != nil {
		w.Write(n.reuse[0].enc)
		return
	}
	var b bytes.Buffer
	writeHeader(&b, n)
	switch n.typ {
	case typeFile:
		b.Write(n.digest[:])
	case typeDir:
		h := sha256.New()
		for _, c := range n.children {
			writeEntry(h, c)
		}
		b.Write(h.Sum(nil))
	default:
		writePayload(&b, n)
	}
	w.Write(b.Bytes())
}

// writeHeader writes what entry(n) holds before its payload.
func writeHeader(b *bytes.Buffer, n *node) {
	b.WriteByte(n.typ)
	putString(b, n.name)
	putU32(b, n.mode)
	putU32(b, n.uid)
	putU32(b, n.gid)
	putU32(b, uint32(len(n.xattrs)))
	for _, x := range n.xattrs {
		putString(b, x.name)
		putString(b, x.value)
	}
}

// writePayload writes the payload of a symlink or special file.
func writePayload(b *bytes.Buffer, n *node) {
	switch n.typ {
	case typeSymlink:
		putString(b, n.target)
	case typeChar, typeBlock:
		putU32(b, unix.Major(n.rdev))
		putU32(b, unix.Minor(n.rdev))
	}
}

func putU32(b *bytes.Buffer, v uint32) {
	b.Write(binary.BigEndian.AppendUint32(nil, v))
}

func putString(b *bytes.Buffer, s string) {
	putU32(b, uint32(len(s)))
	b.WriteString(s)
}
