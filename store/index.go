package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kilnbuild/kiln/store/cowtree"
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
const indexTree = "tree"

func (s *Store) treeIndexPath(sum string) string {
	return filepath.Join(s.indexPath(sum), indexTree)
}

// hashTree returns the treesum and index of obj's tree, incrementally
// where it can.
func (s *Store) hashTree(ctx context.Context, obj *Object) (string, *treesum.Index, error) {
	if obj.tracked && obj.baseSum != "" {
		prev, perr := treesum.ReadIndex(s.treeIndexPath(obj.baseSum), obj.baseSum)
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

// writeTreeIndex records ix as the index of objects/<sum>, unless one is
// there already.
func (s *Store) writeTreeIndex(sum string, ix *treesum.Index) error {
	if ix == nil {
		return nil
	}
	file := s.treeIndexPath(sum)
	if _, err := os.Lstat(file); err == nil {
		return nil
	}
	var b bytes.Buffer
	if _, err := ix.WriteTo(&b); err != nil {
		return fmt.Errorf("store: index of %s: %w", sum, err)
	}
	if err := os.MkdirAll(s.indexPath(sum), 0o700); err != nil {
		return fmt.Errorf("store: index of %s: %w", sum, err)
	}
	return writeIndexFile(file, b.Bytes())
}

// checkTreeIndex is fsck's look at index/<sum>/tree: absent is fine, but
// one that is there must be the index of the tree as it is (full is the
// index fsck just computed from the tree).
func (s *Store) checkTreeIndex(sum string, full *treesum.Index) error {
	stored, err := treesum.ReadIndex(s.treeIndexPath(sum), sum)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var a, b bytes.Buffer
	_, _ = stored.WriteTo(&a)
	_, _ = full.WriteTo(&b)
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		return fmt.Errorf("%w: index/%s/%s differs from the tree", treesum.ErrBadIndex, sum, indexTree)
	}
	return nil
}
