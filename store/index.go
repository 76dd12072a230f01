package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"unsafe"

	"github.com/kilnbuild/kiln/store/cowtree"
	"github.com/kilnbuild/kiln/store/internal/reclist"
	"github.com/kilnbuild/kiln/store/treesum"
)

// # The tree index
//
// index/<treesum>/tree is the committed tree's treesum index (package
// treesum: every entry's encoding, content digests included). A commit of
// an object whose every change went through hostfs (Object.tracked) reads
// its base's index and the journal of paths hostfs touched, and re-hashes
// only those (treesum.Update); any other commit hashes the whole tree. The
// index is checked against its treesum when read (a damaged one costs a
// full hash, never a wrong sum), written by rename, and not synced: losing
// it costs one full hash. fsck checks it against the tree.
//
// The tree index and a linked object's file lines (index/<treesum>/files,
// verify.go) are reclists (store/internal/reclist): stored whole, or, after
// a commit that changed a few entries, as their difference from the base's,
// so that such a commit writes a few records instead of one per entry of
// the tree. A difference names its base by treesum, and the stored lists it
// is read from, its base's and theirs down the chain, are hardlinked into
// index/<treesum>/chain/<base treesum>.<tree|files> when it is written: gc
// and fsck remove an object's index directory with no regard for others,
// and the chain of every object that still needs a removed base keeps it.
// Where a link cannot be made (a filesystem without hardlinks, a base
// linked to its limit), the list is stored whole.
const (
	indexTree  = "tree"
	indexChain = "chain"
)

func (s *Store) treeIndexPath(sum string) string {
	return filepath.Join(s.indexPath(sum), indexTree)
}

// chainOf returns a reader of the lists of kind that index/<sum>'s stored
// list of kind is made from.
func (s *Store) chainOf(sum, kind string) func(string) ([]byte, error) {
	return func(base string) ([]byte, error) {
		if !validSum.MatchString(base) {
			return nil, fmt.Errorf("store: index of %s: base %q is not a treesum", sum, base)
		}
		return os.ReadFile(filepath.Join(s.indexPath(sum), indexChain, base+"."+kind))
	}
}

// linkChain links index/<base>'s stored list of kind and the lists it is
// made from (its chain, followed through the headers of the links made)
// into index/<sum>/chain, so that a difference from it can be read however
// long base's index lives. When it fails, the caller stores the list whole
// and the links it made go again.
func (s *Store) linkChain(sum, base, kind string) (err error) {
	dir := filepath.Join(s.indexPath(sum), indexChain)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	var made []string
	defer func() {
		if err != nil {
			for _, l := range made {
				os.Remove(l)
			}
		}
	}()
	from, name := filepath.Join(s.indexPath(base), kind), base
	for range reclist.MaxDepth + 1 {
		to := filepath.Join(dir, name+"."+kind)
		err := os.Link(from, to)
		if errors.Is(err, os.ErrExist) {
			// Left by a commit of the same tree that did not finish:
			// what it linked may be another version of the list.
			if err = os.Remove(to); err == nil {
				err = os.Link(from, to)
			}
		}
		if err != nil {
			return err
		}
		made = append(made, to)
		next, err := listBase(to)
		if err != nil || next == "" {
			return err
		}
		if !validSum.MatchString(next) {
			return fmt.Errorf("store: %s: base %q is not a treesum", to, next)
		}
		from, name = filepath.Join(s.indexPath(base), indexChain, next+"."+kind), next
	}
	return fmt.Errorf("store: index of %s: the chain of %s is deeper than %d", sum, base, reclist.MaxDepth)
}

// listBase returns the base of the stored list in file ("" when whole).
func listBase(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	buf := make([]byte, reclist.HeaderSize)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return "", err
	}
	return reclist.Base(buf[:n])
}

// hashTree returns the treesum and index of obj's tree, incrementally
// where it can.
func (s *Store) hashTree(ctx context.Context, obj *Object) (string, *treesum.Index, error) {
	if obj.tracked && obj.baseSum != "" {
		prev, perr := s.readTreeIndex(obj.baseSum)
		touched, jerr := cowtree.ReadJournal(obj.cowPath())
		if perr == nil && jerr == nil {
			s.incrementalCommits.Add(1)
			changes := make([]treesum.Change, len(touched))
			for i, t := range touched {
				changes[i] = treesum.Change{Path: t.Path, Subtree: t.Subtree}
			}
			return treesum.Update(ctx, obj.treePath(), prev, changes)
		}
		if ctx.Err() != nil {
			return "", nil, ctx.Err()
		}
		// No index (committed by an older kiln, or lost) or no journal:
		// hash everything.
	}
	return treesum.SumIndex(ctx, obj.treePath())
}

// readTreeIndex returns the index of objects/<sum>, from the cache when it
// is there.
func (s *Store) readTreeIndex(sum string) (*treesum.Index, error) {
	if ix := s.indexes.get(sum).tree; ix != nil {
		return ix, nil
	}
	ix, err := treesum.ReadIndex(s.treeIndexPath(sum), sum, s.chainOf(sum, indexTree))
	if err != nil {
		return nil, err
	}
	s.indexes.putTree(sum, ix)
	return ix, nil
}

// writeTreeIndex records ix as the index of objects/<sum>, unless one is
// there already: as its difference from its base's where that is worth it.
func (s *Store) writeTreeIndex(sum string, ix *treesum.Index) error {
	if ix == nil {
		return nil
	}
	file := s.treeIndexPath(sum)
	if _, err := os.Lstat(file); err == nil {
		return nil
	}
	if err := os.MkdirAll(s.indexPath(sum), 0o700); err != nil {
		return fmt.Errorf("store: index of %s: %w", sum, err)
	}
	if base, data, depth, ok := ix.Delta(); ok && s.linkChain(sum, base, indexTree) == nil {
		if err := writeIndexFile(file, data); err != nil {
			return err
		}
		s.indexes.putTree(sum, ix.Stored(depth))
		return nil
	}
	var b bytes.Buffer
	if _, err := ix.WriteTo(&b); err != nil {
		return fmt.Errorf("store: index of %s: %w", sum, err)
	}
	if err := writeIndexFile(file, b.Bytes()); err != nil {
		return err
	}
	s.indexes.putTree(sum, ix.Stored(0))
	return nil
}

// checkTreeIndex is fsck's look at index/<sum>/tree: absent is fine, but
// one that is there must be the index of the tree as it is (full is the
// index fsck just computed from the tree).
func (s *Store) checkTreeIndex(sum string, full *treesum.Index) error {
	stored, err := treesum.ReadIndex(s.treeIndexPath(sum), sum, s.chainOf(sum, indexTree))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !stored.Same(full) {
		return fmt.Errorf("%w: index/%s/%s differs from the tree", treesum.ErrBadIndex, sum, indexTree)
	}
	return nil
}

// statFilesMagic heads index/<sum>/files, a reclist of statRecs (each its
// path's length, its path and its line).
const statFilesMagic = "kiln-stat-files-v1\n"

// fileLinesFrom is where a commit's file lines came from, for storing them
// as their difference from the base's.
type fileLinesFrom struct {
	base  string // treesum of the base whose lines they reuse
	depth int    // the base's chain depth
	ops   []reclist.Op
	own   int // lines not taken from the base
}

func (r *statRec) record() []byte {
	b := make([]byte, 0, 4+len(r.path)+len(r.line))
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.path)))
	b = append(b, r.path...)
	return append(b, r.line...)
}

// readStatFiles returns the file lines stored in index/<sum>/files and the
// depth of their chain.
func (s *Store) readStatFiles(sum string) ([]statRec, int, error) {
	if e := s.indexes.get(sum); e.files != nil {
		return e.files, e.filesDepth, nil
	}
	file := filepath.Join(s.indexPath(sum), indexFiles)
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, 0, err
	}
	recs, depth, err := reclist.Decode(statFilesMagic, data, s.chainOf(sum, indexFiles))
	if err != nil {
		return nil, 0, fmt.Errorf("store: %s: %w", file, err)
	}
	out := make([]statRec, len(recs))
	for i, r := range recs {
		if len(r) < 4 || uint64(binary.BigEndian.Uint32(r)) > uint64(len(r)-4) {
			return nil, 0, fmt.Errorf("store: %s: record %d truncated", file, i)
		}
		n := 4 + binary.BigEndian.Uint32(r)
		// The path aliases the data read, which no one changes: a copy
		// per file would cost more than the rest of reading them.
		out[i] = statRec{unsafe.String(unsafe.SliceData(r[4:n]), n-4), r[n:]}
	}
	s.indexes.putFiles(sum, out, depth)
	return out, depth, nil
}

// writeStatFiles stores files as index/<sum>/files: as their difference
// from the base's lines (from) where that is worth it, else whole.
func (s *Store) writeStatFiles(sum string, files []statRec, from *fileLinesFrom) error {
	file := filepath.Join(s.indexPath(sum), indexFiles)
	if from != nil && reclist.Worth(from.depth, from.own, len(files)) && s.linkChain(sum, from.base, indexFiles) == nil {
		if err := writeIndexFile(file, reclist.EncodeDelta(statFilesMagic, from.base, from.depth, len(files), from.ops)); err != nil {
			return err
		}
		s.indexes.putFiles(sum, files, from.depth+1)
		return nil
	}
	recs := make([][]byte, len(files))
	for i := range files {
		recs[i] = files[i].record()
	}
	if err := writeIndexFile(file, reclist.Encode(statFilesMagic, recs)); err != nil {
		return err
	}
	s.indexes.putFiles(sum, files, 0)
	return nil
}
