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
	"unsafe"

	"github.com/kilnbuild/kiln/store/internal/reclist"
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
	recs []record
	// base and depth, for an index Update made: the sum of the index it
	// started from and that index's chain depth (reclist), so that it can be
	// stored as its difference from it (Delta).
	base  string
	depth int
	prev  *Index
	// depth of the stored form an index was read from (0: whole).
	readDepth int
}

type record struct {
	path string // relative, slash-separated; "" is the root
	enc  []byte // entry(e)
	n    int    // records in the subtree, this one included
	// from is the record's position in the index Update started from,
	// when it took the record over unchanged, else -1.
	from int
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
// and, when Update took it over from the previous index unchanged, its
// position in that index (Base), else -1.
func (ix *Index) Walk(f func(path string, typ byte, from int) error) error {
	for _, r := range ix.recs {
		if err := f(r.path, r.enc[0], r.from); err != nil {
			return err
		}
	}
	return nil
}

// Len returns the number of entries.
func (ix *Index) Len() int { return len(ix.recs) }

// Base returns the index Update made ix from, or nil.
func (ix *Index) Base() *Index { return ix.prev }

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
			ix.recs[i].from = n.reuseAt + i - at
		}
		return n.reuse[0].enc
	}
	at := len(ix.recs)
	ix.recs = append(ix.recs, record{path: rel, from: -1})
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
	if err := u.visit(ctx, root, "", false, 0); err != nil {
		return "", nil, err
	}
	if err := hashFiles(ctx, u.files); err != nil {
		return "", nil, err
	}
	sum, ix, err := finish(root)
	if err != nil {
		return "", nil, err
	}
	ix.base, ix.depth, ix.prev = prev.sum(), prev.readDepth, prev
	return sum, ix, nil
}

// sum is the treesum whose index ix is.
func (ix *Index) sum() string {
	h := sha256.New()
	io.WriteString(h, Version)
	h.Write(ix.recs[0].enc)
	return hex.EncodeToString(h.Sum(nil))
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
// from prev where nothing does. at is rel's position in prev, or -1.
func (u *updater) visit(ctx context.Context, n *node, rel string, fresh bool, at int) error {
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
	if fresh || at < 0 || u.prev.recs[at].enc[0] != typeDir {
		at = -1
	}
	// prev's children of rel, like names, are sorted bytewise: one merge
	// finds each name's record there.
	next, end := -1, -1
	if at >= 0 {
		next, end = at+1, at+u.prev.recs[at].n
	}
	n.children = make([]*node, 0, len(names))
	for _, name := range names {
		crel := join(rel, name)
		i := -1
		for next >= 0 && next < end {
			c := u.prev.recs[next].path
			cmp := strings.Compare(c[strings.LastIndexByte(c, '/')+1:], name)
			if cmp > 0 {
				break
			}
			if cmp == 0 {
				i = next
			}
			next += u.prev.recs[next].n
			if cmp == 0 {
				break
			}
		}
		if i >= 0 && !u.subtree[crel] && !u.self[crel] && !u.listing[crel] {
			r := u.prev.recs[i : i+u.prev.recs[i].n]
			n.children = append(n.children, &node{name: name, reuse: r, reuseAt: i})
			continue
		}
		c, err := stat(filepath.Join(n.path, name), name)
		if err != nil {
			return err
		}
		n.children = append(n.children, c)
		if err := u.visit(ctx, c, crel, fresh, i); err != nil {
			return err
		}
	}
	return nil
}

// The on-disk form (docs/treesum.md): a reclist (store/internal/reclist)
// after a magic line, whole or as its difference from the index of the
// tree it was made from, whose records each hold a path, an entry and a
// subtree size. indexMagicV1 is the whole form of older kilns, still read.
const (
	indexMagic   = "kiln-treesum-index-v2\n"
	indexMagicV1 = "kiln-treesum-index-v1\n"
)

func (r *record) appendTo(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.path)))
	b = append(b, r.path...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.enc)))
	b = append(b, r.enc...)
	return binary.BigEndian.AppendUint32(b, uint32(r.n))
}

// WriteTo writes the whole index to w.
func (ix *Index) WriteTo(w io.Writer) (int64, error) {
	recs := make([][]byte, len(ix.recs))
	for i := range ix.recs {
		recs[i] = ix.recs[i].appendTo(nil)
	}
	n, err := w.Write(reclist.Encode(indexMagic, recs))
	return int64(n), err
}

// Delta returns the index as its difference from the index Update made it
// from (the index of the tree whose sum is base), and its chain depth, when
// that is worth storing: the records Update took over are named by
// position, the others written out. Reading it back takes base's stored
// index too (ReadIndex).
func (ix *Index) Delta() (base string, data []byte, depth int, ok bool) {
	if ix.prev == nil {
		return "", nil, 0, false
	}
	var ops []reclist.Op
	own := 0
	for i := range ix.recs {
		r := &ix.recs[i]
		if r.from < 0 {
			own++
			ops = append(ops, reclist.Op{Rec: r.appendTo(nil)})
			continue
		}
		if k := len(ops) - 1; k >= 0 && ops[k].Rec == nil && ops[k].From+ops[k].N == r.from {
			ops[k].N++
			continue
		}
		ops = append(ops, reclist.Op{From: r.from, N: 1})
	}
	if !reclist.Worth(ix.depth, own, len(ix.recs)) {
		return "", nil, 0, false
	}
	return ix.base, reclist.EncodeDelta(indexMagic, ix.base, ix.depth, len(ix.recs), ops), ix.depth + 1, true
}

// Stored returns ix alone, as an index stored depth deep (0: whole, else
// Delta's depth) that a later Update may start from: ix's own base is not
// kept alive by it.
func (ix *Index) Stored(depth int) *Index { return &Index{recs: ix.recs, readDepth: depth} }

// Same reports whether ix and o hold the same entries.
func (ix *Index) Same(o *Index) bool {
	if len(ix.recs) != len(o.recs) {
		return false
	}
	for i := range ix.recs {
		a, b := &ix.recs[i], &o.recs[i]
		if a.path != b.path || a.n != b.n || !bytes.Equal(a.enc, b.enc) {
			return false
		}
	}
	return true
}

// ReadIndex reads an index written by WriteTo or Delta and checks that it
// is the index of a tree whose treesum is sum: every directory's payload is
// the digest of its children's entries, and the root's entry hashes to
// sum. A difference's base is read with chain(base sum), which returns that
// index's stored bytes (nil: no chain, only whole indexes are read).
func ReadIndex(file, sum string, chain func(base string) ([]byte, error)) (*Index, error) {
	buf, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("treesum: %w", err)
	}
	bad := func(what string) error { return fmt.Errorf("%w: %s: %s", ErrBadIndex, file, what) }
	var ix *Index
	if bytes.HasPrefix(buf, []byte(indexMagicV1)) {
		if ix, err = parseV1(buf[len(indexMagicV1):]); err != nil {
			return nil, bad(err.Error())
		}
		// A difference can only name a base of the current form: as
		// deep as a chain goes, Delta never makes one from it.
		ix.readDepth = reclist.MaxDepth
	} else {
		if chain == nil {
			chain = func(string) ([]byte, error) { return nil, os.ErrNotExist }
		}
		recs, depth, err := reclist.Decode(indexMagic, buf, chain)
		if err != nil {
			return nil, bad(err.Error())
		}
		ix = &Index{recs: make([]record, len(recs)), readDepth: depth}
		for i, rec := range recs {
			if ix.recs[i], err = parseRecord(rec); err != nil {
				return nil, bad(fmt.Sprintf("record %d: %v", i, err))
			}
		}
	}
	if err := ix.check(); err != nil {
		return nil, bad(err.Error())
	}
	if got := ix.sum(); got != sum {
		return nil, bad("root hashes to " + got)
	}
	return ix, nil
}

// parseRecord parses a record of the v2 form. Its path aliases rec, which
// no one changes: ReadIndex's buffers are its own.
func parseRecord(rec []byte) (record, error) {
	r := rec
	str := func() ([]byte, bool) {
		if len(r) < 4 {
			return nil, false
		}
		n := binary.BigEndian.Uint32(r)
		if uint64(n) > uint64(len(r)-4) {
			return nil, false
		}
		s := r[4 : 4+n : 4+n]
		r = r[4+n:]
		return s, true
	}
	p, ok1 := str()
	e, ok2 := str()
	if !ok1 || !ok2 || len(r) != 4 {
		return record{}, errors.New("malformed")
	}
	return record{path: unsafe.String(unsafe.SliceData(p), len(p)), enc: e, n: int(binary.BigEndian.Uint32(r)), from: -1}, nil
}

func parseV1(rest []byte) (*Index, error) {
	if len(rest) < 4 {
		return nil, errors.New("no index header")
	}
	count := binary.BigEndian.Uint32(rest)
	rest = rest[4:]
	if uint64(count) > uint64(len(rest))/12 {
		return nil, errors.New("record count larger than the file")
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
			return nil, errors.New("truncated record")
		}
		n := binary.BigEndian.Uint32(rest)
		rest = rest[4:]
		ix.recs = append(ix.recs, record{path: string(p), enc: e, n: int(n), from: -1})
	}
	if len(rest) != 0 {
		return nil, errors.New("trailing bytes")
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
		if (i == 0 && len(name) != 0) || (i > 0 && path.Base(r.path) != string(name)) {
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

var errShortEntry = errors.New("short entry")

// splitEntry parses entry(e) far enough to check an index: its type, name
// and payload (slices of enc: reading an index checks every entry, and a
// copy of each name would cost more than the rest of the check).
func splitEntry(enc []byte) (typ byte, name []byte, payload []byte, err error) {
	if len(enc) < 5 {
		return 0, nil, nil, errShortEntry
	}
	typ, rest := enc[0], enc[1:]
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
	name, ok := str()
	if !ok || len(rest) < 16 {
		return 0, nil, nil, errShortEntry
	}
	nx := binary.BigEndian.Uint32(rest[12:])
	rest = rest[16:]
	for range nx {
		if _, ok := str(); !ok {
			return 0, nil, nil, errShortEntry
		}
		if _, ok := str(); !ok {
			return 0, nil, nil, errShortEntry
		}
	}
	return typ, name, rest, nil
}
