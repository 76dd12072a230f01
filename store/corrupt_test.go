package store_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/store"
	"github.com/kilnbuild/kiln/store/storetest"
	"github.com/kilnbuild/kiln/store/treesum"
)

// damage is one kind of corruption of a store holding a (tree "a") and b
// (tree "b"); sumA and sumB are their objects.
type damage struct {
	name   string
	needs  func() bool
	apply  func(t *testing.T, root, sumA, sumB string) error
	onUse  error // what using a gives afterwards
	fsckOK bool  // not damage at all: fsck must stay clean
}

func fillA(dir string) {
	os.WriteFile(filepath.Join(dir, "f"), []byte("original"), 0o644)
	os.Chmod(filepath.Join(dir, "f"), 0o644)
}

func fillB(dir string) {
	os.WriteFile(filepath.Join(dir, "g"), []byte("other"), 0o644)
}

var damages = []damage{
	{name: "content", apply: func(t *testing.T, root, a, _ string) error {
		return os.WriteFile(filepath.Join(root, "objects", a, "f"), []byte("tampered"), 0o644)
	}, onUse: store.ErrDamaged},
	{name: "content same size and mtime", apply: func(t *testing.T, root, a, _ string) error {
		p := filepath.Join(root, "objects", a, "f")
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte("Original"), 0o644); err != nil {
			return err
		}
		return unix.UtimesNano(p, []unix.Timespec{st.Atim, st.Mtim})
	}, onUse: store.ErrDamaged},
	{name: "mode", apply: func(t *testing.T, root, a, _ string) error {
		return os.Chmod(filepath.Join(root, "objects", a, "f"), 0o4755)
	}, onUse: store.ErrDamaged},
	{name: "owner", needs: storetest.CanChown, apply: func(t *testing.T, root, a, _ string) error {
		return os.Lchown(filepath.Join(root, "objects", a, "f"), 1234, 1234)
	}, onUse: store.ErrDamaged},
	{name: "xattr", apply: func(t *testing.T, root, a, _ string) error {
		return unix.Lsetxattr(filepath.Join(root, "objects", a, "f"), "user.planted", []byte("x"), 0)
	}, onUse: store.ErrDamaged},
	{name: "entry added", apply: func(t *testing.T, root, a, _ string) error {
		return os.WriteFile(filepath.Join(root, "objects", a, "planted"), nil, 0o644)
	}, onUse: store.ErrDamaged},
	{name: "ref to the wrong object", apply: func(t *testing.T, root, _, b string) error {
		ref := filepath.Join(root, "refs", "a")
		if err := os.Remove(ref); err != nil {
			return err
		}
		return os.Symlink("../objects/"+b, ref)
	}, onUse: store.ErrDamaged},
	{name: "ref dangling", apply: func(t *testing.T, root, _, _ string) error {
		ref := filepath.Join(root, "refs", "a")
		if err := os.Remove(ref); err != nil {
			return err
		}
		return os.Symlink("../objects/"+strings.Repeat("0", 64), ref)
	}, onUse: store.ErrNotFound},
	{name: "ref malformed", apply: func(t *testing.T, root, _, _ string) error {
		ref := filepath.Join(root, "refs", "a")
		if err := os.Remove(ref); err != nil {
			return err
		}
		return os.Symlink("/etc", ref)
	}, onUse: errors.New("not into objects/")},
	// Not damage: only what the treesum leaves out changed. The check on
	// use hashes once, finds the content intact and records it again.
	{name: "mtime only", apply: func(t *testing.T, root, a, _ string) error {
		return os.Chtimes(filepath.Join(root, "objects", a, "f"), time.Unix(1, 0), time.Unix(1, 0))
	}, fsckOK: true},
}

// damagedStore commits a and b, applies d and returns the store and the
// objects' treesums.
func damagedStore(t *testing.T, d damage) (*store.Store, string, string) {
	t.Helper()
	if d.needs != nil && !d.needs() {
		t.Skip("needs real root for this kind of damage")
	}
	st, err := store.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sumA := commitTree(t, st, "a", fillA)
	sumB := commitTree(t, st, "b", fillB)
	if err := d.apply(t, st.Root(), sumA, sumB); err != nil {
		t.Fatal(err)
	}
	return st, sumA, sumB
}

func isErr(err, want error) bool {
	if want == nil {
		return err == nil
	}
	if errors.Is(err, want) {
		return true
	}
	return err != nil && !errors.Is(want, store.ErrDamaged) && !errors.Is(want, store.ErrNotFound) && strings.Contains(err.Error(), want.Error())
}

// checkServesOriginal rebuilds a (commits the original tree again) and
// checks that Get and Export serve the original tree (treesum sumA), not
// the damage.
func checkServesOriginal(t *testing.T, st *store.Store, sumA string) {
	t.Helper()
	if sum := commitTree(t, st, "a", fillA); sum != sumA {
		t.Fatalf("rebuild has treesum %s, want %s", sum, sumA)
	}
	r, err := st.Get(t.Context(), "a")
	if err != nil {
		t.Fatalf("Get after rebuild: %v", err)
	}
	got, err := treesum.Sum(t.Context(), r.Path())
	r.Close()
	if err != nil || got != sumA {
		t.Errorf("Get serves a tree with treesum %s (%v) after rebuild, want %s", got, err, sumA)
	}
	dst := filepath.Join(t.TempDir(), "export")
	if err := st.Export(t.Context(), "a", dst); err != nil {
		t.Fatalf("Export after rebuild: %v", err)
	}
	if got, err := treesum.Sum(t.Context(), dst); err != nil || got != sumA {
		t.Errorf("Export serves a tree with treesum %s (%v) after rebuild, want %s", got, err, sumA)
	}
	storetest.AssertClean(t, st)
}

// TestCorruptionFsck is the corruption suite (issue 10 item 17): each kind
// of damage is found by fsck (exactly one problem), removed by repair, and
// after the rebuild Get and Export serve the original.
func TestCorruptionFsck(t *testing.T) {
	for _, d := range damages {
		t.Run(d.name, func(t *testing.T) {
			st, sumA, _ := damagedStore(t, d)
			rep, err := st.Fsck(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			want := 1
			if d.fsckOK {
				want = 0
			}
			if len(rep.Problems) != want {
				t.Fatalf("fsck found %d problems, want %d: %v", len(rep.Problems), want, rep.Problems)
			}
			rep, err = st.Fsck(t.Context(), store.Repair())
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Problems) != want || rep.Unrepaired() != 0 {
				t.Fatalf("fsck --repair: %d problems, %d unrepaired: %v", len(rep.Problems), rep.Unrepaired(), rep.Problems)
			}
			if !d.fsckOK {
				if _, err := st.Get(t.Context(), "a"); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("Get after repair = %v, want ErrNotFound (rebuild it)", err)
				}
			}
			if st.Contains("b") != true {
				t.Error("repair removed the intact object b")
			}
			checkServesOriginal(t, st, sumA)
		})
	}
}

// TestCorruptionOnUse (issue 10 item 17): without fsck, using a damaged
// object (Get, Export, New on it as a base) fails with ErrDamaged instead
// of serving it, drops its refs so the next build rebuilds it, and the
// rebuild replaces the damaged copy.
func TestCorruptionOnUse(t *testing.T) {
	for _, d := range damages {
		t.Run(d.name, func(t *testing.T) {
			for _, use := range []struct {
				name string
				fn   func(st *store.Store) error
			}{
				{"Get", func(st *store.Store) error {
					r, err := st.Get(t.Context(), "a")
					if err == nil {
						r.Close()
					}
					return err
				}},
				{"Export", func(st *store.Store) error {
					return st.Export(t.Context(), "a", filepath.Join(t.TempDir(), "x"))
				}},
				{"Verify", func(st *store.Store) error { return st.Verify(t.Context(), "a") }},
				{"New", func(st *store.Store) error {
					o, err := st.New(t.Context(), "a")
					if err == nil {
						o.Close()
					}
					return err
				}},
				{"NewHostfs", newHostfsA(t)},
			} {
				t.Run(use.name, func(t *testing.T) {
					st, sumA, _ := damagedStore(t, d)
					if err := use.fn(st); !isErr(err, d.onUse) {
						t.Fatalf("%s on damaged a = %v, want %v", use.name, err, d.onUse)
					}
					if d.onUse != nil && st.Contains("a") {
						t.Errorf("a is still found after its damage was detected")
					}
					if d.fsckOK {
						// Hashed once, recorded again: the next use is cheap.
						n := store.FullChecks(st)
						if err := use.fn(st); err != nil {
							t.Fatal(err)
						}
						if store.FullChecks(st) != n {
							t.Errorf("second use hashed the whole tree again")
						}
					}
					checkServesOriginal(t, st, sumA)
				})
			}
		})
	}
}

func newHostfsA(t *testing.T) func(st *store.Store) error {
	return func(st *store.Store) error {
		o, err := st.NewHostfs(t.Context(), "a")
		if err == nil {
			o.Close()
		}
		return err
	}
}

// TestCorruptionOnUseLinked: NewHostfs from a base that hardlink trees
// were made from checks it in the walk that links the new tree, and finds
// what the check of New finds, but for what only a shared file's ctime
// would show, which the check leaves to fsck for such objects (verify.go).
func TestCorruptionOnUseLinked(t *testing.T) {
	seenByFsckOnly := map[string]bool{"content same size and mtime": true}
	for _, d := range damages {
		t.Run(d.name, func(t *testing.T) {
			if d.needs != nil && !d.needs() {
				t.Skip("needs real root for this kind of damage")
			}
			st, err := store.Open(t.Context(), t.TempDir(), store.WithCopyMode(store.CopyHardlink))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			sumA := commitTree(t, st, "a", fillA)
			sumB := commitTree(t, st, "b", fillB)
			use := newHostfsA(t)
			if err := use(st); err != nil { // links a
				t.Fatal(err)
			}
			// Linked now, a is checked in the walk of the copy.
			walks := store.StatChecks(st)
			if err := use(st); err != nil {
				t.Fatal(err)
			}
			if n := store.StatChecks(st) - walks; n != 0 {
				t.Fatalf("NewHostfs from intact linked a walked it %d more times for its check", n)
			}
			checks := store.FullChecks(st)
			if err := d.apply(t, st.Root(), sumA, sumB); err != nil {
				t.Fatal(err)
			}
			want := d.onUse
			if seenByFsckOnly[d.name] {
				want = nil
			}
			if err := use(st); !isErr(err, want) {
				t.Fatalf("NewHostfs on damaged linked a = %v, want %v", err, want)
			}
			if want != nil && st.Contains("a") {
				t.Errorf("a is still found after its damage was detected")
			}
			if seenByFsckOnly[d.name] {
				if rep, err := st.Fsck(t.Context()); err != nil || len(rep.Problems) != 1 {
					t.Fatalf("fsck of the damage = %v, %v; want 1 problem", rep, err)
				}
				return
			}
			if d.fsckOK {
				if store.FullChecks(st) != checks+1 {
					t.Errorf("%d full checks, want the one that found a intact", store.FullChecks(st)-checks)
				}
				if err := use(st); err != nil {
					t.Fatal(err)
				}
				if store.FullChecks(st) != checks+1 {
					t.Errorf("second use hashed the whole tree again")
				}
			}
			checkServesOriginal(t, st, sumA)
		})
	}
}

// TestCheckOnUseIsCheap: the uses a build makes (base of a new object,
// Get, Export, commits) never hash a whole tree while nothing is damaged,
// on the default filesystem and with reflinks (FICLONE must not touch the
// source's ctime).
func TestCheckOnUseIsCheap(t *testing.T) {
	for _, tc := range []struct {
		name string
		dir  func(t *testing.T) string
		mode store.CopyMode
	}{{"plain", tempDir, store.CopyPlain}, {"reflink", xfsMount, store.CopyReflink}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.dir(t)
			st, err := store.Open(t.Context(), filepath.Join(dir, "store"), store.WithCopyMode(tc.mode))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			commitTree(t, st, "base", func(d string) { storetest.RichTree(t, d) })
			obj, err := st.New(t.Context(), "base")
			if err != nil {
				t.Fatal(err)
			}
			w, err := obj.Write(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			storetest.WriteFile(t, w.Path(), "more", "x")
			w.Close()
			if _, err := st.Commit(t.Context(), obj, "next"); err != nil {
				t.Fatal(err)
			}
			obj.Close()
			for _, id := range []string{"base", "next", "base"} {
				r, err := st.Get(t.Context(), id)
				if err != nil {
					t.Fatal(err)
				}
				r.Close()
				if err := st.Export(t.Context(), id, filepath.Join(dir, "export")); err != nil {
					t.Fatal(err)
				}
				if err := os.RemoveAll(filepath.Join(dir, "export")); err != nil {
					t.Fatal(err)
				}
			}
			if n := store.FullChecks(st); n != 0 {
				t.Errorf("%d uses hashed a whole tree", n)
			}
			storetest.AssertClean(t, st)
		})
	}
}

// TestFsckCrashLeftovers (issue 10 item 20): what a crash leaves in tmp/
// is listed as leftovers, not problems; cleaning removes it but never what
// a live process holds.
func TestFsckCrashLeftovers(t *testing.T) {
	st, err := store.Open(t.Context(), t.TempDir(), store.WithoutRecovery())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	commitTree(t, st, "a", fillA)
	tmp := filepath.Join(st.Root(), "tmp")
	if err := os.MkdirAll(filepath.Join(tmp, "obj-dead", "tree", "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "stray"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	live, err := st.NewTempDir("asm") // held by this process: a live build
	if err != nil {
		t.Fatal(err)
	}
	defer live.Remove()
	rep, err := st.Fsck(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 0 {
		t.Errorf("crash leftovers reported as problems: %v", rep.Problems)
	}
	if want := []string{"tmp/obj-dead", "tmp/stray"}; strings.Join(rep.Leftovers, " ") != strings.Join(want, " ") {
		t.Errorf("leftovers %v, want %v", rep.Leftovers, want)
	}
	if _, err := os.Stat(filepath.Join(tmp, "obj-dead")); err != nil {
		t.Errorf("fsck without cleaning removed a leftover: %v", err)
	}
	rep, err = st.Fsck(t.Context(), store.CleanLeftovers())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Cleaned != 2 || len(rep.Problems) != 0 {
		t.Errorf("cleaning: removed %d, problems %v; want 2 removed, none", rep.Cleaned, rep.Problems)
	}
	for name, want := range map[string]bool{"obj-dead": false, "stray": false, filepath.Base(live.Path()): true} {
		if _, err := os.Lstat(filepath.Join(tmp, name)); (err == nil) != want {
			t.Errorf("tmp/%s exists = %v after cleaning, want %v", name, err == nil, want)
		}
	}
}

// TestStoreWithoutIndex: a store committed by a kiln without index/ (or
// whose index was lost) is used as is: the first use hashes the tree once
// and records it, adopting the refs that point at it; fsck stays clean.
func TestStoreWithoutIndex(t *testing.T) {
	root := t.TempDir()
	st, err := store.Open(t.Context(), root)
	if err != nil {
		t.Fatal(err)
	}
	sumA := commitTree(t, st, "a", fillA)
	st.Close()
	if err := os.RemoveAll(filepath.Join(root, "index")); err != nil {
		t.Fatal(err)
	}
	st, err = store.Open(t.Context(), root)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for range 2 {
		r, err := st.Get(t.Context(), "a")
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
	}
	if n := store.FullChecks(st); n != 1 {
		t.Errorf("%d full checks for two uses of an object without index, want 1", n)
	}
	for _, p := range []string{"stat", "refs/a"} {
		if _, err := os.Lstat(filepath.Join(root, "index", sumA, p)); err != nil {
			t.Errorf("index/%s/%s not recorded: %v", sumA, p, err)
		}
	}
	storetest.AssertClean(t, st)
}
