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
	"path"
	"path/filepath"
	"strings"
)

// # Index and incremental sums
//
// An Index is the encoding of every entry of a tree (entry(e) of
// docs/treesum.md: its type, name, mode, owner, xattrs and payload, which
// for a file is its content digest and for a directory the digest of its
// children's entries), in depth-first pre-order with children sorted by
// name, each with the number of records its subtree spans. [SumIndex]
// makes one with the full sum; [Update] makes the sum and index of a tree
// that changed from a known one only at the given paths, re-reading those
// and their ancestors' listings and reusing every other entry, so a commit
// after a stage that changed one file costs that file, not the tree. Both
// give the same sum for the same tree: Update trusts that what the changes
// do not name is as the index says (the store's journal guarantees it, and
// fsck's full sum checks it).

// Index is a tree's entries as the treesum encodes them.
type Index struct {
	recs  []record
	byKey map[string]int // path -> position in recs, built on demand
}

type record struct {
	path string // relative, slash-separated; "" is the root
	enc  []byte // entry(e)
	n    int    // records in the subtree, this one included
	// reused: Update took the record from the previous index unchanged
	// (not written to disk).
	reused bool
}

// Change names a path of a tree that changed since its index was made:
// the entry itself, or with Subtree whatever the name holds now.
type Change struct {
	Path    string
	Subtree bool
}

// ErrBadIndex: an index does not parse or does not hash to its sum.
var ErrBadIndex = errors.New("treesum: bad index")

// Walk calls f for every entry in the index's order (depth first, names
// sorted) with its path, its type byte (docs/treesum.md: d f l c b p s)
// and whether Update took it over from the previous index unchanged.
func (ix *Index) Walk(f func(path string, typ byte, reused bool) error) error {
	for _, r := range ix.recs {
		if err := f(r.path, r.enc[0], r.reused); err != nil {
			return err
		}
	}
	return nil
}

// Len returns the number of entries.
func (ix *Index) Len() int { return len(ix.recs) }

// SumIndex is Sum, returning the tree's index too.
func SumIndex(ctx context.Context, dir string) (string, *Index, error) {
	root, files, err := scan(ctx, dir)
	if err != nil {
		return "", nil, err
	}
	if err := hashFiles(ctx, files); err != nil {
		return "", nil, err
	}
	return finish(root)
}

// finish encodes the tree below root into a sum and an index.
func finish(root *node) (string, *Index, error) {
	ix := &Index{}
	enc := ix.emit("", root)
	h := sha256.New()
	io.WriteString(h, Version)
	h.Write(enc)
	return hex.EncodeToString(h.Sum(nil)), ix, nil
}

// emit appends the records of n's subtree (n at rel) and returns entry(n).
func (ix *Index) emit(rel string, n *node) []byte {
	if n.reuse != nil {
		at := len(ix.recs)
		ix.recs = append(ix.recs, n.reuse...)
		for i := at; i < len(ix.recs); i++ {
			ix.recs[i].reused = true
		}
		return n.reuse[0].enc
	}
	at := len(ix.recs)
	ix.recs = append(ix.recs, record{path: rel})
	var b bytes.Buffer
	writeHeader(&b, n)
	switch n.typ {
	case typeFile:
		b.Write(n.digest[:])
	case typeDir:
		h := sha256.New()
		for _, c := range n.children {
			h.Write(ix.emit(join(rel, c.name), c))
		}
		b.Write(h.Sum(nil))
	default:
		writePayload(&b, n)
	}
	ix.recs[at].enc = b.Bytes()
	ix.recs[at].n = len(ix.recs) - at
	return ix.recs[at].enc
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

func (ix *Index) lookup(rel string) (int, bool) {
	if ix.byKey == nil {
		ix.byKey = make(map[string]int, len(ix.recs))
		for i, r := range ix.recs {
			ix.byKey[r.path] = i
		}
	}
	i, ok := ix.byKey[rel]
	return i, ok
}

// Update returns the sum and index of the tree at dir, which was the tree
// of prev except at the paths in changes (see the top of this file).
func Update(ctx context.Context, dir string, prev *Index, changes []Change) (string, *Index, error) {
	if len(prev.recs) == 0 {
		return SumIndex(ctx, dir)
	}
	u := &updater{prev: prev, self: map[string]bool{}, subtree: map[string]bool{}, listing: map[string]bool{}}
	for _, c := range changes {
		p := strings.Trim(path.Clean("/"+c.Path), "/")
		if c.Subtree {
			u.subtree[p] = true
		} else {
			u.self[p] = true
		}
		for p != "" {
			p = parentOf(p)
			u.listing[p] = true
		}
	}
	root, err := stat(dir, "")
	if err != nil {
		return "", nil, err
	}
	if root.typ != typeDir {
		return "", nil, fmt.Errorf("treesum: %s is not a directory", dir)
	}
	if err := u.visit(ctx, root, "", false); err != nil {
		return "", nil, err
	}
	if err := hashFiles(ctx, u.files); err != nil {
		return "", nil, err
	}
	return finish(root)
}

func parentOf(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}

type updater struct {
	prev                   *Index
	self, subtree, listing map[string]bool
	files                  []*node
}

// visit fills in the directory or file n at rel: anew where a change
// names it (fresh: below a subtree change, nothing of prev is valid),
// from prev where nothing does.
func (u *updater) visit(ctx context.Context, n *node, rel string, fresh bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	fresh = fresh || u.subtree[rel]
	switch n.typ {
	case typeFile:
		u.files = append(u.files, n)
		return nil
	case typeDir:
	default:
		return nil
	}
	names, err := readNames(n.path)
	if err != nil {
		return err
	}
	n.children = make([]*node, 0, len(names))
	for _, name := range names {
		crel := join(rel, name)
		if !fresh && !u.subtree[crel] && !u.self[crel] && !u.listing[crel] {
			if i, ok := u.prev.lookup(crel); ok {
				r := u.prev.recs[i : i+u.prev.recs[i].n]
				n.children = append(n.children, &node{name: name, reuse: r})
				continue
			}
		}
		c, err := stat(filepath.Join(n.path, name), name)
		if err != nil {
			return err
		}
		n.children = append(n.children, c)
		if err := u.visit(ctx, c, crel, fresh); err != nil {
			return err
		}
	}
	return nil
}

// The on-disk form: a magic line, the record count, then per record its
// path, its entry and its subtree size. Load checks it hashes to the sum.
const indexMagic = "kiln-treesum-index-v1\n"

// WriteTo writes the index to w.
func (ix *Index) WriteTo(w io.Writer) (int64, error) {
	var b bytes.Buffer
	b.WriteString(indexMagic)
	b.Write(binary.BigEndian.AppendUint32(nil, uint32(len(ix.recs))))
	for _, r := range ix.recs {
		putString(&b, r.path)
		putString(&b, string(r.enc))
		putU32(&b, uint32(r.n))
	}
	return b.WriteTo(w)
}

// ReadIndex reads an index written by WriteTo and checks that it is the
// index of a tree whose treesum is sum: every directory's payload is the
// digest of its children's entries, and the root's entry hashes to sum.
func ReadIndex(file, sum string) (*Index, error) {
	buf, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("treesum: %w", err)
	}
	bad := func(what string) error { return fmt.Errorf("%w: %s: %s", ErrBadIndex, file, what) }
	rest, ok := bytes.CutPrefix(buf, []byte(indexMagic))
	if !ok || len(rest) < 4 {
		return nil, bad("no index header")
	}
	count := binary.BigEndian.Uint32(rest)
	rest = rest[4:]
	if uint64(count) > uint64(len(rest))/12 {
		return nil, bad("record count larger than the file")
	}
	ix := &Index{recs: make([]record, 0, count)}
	str := func() ([]byte, bool) {
		if len(rest) < 4 {
			return nil, false
		}
		n := binary.BigEndian.Uint32(rest)
		if uint64(n) > uint64(len(rest)-4) {
			return nil, false
		}
		s := rest[4 : 4+n]
		rest = rest[4+n:]
		return s, true
	}
	for range count {
		p, ok1 := str()
		e, ok2 := str()
		if !ok1 || !ok2 || len(rest) < 4 {
			return nil, bad("truncated record")
		}
		n := binary.BigEndian.Uint32(rest)
		rest = rest[4:]
		ix.recs = append(ix.recs, record{path: string(p), enc: e, n: int(n)})
	}
	if len(rest) != 0 {
		return nil, bad("trailing bytes")
	}
	if err := ix.check(); err != nil {
		return nil, bad(err.Error())
	}
	h := sha256.New()
	io.WriteString(h, Version)
	h.Write(ix.recs[0].enc)
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return nil, bad("root hashes to " + got)
	}
	return ix, nil
}

// check verifies the index's structure: subtree sizes nest, paths are
// their parent's plus the entry's name, and each directory's payload is
// the digest of its children's entries.
func (ix *Index) check() error {
	if len(ix.recs) == 0 || ix.recs[0].path != "" || ix.recs[0].n != len(ix.recs) {
		return errors.New("no root record spanning the index")
	}
	var walk func(i int) error
	walk = func(i int) error {
		r := ix.recs[i]
		typ, name, payload, err := splitEntry(r.enc)
		if err != nil {
			return fmt.Errorf("record %d: %w", i, err)
		}
		if (i == 0 && name != "") || (i > 0 && path.Base(r.path) != name) {
			return fmt.Errorf("record %d: path %q and name %q differ", i, r.path, name)
		}
		if typ != typeDir {
			if r.n != 1 {
				return fmt.Errorf("record %d: a %c with children", i, typ)
			}
			return nil
		}
		h := sha256.New()
		end := i + r.n
		for j := i + 1; j < end; j += ix.recs[j].n {
			c := ix.recs[j]
			if c.n < 1 || j+c.n > end || parentOf(c.path) != r.path || (c.path == "" && r.path == "") {
				return fmt.Errorf("record %d: subtree sizes do not nest", j)
			}
			h.Write(c.enc)
			if err := walk(j); err != nil {
				return err
			}
		}
		if !bytes.Equal(h.Sum(nil), payload) {
			return fmt.Errorf("record %d (%q): children do not hash to the directory's payload", i, r.path)
		}
		return nil
	}
	return walk(0)
}

// splitEntry parses entry(e) far enough to check an index: its type, name
// and payload.
func splitEntry(enc []byte) (typ byte, name string, payload []byte, err error) {
	short := errors.New("short entry")
	if len(enc) < 5 {
		return 0, "", nil, short
	}
	typ, rest := enc[0], enc[1:]
	str := func() (string, bool) {
		if len(rest) < 4 {
			return "", false
		}
		n := binary.BigEndian.Uint32(rest)
		if uint64(n) > uint64(len(rest)-4) {
			return "", false
		}
		s := string(rest[4 : 4+n])
		rest = rest[4+n:]
		return s, true
	}
	name, ok := str()
	if !ok || len(rest) < 16 {
		return 0, "", nil, short
	}
	nx := binary.BigEndian.Uint32(rest[12:])
	rest = rest[16:]
	for range nx {
		if _, ok := str(); !ok {
			return 0, "", nil, short
		}
		if _, ok := str(); !ok {
			return 0, "", nil, short
		}
	}
	return typ, name, rest, nil
}
