package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/internal/fsmeta"
	"github.com/kilnbuild/kiln/store/treesum"
)

// Problem is one inconsistency found by Fsck.
type Problem struct {
	Path     string // relative to the store root
	What     string
	Repaired bool // removed by Fsck with Repair
}

func (p Problem) String() string {
	if p.Repaired {
		return p.Path + ": " + p.What + " (repaired)"
	}
	return p.Path + ": " + p.What
}

// FsckReport is what Fsck checked and found.
type FsckReport struct {
	Objects, Refs, Tmp int // entries checked
	Problems           []Problem
	// Leftovers are the entries of tmp/ that no live process holds: what a
	// crash or a kill leaves behind. They are expected and not problems;
	// the next Open (or Fsck with CleanLeftovers) removes them. Entries a
	// live process holds are neither.
	Leftovers []string
	Cleaned   int // leftovers removed (CleanLeftovers)
}

// Unrepaired counts the problems still there after Fsck.
func (r *FsckReport) Unrepaired() int {
	n := 0
	for _, p := range r.Problems {
		if !p.Repaired {
			n++
		}
	}
	return n
}

// FsckOption configures Fsck.
type FsckOption func(*fsckConfig)

type fsckConfig struct{ repair, clean bool }

// Repair makes Fsck remove what is damaged: a damaged object and every ref
// that points at it, a ref that is dangling, malformed or points at an
// object it was never committed to. The next build rebuilds what they
// named. Repairs hold objects/ exclusively, like gc.
func Repair() FsckOption { return func(c *fsckConfig) { c.repair = true } }

// CleanLeftovers makes Fsck remove the leftovers in tmp/ that no live
// process holds (what Open does unless WithoutRecovery).
func CleanLeftovers() FsckOption { return func(c *fsckConfig) { c.clean = true } }

// Fsck checks the store: every object's treesum matches its name (which
// covers content, modes, owners and xattrs), every ref points at an existing
// object it was committed to, and the root holds nothing unknown. tmp/
// entries without a live owner are listed as Leftovers, not problems. The
// check holds objects/ shared, so gc waits for it but commits do not.
func (s *Store) Fsck(ctx context.Context, opts ...FsckOption) (*FsckReport, error) {
	var cfg fsckConfig
	for _, o := range opts {
		o(&cfg)
	}
	r, damaged, badRefs, err := s.fsckCheck(ctx, cfg.repair)
	if err != nil {
		return nil, err
	}
	if cfg.clean {
		if r.Cleaned, err = cleanTmp(s.tmpPath()); err != nil {
			return r, err
		}
	}
	if cfg.repair {
		if err := s.fsckRepair(ctx, r, damaged, badRefs); err != nil {
			return r, err
		}
	}
	return r, nil
}

// fsckCheck finds the problems; it returns, by index into r.Problems, the
// damaged objects' treesums and the bad refs' ids, for repair.
func (s *Store) fsckCheck(ctx context.Context, repair bool) (r *FsckReport, damaged, badRefs map[int]string, err error) {
	release, err := s.lockObjects(ctx, unix.LOCK_SH)
	if err != nil {
		return nil, nil, nil, err
	}
	defer release()
	r = &FsckReport{}
	damaged, badRefs = map[int]string{}, map[int]string{}
	add := func(path, format string, args ...any) int {
		r.Problems = append(r.Problems, Problem{Path: path, What: fmt.Sprintf(format, args...)})
		return len(r.Problems) - 1
	}
	fail := func(err error) (*FsckReport, map[int]string, map[int]string, error) {
		return nil, nil, nil, fmt.Errorf("store: fsck: %w", err)
	}

	root, err := os.ReadDir(s.root)
	if err != nil {
		return fail(err)
	}
	for _, e := range root {
		known := slices.Contains([]string{dirObjects, dirRefs, dirTmp, dirIndex}, e.Name()) || slices.Contains(KnownDirs, e.Name())
		if !known || !e.IsDir() {
			add(e.Name(), "unexpected entry at the store root")
		}
	}

	refs, err := s.Refs()
	if err != nil {
		return fail(err)
	}
	objects, err := os.ReadDir(filepath.Join(s.root, dirObjects))
	if err != nil {
		return fail(err)
	}
	bad := map[string]bool{}
	for _, e := range objects {
		r.Objects++
		rel := filepath.Join(dirObjects, e.Name())
		if !validSum.MatchString(e.Name()) || !e.IsDir() {
			add(rel, "not an object: objects/ holds only directories named by their treesum")
			continue
		}
		sum, ix, err := treesum.SumIndex(ctx, s.objectPath(e.Name()))
		if ctx.Err() != nil {
			return nil, nil, nil, ctx.Err()
		}
		var i int
		switch {
		case err != nil:
			i = add(rel, "damaged: cannot compute its treesum: %v", err)
		case sum != e.Name():
			i = add(rel, "damaged: content, modes, owners or xattrs were changed (its treesum is now %s)", sum)
		default:
			if err := s.checkTreeIndex(sum, ix); err != nil {
				// The tree is good; its index would mislead the next
				// incremental commit. Removing it costs one full hash.
				j := add(filepath.Join(dirIndex, sum, indexTree), "bad index: %v", err)
				if repair {
					r.Problems[j].Repaired = os.Remove(s.treeIndexPath(sum)) == nil
				}
			}
			continue
		}
		if ids := refsTo(refs, e.Name()); len(ids) > 0 {
			r.Problems[i].What += "; refs to it: " + strings.Join(ids, " ")
		}
		damaged[i] = e.Name()
		bad[e.Name()] = true
	}

	entries, err := os.ReadDir(filepath.Join(s.root, dirRefs))
	if err != nil {
		return fail(err)
	}
	for _, e := range entries {
		r.Refs++
		id := e.Name()
		what, err := s.refProblem(id, bad, repair)
		if err != nil {
			return fail(err)
		}
		if what != "" {
			badRefs[add(filepath.Join(dirRefs, id), "%s", what)] = id
		}
	}

	tmp, err := os.ReadDir(s.tmpPath())
	if err != nil {
		return fail(err)
	}
	for _, e := range tmp {
		r.Tmp++
		rel := filepath.Join(dirTmp, e.Name())
		if !e.IsDir() {
			r.Leftovers = append(r.Leftovers, rel) // only locked directories are made in tmp/
			continue
		}
		f, err := openDir(filepath.Join(s.tmpPath(), e.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue // finished meanwhile
		}
		if err != nil {
			add(rel, "cannot open: %v", err)
			continue
		}
		free, err := tryLock(f, unix.LOCK_EX)
		f.Close() // closing drops the lock fsck may have taken
		if err != nil {
			add(rel, "cannot lock: %v", err)
		} else if free {
			r.Leftovers = append(r.Leftovers, rel)
		}
	}
	return r, damaged, badRefs, nil
}

// refProblem says what is wrong with refs/<id> ("" for nothing). A ref to
// one of the damaged objects is left to the object's problem. adopt starts
// the ref records of an object that has none (see refRecorded).
func (s *Store) refProblem(id string, damaged map[string]bool, adopt bool) (string, error) {
	target, err := os.Readlink(s.refPath(id))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil // removed meanwhile
	}
	if err != nil {
		return "not a symlink", nil
	}
	sum := filepath.Base(target)
	if target != refTarget(sum) || !validSum.MatchString(sum) || checkID(id) != nil {
		return fmt.Sprintf("points at %q, not at ../objects/<treesum>", target), nil
	}
	if _, err := os.Lstat(s.objectPath(sum)); err != nil {
		return fmt.Sprintf("dangling: object %s does not exist", sum), nil
	}
	if damaged[sum] {
		return "", nil
	}
	ok, err := s.refRecorded(sum, id, adopt)
	if err != nil || ok {
		return "", err
	}
	return fmt.Sprintf("points at object %s, which it was never committed to", sum), nil
}

func refsTo(refs map[string]string, sum string) []string {
	var ids []string
	for id, target := range refs {
		if target == sum {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// fsckRepair removes what fsckCheck found damaged, holding objects/
// exclusively so that no commit or lookup runs meanwhile. A damaged object
// is hashed again first: a commit may have replaced it between the check
// and the repair. An object another process holds keeps its tree (its
// holder copies or reads it; gc removes it later), but loses its refs.
func (s *Store) fsckRepair(ctx context.Context, r *FsckReport, damaged, badRefs map[int]string) error {
	release, err := s.lockObjects(ctx, unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer release()
	for i, sum := range damaged {
		got, err := treesum.Sum(ctx, s.objectPath(sum))
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, os.ErrNotExist) || (err == nil && got == sum) {
			r.Problems[i].Repaired = true // gone or replaced meanwhile
			continue
		}
		if _, err := s.dropRefs(sum); err != nil {
			return err
		}
		f, err := openDir(s.objectPath(sum))
		if err != nil {
			return fmt.Errorf("store: fsck: %w", err)
		}
		free, err := tryLock(f, unix.LOCK_EX)
		if err == nil && free {
			err = s.quarantine(sum, true)
			r.Problems[i].Repaired = err == nil
		} else if err == nil {
			r.Problems[i].What += "; in use by a running build: its refs were removed, gc removes it once it is free"
			r.Problems[i].Repaired = true
		}
		f.Close()
		if err != nil {
			return err
		}
	}
	for i, id := range badRefs {
		// A commit may have pointed the ref at a good object meanwhile.
		what, err := s.refProblem(id, nil, true)
		if err != nil {
			return err
		}
		if what != "" {
			if err := s.dropRef(id, ""); err != nil {
				return err
			}
		}
		r.Problems[i].Repaired = true
	}
	// Index entries of objects gc removed: a later commit of the same
	// content starts them over, but they would keep ref records that no
	// longer mean anything.
	index, err := os.ReadDir(filepath.Join(s.root, dirIndex))
	if err != nil {
		return fmt.Errorf("store: fsck: %w", err)
	}
	for _, e := range index {
		if _, err := os.Lstat(s.objectPath(e.Name())); errors.Is(err, os.ErrNotExist) {
			if err := fsmeta.RemoveAll(filepath.Join(s.root, dirIndex, e.Name())); err != nil {
				return fmt.Errorf("store: fsck: %w", err)
			}
		}
	}
	return nil
}
