package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/internal/fsmeta"
	"github.com/kilnbuild/kiln/store/internal/parwalk"
	"github.com/kilnbuild/kiln/store/internal/reclist"
	"github.com/kilnbuild/kiln/store/treesum"
)

// ErrDamaged: a committed object's content no longer matches its treesum,
// or a ref points at an object it was never committed to. The store drops
// the refs that lead to it, so the next build rebuilds it; `kiln store fsck
// --repair` removes the object.
var ErrDamaged = errors.New("object damaged")

// # The check on use
//
// Hashing a whole tree on every use would cost as much as the commit did
// (minutes for a large image), so each use checks a stat digest instead: a
// SHA-256 over every entry's path, type and mode, owner, size, device
// number, mtime and ctime, recorded in index/<treesum>/stat right after the
// commit renamed the tree into objects/. Any write to a file changes its
// mtime and ctime, and any chmod, chown, setxattr, rename, link or unlink
// changes a ctime, which no one can set back without changing the clock, so
// the digest catches every damage done through the filesystem (content,
// mode, owner, xattr, added or removed entries) for one lstat per entry and
// no reads. Objects marked linked (index/<treesum>/linked) are the
// exception: their files may share inodes with other objects (hardlink
// trees, copymode.go), and making or removing another object's link, or a
// copy-up, changes a shared inode's ctime, so their files' digest lines
// hold the xattrs instead of the ctime (link counts are never covered).
// What only a file's ctime would show (data rewritten and the mtime set
// back with utimensat) is then left to the full treesum of fsck. An object
// is marked before the first hardlink tree is made from it (its digest is
// then recorded anew), and a tree committed from a hardlink tree is marked
// from the start; the objects that share inodes are all marked. When it differs, or no digest was recorded (a crash between
// the rename and the record, a store copied with cp -a), the full treesum
// decides: equal means only metadata the treesum leaves out changed, and
// the digest is recorded anew; different means the object is damaged.
// Damage below the filesystem (bit rot in a block) keeps the stat digest and
// is found by fsck, which always hashes everything.
//
// A linked base that a hostfs tree is hardlinked from (Store.NewHostfs, a
// build starting from a checkpoint) is checked in the walk that makes the
// links: the copy's lstat results are the digest's (treecopy's
// Options.Visit), and the tree is kept only if the digest is the recorded
// one; otherwise the check above decides, as on any use, and the tree is
// linked again. The tree is made before the verdict, but nothing sees it
// before: a damaged base fails NewHostfs, which removes it.
//
// Refs are checked as well: committing id to an object creates
// index/<treesum>/refs/<id> (durably, before refs/<id> is renamed into
// place), so a ref that points at an object id was never committed to (a
// ref redirected by hand, a bug) is told apart from a good one. An object
// whose index has no refs/ yet (committed by an older kiln) adopts the refs
// pointing at it at its first check.
const (
	// statDigestVersion changes with what the digest covers: a digest of
	// an older kiln then costs one full check, and is recorded anew.
	statDigestVersion = "kiln-stat-v2\n"

	indexStat = "stat"
	// indexLinked marks an object whose files may share inodes with other
	// objects' (hardlink trees): its stat digest leaves file ctimes out.
	indexLinked = "linked"
	// indexFiles holds a linked object's files' digest lines.
	indexFiles = "files"
	indexRefs  = "refs"
)

func (s *Store) indexPath(sum string) string { return filepath.Join(s.root, dirIndex, sum) }

// statDigest returns the stat digest of the tree at root (see above).
func statDigest(ctx context.Context, root string, linked bool) (string, error) {
	d, _, err := statWalk(ctx, root, linked)
	return d, err
}

// statRec is one regular file's line of a stat digest, kept for linked
// objects (index/<treesum>/files) so that the next commit of a tree linked
// from this one takes the lines of the files it did not change from here.
type statRec struct {
	path string // as in the treesum index: relative, "" for the root
	line []byte
}

// statLine is the digest's line for the entry at host path p, rel in its
// tree ("" for the root).
func statLine(p, rel string, st *unix.Stat_t, linked bool) ([]byte, error) {
	return statLineAt(unix.AT_FDCWD, "", p, rel, st, linked)
}

// statLineAt is statLine for the entry name of the open directory dirfd,
// whose path is dir: a walk's lines each resolve one name.
func statLineAt(dirfd int, dir, name, rel string, st *unix.Stat_t, linked bool) ([]byte, error) {
	// Appended, not formatted with fmt: the check on use makes a line for
	// every entry of the tree, and fmt's reflection was a third of it.
	b := make([]byte, 0, len(rel)+96)
	ctime := st.Ctim
	if st.Mode&unix.S_IFMT == unix.S_IFREG && linked {
		// The inode may be shared with other objects (hardlink trees),
		// whose making and removal change its ctime: its xattrs stand in
		// for what only the ctime would show.
		ctime = unix.Timespec{}
		xs, err := fsmeta.ListXattrsAt(dirfd, dir, name)
		if err != nil {
			return nil, err
		}
		for _, x := range xs {
			v, err := fsmeta.GetXattr(filepath.Join(dir, name), x)
			if err != nil {
				return nil, err
			}
			b = strconv.AppendQuote(b, x)
			b = append(b, '=')
			b = strconv.AppendQuote(b, string(v))
			b = append(b, ' ')
		}
	}
	if rel == "" {
		rel = "."
	}
	b = append(append(b, rel...), 0)
	b = strconv.AppendUint(b, uint64(st.Mode), 8)
	for _, n := range []uint64{uint64(st.Uid), uint64(st.Gid)} {
		b = strconv.AppendUint(append(b, ' '), n, 10)
	}
	b = strconv.AppendInt(append(b, ' '), st.Size, 10)
	b = strconv.AppendUint(append(b, ' '), st.Rdev, 10)
	for _, t := range []unix.Timespec{st.Mtim, ctime} {
		b = strconv.AppendInt(append(b, ' '), t.Sec, 10)
		b = strconv.AppendInt(append(b, '.'), t.Nsec, 10)
	}
	return append(b, '\n'), nil
}

func newStatHash(linked bool) hash.Hash {
	h := sha256.New()
	io.WriteString(h, statDigestVersion)
	if linked {
		io.WriteString(h, "linked\n")
	}
	return h
}

// statWalk computes the stat digest of the tree at root, in depth-first
// order with names sorted (the treesum index's order), and for a linked
// tree returns its files' lines. The directories are read on all CPUs
// (package parwalk), each entry looked at with one fstatat relative to its
// directory (and listxattrat for a linked tree's files).
func statWalk(ctx context.Context, root string, linked bool) (string, []statRec, error) {
	g := newStatDigester(root, linked)
	err := parwalk.Walk(ctx, root, 2*runtime.GOMAXPROCS(0), func(ctx context.Context, d *parwalk.Dir) ([]string, error) {
		fd := int(d.File.Fd())
		sts := make([]unix.Stat_t, len(d.Names))
		var descend []string
		for i, name := range d.Names {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if err := unix.Fstatat(fd, name, &sts[i], unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return nil, err
			}
			if sts[i].Mode&unix.S_IFMT == unix.S_IFDIR {
				descend = append(descend, name)
			}
		}
		return descend, g.dir(ctx, fd, d.Rel, d.Names, sts)
	})
	if err != nil {
		return "", nil, fmt.Errorf("store: stat digest of %s: %w", root, err)
	}
	return g.sum()
}

// statDigester makes a stat digest out of the directories of a walk over
// every entry of a tree, each handed over with its entries' lstat results,
// in any order and from any goroutine: statWalk's own walk, or a hardlink
// copy's ([treecopy.Options.Visit]), which then checks its base on the way.
// The lines are hashed in the treesum index's order once the walk is done.
type statDigester struct {
	root   string
	linked bool
	mu     sync.Mutex
	dirs   map[string][]statEntry // a directory's rel -> its entries, in name order
}

type statEntry struct {
	rel  string
	line []byte
	typ  uint32
}

func newStatDigester(root string, linked bool) *statDigester {
	return &statDigester{root: root, linked: linked, dirs: map[string][]statEntry{}}
}

// dir adds the entries of the directory rel ("." for the root), open as
// dirfd: names sorted, sts their lstat results.
func (g *statDigester) dir(ctx context.Context, dirfd int, rel string, names []string, sts []unix.Stat_t) error {
	dir := filepath.Join(g.root, filepath.FromSlash(rel))
	entries := make([]statEntry, len(names))
	for i, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		erel := path.Join(rel, name)
		line, err := statLineAt(dirfd, dir, name, erel, &sts[i], g.linked)
		if err != nil {
			return err
		}
		entries[i] = statEntry{erel, line, sts[i].Mode & unix.S_IFMT}
	}
	g.mu.Lock()
	g.dirs[rel] = entries
	g.mu.Unlock()
	return nil
}

// sum returns the digest of what the walk handed over and, for a linked
// tree, its files' lines.
func (g *statDigester) sum() (string, []statRec, error) {
	var rootSt unix.Stat_t
	if err := unix.Lstat(g.root, &rootSt); err != nil {
		return "", nil, fmt.Errorf("store: stat digest of %s: %w", g.root, err)
	}
	rootLine, err := statLine(g.root, "", &rootSt, g.linked)
	if err != nil {
		return "", nil, fmt.Errorf("store: stat digest of %s: %w", g.root, err)
	}
	h := newStatHash(g.linked)
	h.Write(rootLine)
	var files []statRec
	var emit func(rel string)
	emit = func(rel string) {
		for _, e := range g.dirs[rel] {
			h.Write(e.line)
			switch {
			case e.typ == unix.S_IFDIR:
				emit(e.rel)
			case g.linked && e.typ == unix.S_IFREG:
				files = append(files, statRec{e.rel, e.line})
			}
		}
	}
	emit(".")
	return hex.EncodeToString(h.Sum(nil)), files, nil
}

// fileLines returns the digest lines of the regular files of tree, a tree
// linked from objects/<baseSum> and hashed into ix by treesum.Update, in
// ix's order, and where they came from: the lines of the files ix took
// over from the base's index unchanged are the base's (the same inodes:
// same mode, owner, size, mtime, xattrs), the others are looked at. ok is
// false when the base has no lines to take. A file's line does not depend
// on where the tree is, so this runs before the commit's rename and
// syncfs, which then flush it.
func (s *Store) fileLines(ctx context.Context, tree, baseSum string, ix *treesum.Index) ([]statRec, *fileLinesFrom, bool, error) {
	base, depth, err := s.readStatFiles(baseSum)
	if err != nil {
		return nil, nil, false, nil
	}
	// ord: a base index position's place among the base's files, whose
	// lines are in that order.
	var ord []int32
	if prev := ix.Base(); prev != nil {
		ord = make([]int32, 0, prev.Len())
		k := int32(0)
		_ = prev.Walk(func(_ string, typ byte, _ int) error {
			if typ != 'f' {
				ord = append(ord, -1)
				return nil
			}
			ord = append(ord, k)
			k++
			return nil
		})
	}
	from := &fileLinesFrom{base: baseSum, depth: depth}
	files := make([]statRec, 0, len(base))
	err = ix.Walk(func(rel string, typ byte, at int) error {
		if typ != 'f' {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if at >= 0 && at < len(ord) {
			if k := int(ord[at]); k >= 0 && k < len(base) && base[k].path == rel {
				files = append(files, statRec{rel, base[k].line})
				if n := len(from.ops) - 1; n >= 0 && from.ops[n].Rec == nil && from.ops[n].From+from.ops[n].N == k {
					from.ops[n].N++
				} else {
					from.ops = append(from.ops, reclist.Op{From: k, N: 1})
				}
				return nil
			}
		}
		p := filepath.Join(tree, filepath.FromSlash(rel))
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		line, err := statLine(p, rel, &st, true)
		if err != nil {
			return err
		}
		files = append(files, statRec{rel, line})
		from.ops = append(from.ops, reclist.Op{Rec: files[len(files)-1].record()})
		from.own++
		return nil
	})
	if err != nil {
		return nil, nil, false, fmt.Errorf("store: stat digest of %s: %w", tree, err)
	}
	return files, from, true, nil
}

// statFromLines is statWalk of the linked objects/<sum>, whose index is ix
// and whose files' lines fileLines made: only the other entries (their
// ctimes count, and the rename changed the root's) are looked at.
func (s *Store) statFromLines(ctx context.Context, sum string, ix *treesum.Index, files []statRec) (string, error) {
	root := s.objectPath(sum)
	// lines: every entry's line in ix's order, the files' from files; the
	// others are looked at on all CPUs, as statWalk does.
	lines := make([][]byte, 0, ix.Len())
	var others []int
	var rels []string
	next := 0
	err := ix.Walk(func(rel string, typ byte, _ int) error {
		if typ == 'f' {
			if next >= len(files) || files[next].path != rel {
				return fmt.Errorf("file lines out of step at %q", rel)
			}
			lines = append(lines, files[next].line)
			next++
			return nil
		}
		others = append(others, len(lines))
		rels = append(rels, rel)
		lines = append(lines, nil)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("store: stat digest of %s: %w", root, err)
	}
	g, gctx := errgroup.WithContext(ctx)
	workers := 2 * runtime.GOMAXPROCS(0)
	for w := range workers {
		g.Go(func() error {
			for i := w; i < len(others); i += workers {
				if err := gctx.Err(); err != nil {
					return err
				}
				p := filepath.Join(root, filepath.FromSlash(rels[i]))
				var st unix.Stat_t
				if err := unix.Lstat(p, &st); err != nil {
					return err
				}
				line, err := statLine(p, rels[i], &st, true)
				if err != nil {
					return err
				}
				lines[others[i]] = line
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return "", fmt.Errorf("store: stat digest of %s: %w", root, err)
	}
	h := newStatHash(true)
	for _, l := range lines {
		h.Write(l)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// writeIndexFile replaces file with data by rename, so that a reader sees
// an old or a new version, never half of one. It is not synced: losing an
// index file costs one full check or hash.
func writeIndexFile(file string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(file), filepath.Base(file)+".tmp*")
	if err != nil {
		return fmt.Errorf("store: index: %w", err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), file)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("store: index: %w", err)
	}
	return nil
}

// linked reports whether objects/<sum> is marked as sharing inodes with
// other objects (see statDigest).
func (s *Store) linked(sum string) bool {
	_, err := os.Lstat(filepath.Join(s.indexPath(sum), indexLinked))
	return err == nil
}

// markLinked marks objects/<sum> as sharing inodes, before a hardlink tree
// is made from it, and records its stat digest in the linked form. The
// caller holds the object and verified it when it took it.
func (s *Store) markLinked(ctx context.Context, sum string) error {
	if s.linked(sum) {
		return nil
	}
	if err := os.MkdirAll(s.indexPath(sum), 0o700); err != nil {
		return fmt.Errorf("store: index: %w", err)
	}
	if err := os.WriteFile(filepath.Join(s.indexPath(sum), indexLinked), nil, 0o600); err != nil {
		return fmt.Errorf("store: index: %w", err)
	}
	return s.recordStat(ctx, sum)
}

// recordStat writes the stat digest of objects/<sum> to its index, and
// for a linked object its files' lines. The files are replaced by rename
// and not synced: losing them costs one full check.
func (s *Store) recordStat(ctx context.Context, sum string) error {
	linked := s.linked(sum)
	d, files, err := statWalk(ctx, s.objectPath(sum), linked)
	if err != nil {
		return err
	}
	return s.writeStat(sum, d, files, linked)
}

func (s *Store) writeStat(sum, digest string, files []statRec, linked bool) error {
	dir := s.indexPath(sum)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("store: index: %w", err)
	}
	if linked {
		// Lines first: stat is what says they belong to the object.
		if err := s.writeStatFiles(sum, files, nil); err != nil {
			return err
		}
	}
	return writeIndexFile(filepath.Join(dir, indexStat), []byte(digest))
}

// recordRef notes that id is committed to objects/<sum>, durably: the
// caller points refs/<id> at the object only afterwards, so after a crash
// a record may lack its ref, never the other way round.
func (s *Store) recordRef(sum, id string) error {
	dir := filepath.Join(s.indexPath(sum), indexRefs)
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		if err := s.adoptRefs(sum); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(filepath.Join(dir, id), os.O_WRONLY|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("store: index: %w", err)
	}
	f.Close()
	d, err := openDir(dir)
	if err != nil {
		return fmt.Errorf("store: index: %w", err)
	}
	defer d.Close()
	if err := unix.Fsync(int(d.Fd())); err != nil {
		return fmt.Errorf("store: index: fsync %s: %w", dir, err)
	}
	return nil
}

// adoptRefs starts the ref records of an object that has none (made by a
// kiln without the index, or a crash before its first record) with the refs
// pointing at it now: trust on first use.
func (s *Store) adoptRefs(sum string) error {
	dir := filepath.Join(s.indexPath(sum), indexRefs)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("store: index: %w", err)
	}
	refs, err := s.Refs()
	if err != nil {
		return err
	}
	for id, target := range refs {
		if target != sum {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, id), nil, 0o600); err != nil {
			return fmt.Errorf("store: index: %w", err)
		}
	}
	return nil
}

// refRecorded reports whether id was committed to objects/<sum>. Without
// any records for the object it says yes, and adopts the current refs if
// asked (fsck without repair only looks).
func (s *Store) refRecorded(sum, id string, adopt bool) (bool, error) {
	dir := filepath.Join(s.indexPath(sum), indexRefs)
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		if !adopt {
			return true, nil
		}
		return true, s.adoptRefs(sum)
	}
	_, err := os.Lstat(filepath.Join(dir, id))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: index: %w", err)
	}
	return true, nil
}

// verifyObject is the check on use of objects/<sum>: the stat digest, and
// the full treesum when that differs or is missing. The caller holds the
// object (a shared flock), so gc cannot remove it meanwhile.
func (s *Store) verifyObject(ctx context.Context, sum string) error {
	want, err := os.ReadFile(filepath.Join(s.indexPath(sum), indexStat))
	if err == nil {
		s.statChecks.Add(1)
		got, err := statDigest(ctx, s.objectPath(sum), s.linked(sum))
		if err != nil {
			return err
		}
		if got == string(want) {
			return nil
		}
	}
	s.fullChecks.Add(1)
	got, err := treesum.Sum(ctx, s.objectPath(sum))
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("%w: objects/%s cannot be hashed: %w", ErrDamaged, sum, err)
	}
	if got != sum {
		return fmt.Errorf("%w: the content of objects/%s was changed (its treesum is now %s)", ErrDamaged, sum, got)
	}
	return s.recordStat(ctx, sum)
}

// dropRefs removes every ref that points at sum, so no build finds a
// damaged object again, and returns their ids.
func (s *Store) dropRefs(sum string) ([]string, error) {
	refs, err := s.Refs()
	if err != nil {
		return nil, err
	}
	var ids []string
	for id, target := range refs {
		if target != sum {
			continue
		}
		if err := s.dropRef(id, sum); err != nil {
			return ids, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// dropRef removes refs/<id> if it still points at sum: a commit may have
// pointed it at a good object meanwhile.
func (s *Store) dropRef(id, sum string) error {
	if target, err := os.Readlink(s.refPath(id)); err == nil && sum != "" && target != refTarget(sum) {
		return nil
	}
	if err := os.Remove(s.refPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("store: removing ref %s: %w", id, err)
	}
	return nil
}

// quarantine moves objects/<sum> out of the store into a locked tmp/rm-*
// directory and deletes it there; a crash leaves only a leftover. The
// caller holds objects/ so that no lookup finds the object half deleted.
// The index goes too with dropIndex, which only a caller holding objects/
// exclusively may ask for: a concurrent commit may be recording a ref in it.
func (s *Store) quarantine(sum string, dropIndex bool) error {
	rm, err := newTempDir(s.tmpPath(), prefixRemove)
	if err != nil {
		return err
	}
	if err := os.Rename(s.objectPath(sum), filepath.Join(rm.path, "tree")); err != nil && !errors.Is(err, os.ErrNotExist) {
		rm.remove()
		return fmt.Errorf("store: removing damaged objects/%s: %w", sum, err)
	}
	if dropIndex {
		if err := fsmeta.RemoveAll(s.indexPath(sum)); err != nil {
			rm.remove()
			return fmt.Errorf("store: removing index of %s: %w", sum, err)
		}
	}
	return rm.remove()
}
