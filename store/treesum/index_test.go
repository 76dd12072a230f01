package treesum_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/store/treesum"
)

// randTree fills dir with a random tree of about n entries.
func randTree(t testing.TB, rng *rand.Rand, dir string, n int) {
	t.Helper()
	dirs := []string{dir}
	for i := range n {
		parent := dirs[rng.IntN(len(dirs))]
		name := filepath.Join(parent, fmt.Sprintf("e%d", i))
		switch rng.IntN(6) {
		case 0:
			must(t, os.Mkdir(name, 0o755))
			dirs = append(dirs, name)
		case 1:
			must(t, os.Symlink(fmt.Sprintf("target%d", rng.IntN(5)), name))
		default:
			must(t, os.WriteFile(name, []byte(fmt.Sprint(rng.IntN(4))), 0o644))
		}
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// entries lists the tree's paths relative to dir.
func entries(t testing.TB, dir string) (files, dirs []string) {
	t.Helper()
	must(t, filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			rel = ""
		}
		if fi.IsDir() {
			dirs = append(dirs, rel)
		} else {
			files = append(files, rel)
		}
		return nil
	}))
	return files, dirs
}

// randEdit changes the tree at random, as a stage would, and returns the
// changes hostfs would journal for it.
func randEdit(t testing.TB, rng *rand.Rand, dir string) []treesum.Change {
	t.Helper()
	files, dirs := entries(t, dir)
	pick := func(s []string) string { return s[rng.IntN(len(s))] }
	abs := func(rel string) string { return filepath.Join(dir, rel) }
	fresh := fmt.Sprintf("new%d", rng.Int())
	switch k := rng.IntN(9); {
	case k == 0 && len(files) > 0: // rewrite a file
		f := pick(files)
		if fi, _ := os.Lstat(abs(f)); fi.Mode().IsRegular() {
			must(t, os.WriteFile(abs(f), []byte(fmt.Sprint(rng.Int())), 0o644))
			return []treesum.Change{{Path: f}}
		}
	case k == 1 && len(files) > 0: // remove a file
		f := pick(files)
		must(t, os.Remove(abs(f)))
		return []treesum.Change{{Path: f, Subtree: true}}
	case k == 2: // create a file
		p := filepath.Join(pick(dirs), fresh)
		must(t, os.WriteFile(abs(p), []byte("n"), 0o600))
		return []treesum.Change{{Path: p, Subtree: true}}
	case k == 3: // make a directory with a file in it
		p := filepath.Join(pick(dirs), fresh)
		must(t, os.Mkdir(abs(p), 0o700))
		must(t, os.WriteFile(abs(filepath.Join(p, "x")), nil, 0o644))
		return []treesum.Change{{Path: p, Subtree: true}, {Path: filepath.Join(p, "x"), Subtree: true}}
	case k == 4 && len(dirs) > 1: // remove a directory's subtree
		d := pick(dirs[1:])
		must(t, os.RemoveAll(abs(d)))
		return []treesum.Change{{Path: d, Subtree: true}}
	case k == 5 && len(dirs) > 1: // rename a directory elsewhere
		d := pick(dirs[1:])
		to := filepath.Join(pick(dirs), fresh)
		if err := os.Rename(abs(d), abs(to)); err != nil {
			return nil // into itself
		}
		return []treesum.Change{{Path: d, Subtree: true}, {Path: to, Subtree: true}}
	case k == 6: // chmod anything, the root included
		all := append(files, dirs...)
		p := pick(all)
		if fi, _ := os.Lstat(abs(p)); fi.Mode()&os.ModeSymlink == 0 {
			must(t, os.Chmod(abs(p), os.FileMode(0o700+rng.IntN(0o70))))
			return []treesum.Change{{Path: p}}
		}
	case k == 7 && len(files) > 1: // rename a file over another
		a, b := pick(files), pick(files)
		if a != b {
			must(t, os.Rename(abs(a), abs(b)))
			return []treesum.Change{{Path: a, Subtree: true}, {Path: b, Subtree: true}}
		}
	case k == 8: // an xattr on a directory or file
		p := pick(append(files, dirs...))
		if fi, _ := os.Lstat(abs(p)); fi.Mode()&os.ModeSymlink == 0 {
			if err := unix.Lsetxattr(abs(p), "user.k", []byte(fmt.Sprint(rng.IntN(3))), 0); err == nil {
				return []treesum.Change{{Path: p}}
			}
		}
	}
	return nil
}

// TestUpdateAgreesWithSum (issue 14): on random trees after random edits,
// the incremental sum from the previous index and the journal of changes
// equals the full sum, step after step, and so does the index it makes,
// also when each step's index is stored as its difference from the last
// (a chain, compacted when it grows) and read back through the chain.
func TestUpdateAgreesWithSum(t *testing.T) {
	for seed := range uint64(12) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 14))
			dir := t.TempDir()
			randTree(t, rng, dir, 60)
			sum, ix, err := treesum.SumIndex(t.Context(), dir)
			must(t, err)
			if full, _ := treesum.Sum(t.Context(), dir); full != sum {
				t.Fatalf("SumIndex %s, Sum %s", sum, full)
			}
			// stored: each sum's index as written, as the store keeps them.
			stored := map[string][]byte{}
			var b bytes.Buffer
			_, _ = ix.WriteTo(&b)
			stored[sum] = b.Bytes()
			chain := func(base string) ([]byte, error) {
				if data, ok := stored[base]; ok {
					return data, nil
				}
				return nil, os.ErrNotExist
			}
			deltas := 0
			for step := range 25 {
				var changes []treesum.Change
				for range 1 + rng.IntN(4) {
					changes = append(changes, randEdit(t, rng, dir)...)
				}
				got, next, err := treesum.Update(t.Context(), dir, ix, changes)
				must(t, err)
				want, wantIx, err := treesum.SumIndex(t.Context(), dir)
				must(t, err)
				if got != want {
					t.Fatalf("step %d (changes %v): Update %s, full sum %s", step, changes, got, want)
				}
				var a, b bytes.Buffer
				_, _ = next.WriteTo(&a)
				_, _ = wantIx.WriteTo(&b)
				if !bytes.Equal(a.Bytes(), b.Bytes()) || !next.Same(wantIx) {
					t.Fatalf("step %d: Update's index differs from a full one", step)
				}
				// And it survives the disk, as a difference where one is
				// worth it.
				data := a.Bytes()
				if base, delta, _, ok := next.Delta(); ok {
					if base != sum {
						t.Fatalf("step %d: delta from %s, Update started from %s", step, base, sum)
					}
					data = delta
					deltas++
				}
				if _, ok := stored[got]; !ok {
					stored[got] = data
				}
				file := filepath.Join(t.TempDir(), "index")
				must(t, os.WriteFile(file, stored[got], 0o600))
				if ix, err = treesum.ReadIndex(file, got, chain); err != nil {
					t.Fatal(err)
				}
				if !ix.Same(wantIx) {
					t.Fatalf("step %d: index read back differs from a full one", step)
				}
				sum = got
			}
			if deltas == 0 {
				t.Error("no step stored a difference")
			}
		})
	}
}

// TestDeltaIndex: after a change of one file in a larger tree the index is
// stored as a small difference from its base's; it is refused without its
// base, with a damaged base, or for another sum; a long chain of them is
// stored whole again before it outgrows what a reader follows.
func TestDeltaIndex(t *testing.T) {
	dir := t.TempDir()
	for d := range 20 {
		sub := filepath.Join(dir, fmt.Sprintf("d%02d", d))
		must(t, os.Mkdir(sub, 0o755))
		for f := range 20 {
			must(t, os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%02d", f)), []byte{byte(f)}, 0o644))
		}
	}
	sum, ix, err := treesum.SumIndex(t.Context(), dir)
	must(t, err)
	var whole bytes.Buffer
	_, _ = ix.WriteTo(&whole)
	stored := map[string][]byte{sum: whole.Bytes()}
	chain := func(base string) ([]byte, error) {
		if data, ok := stored[base]; ok {
			return data, nil
		}
		return nil, os.ErrNotExist
	}
	file := filepath.Join(t.TempDir(), "index")
	depthWhole, bottom := 0, sum
	for step := range 20 {
		must(t, os.WriteFile(filepath.Join(dir, "d07", "f03"), []byte(fmt.Sprint(step)), 0o644))
		got, next, err := treesum.Update(t.Context(), dir, ix, []treesum.Change{{Path: "d07/f03"}})
		must(t, err)
		base, delta, _, ok := next.Delta()
		if !ok {
			// Stored whole: only when the chain would be too long.
			if step-depthWhole < 5 {
				t.Fatalf("step %d: no difference after %d of them", step, step-depthWhole)
			}
			depthWhole, bottom = step+1, got
			var b bytes.Buffer
			_, _ = next.WriteTo(&b)
			delta = b.Bytes()
		} else if base != sum || len(delta) > whole.Len()/10 {
			t.Fatalf("step %d: a difference of %d bytes from %s (whole: %d bytes, base %s)", step, len(delta), base, whole.Len(), sum)
		}
		stored[got] = delta
		must(t, os.WriteFile(file, delta, 0o600))
		if ix, err = treesum.ReadIndex(file, got, chain); err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		if ok {
			if _, err := treesum.ReadIndex(file, got, nil); err == nil {
				t.Fatalf("step %d: a difference read without its base", step)
			}
			if _, err := treesum.ReadIndex(file, sum, chain); err == nil {
				t.Fatalf("step %d: a difference accepted for its base's sum", step)
			}
			// Damage where the chain's whole index holds what no
			// difference replaced (the changed file is in d07).
			good := stored[bottom]
			bad := bytes.Clone(good)
			bad[len(bad)/5] ^= 1
			stored[bottom] = bad
			if _, err := treesum.ReadIndex(file, got, chain); err == nil {
				t.Fatalf("step %d: a difference accepted with a damaged base", step)
			}
			stored[bottom] = good
		}
		sum = got
	}
	if depthWhole == 0 {
		t.Error("the chain never went back to a whole index")
	}
}

// TestUpdateNeedsTheJournal: a change the journal does not name is not
// seen (the sum is the old one): the property above depends on hostfs
// journaling every change, which is what the store's tests check.
func TestUpdateNeedsTheJournal(t *testing.T) {
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "f"), []byte("a"), 0o644))
	sum, ix, err := treesum.SumIndex(t.Context(), dir)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "f"), []byte("b"), 0o644))
	got, _, err := treesum.Update(t.Context(), dir, ix, nil)
	must(t, err)
	if got != sum {
		t.Errorf("Update without changes re-read the tree: %s, was %s", got, sum)
	}
	got, _, err = treesum.Update(t.Context(), dir, ix, []treesum.Change{{Path: "f"}})
	must(t, err)
	if want, _ := treesum.Sum(t.Context(), dir); got != want {
		t.Errorf("Update with the change: %s, want %s", got, want)
	}
}

// TestReadIndexRefusesDamage: an index whose bytes were changed, or that
// belongs to another sum, is refused.
func TestReadIndexRefusesDamage(t *testing.T) {
	dir := t.TempDir()
	randTree(t, rand.New(rand.NewPCG(1, 2)), dir, 30)
	sum, ix, err := treesum.SumIndex(t.Context(), dir)
	must(t, err)
	var b bytes.Buffer
	_, _ = ix.WriteTo(&b)
	file := filepath.Join(t.TempDir(), "index")
	must(t, os.WriteFile(file, b.Bytes(), 0o600))
	if _, err := treesum.ReadIndex(file, sum, nil); err != nil {
		t.Fatalf("good index refused: %v", err)
	}
	for i := len("kiln-treesum-index-v2\n"); i < b.Len(); i += 7 {
		bad := bytes.Clone(b.Bytes())
		bad[i] ^= 0x20
		must(t, os.WriteFile(file, bad, 0o600))
		if _, err := treesum.ReadIndex(file, sum, nil); err == nil {
			t.Fatalf("index with byte %d flipped accepted", i)
		}
	}
	must(t, os.WriteFile(file, b.Bytes(), 0o600))
	if _, err := treesum.ReadIndex(file, "00"+sum[2:], nil); err == nil {
		t.Error("index accepted for another sum")
	}
}

// FuzzReadIndex: no input crashes ReadIndex or is accepted for a sum it
// does not hash to.
func FuzzReadIndex(f *testing.F) {
	dir := f.TempDir()
	must(f, os.WriteFile(filepath.Join(dir, "a"), []byte("x"), 0o644))
	must(f, os.Mkdir(filepath.Join(dir, "d"), 0o755))
	sum, ix, err := treesum.SumIndex(f.Context(), dir)
	must(f, err)
	var b bytes.Buffer
	_, _ = ix.WriteTo(&b)
	f.Add(b.Bytes())
	f.Add([]byte("kiln-treesum-index-v1\n\x00\x00\x00\x01"))
	f.Add([]byte("kiln-treesum-index-v2\nW\x00\x00\x00\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file := filepath.Join(t.TempDir(), "index")
		must(t, os.WriteFile(file, data, 0o600))
		got, err := treesum.ReadIndex(file, sum, nil)
		if err != nil {
			return
		}
		var out bytes.Buffer
		_, _ = got.WriteTo(&out)
		if !bytes.Equal(out.Bytes(), b.Bytes()) {
			t.Errorf("an index other than the tree's accepted for its sum")
		}
	})
}

// TestV1IndexIsNoBase: an index of the older whole form (v1) is still
// read, and an index made from it is never stored as a difference from
// it, which readers could not follow.
func TestV1IndexIsNoBase(t *testing.T) {
	dir := t.TempDir()
	randTree(t, rand.New(rand.NewPCG(3, 4)), dir, 30)
	sum, ix, err := treesum.SumIndex(t.Context(), dir)
	must(t, err)
	var b bytes.Buffer
	_, _ = ix.WriteTo(&b)
	// v2 whole: magic, 'W', count, then each record length-prefixed; v1:
	// magic, count, the records as they are.
	v2 := b.Bytes()[len("kiln-treesum-index-v2\n")+1:]
	v1 := append([]byte("kiln-treesum-index-v1\n"), v2[:4]...)
	for rest := v2[4:]; len(rest) > 0; {
		n := int(rest[0])<<24 | int(rest[1])<<16 | int(rest[2])<<8 | int(rest[3])
		v1 = append(v1, rest[4:4+n]...)
		rest = rest[4+n:]
	}
	file := filepath.Join(t.TempDir(), "index")
	must(t, os.WriteFile(file, v1, 0o600))
	old, err := treesum.ReadIndex(file, sum, nil)
	must(t, err)
	if !old.Same(ix) {
		t.Fatal("the v1 index reads as another")
	}
	must(t, os.WriteFile(filepath.Join(dir, "new"), nil, 0o644))
	_, next, err := treesum.Update(t.Context(), dir, old, []treesum.Change{{Path: "new", Subtree: true}})
	must(t, err)
	if _, _, _, ok := next.Delta(); ok {
		t.Error("a difference from a v1 index offered")
	}
}
