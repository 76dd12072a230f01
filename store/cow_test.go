package store_test

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/hostfs"
	"github.com/kilnbuild/kiln/store"
	"github.com/kilnbuild/kiln/store/storetest"
	"github.com/kilnbuild/kiln/store/treesum"
)

// hostfsStage runs stage on obj's tree through hostfs, as the stage
// engine does: a hostfs write context, a root with the tree's state.
func hostfsStage(t *testing.T, obj *store.Object, stage func(fsys experimentalsys.FS)) {
	t.Helper()
	w, err := obj.WriteHostfs(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	tree, state := w.HostfsTree()
	root, err := hostfs.OpenRoot(tree, hostfs.WithTreeState(state))
	if err != nil {
		t.Fatal(err)
	}
	stage(hostfs.NewFS(root, false))
	if err := root.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func writeVia(t *testing.T, fsys experimentalsys.FS, p, content string, flags experimentalsys.Oflag) {
	t.Helper()
	f, errno := fsys.OpenFile(p, experimentalsys.O_WRONLY|flags, 0o644)
	if errno != 0 {
		t.Fatalf("open %s: %v", p, errno)
	}
	if _, errno := f.Write([]byte(content)); errno != 0 {
		t.Fatalf("write %s: %v", p, errno)
	}
	f.Close()
}

// committedSum checks that id's stored tree sums to what Commit said.
func committedSum(t *testing.T, st *store.Store, id, sum string) {
	t.Helper()
	r, err := st.Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	full, err := treesum.Sum(t.Context(), r.Path())
	if err != nil {
		t.Fatal(err)
	}
	if full != sum {
		t.Fatalf("%s: Commit said %s, the stored tree sums to %s", id, sum, full)
	}
}

// TestHostfsWriteShares (issue 14): on a filesystem without reflinks a
// hostfs write context shares the base's files, a write through hostfs
// copies one up, the commit re-hashes only it, and the base is unchanged
// and checked on use without a full hash.
func TestHostfsWriteShares(t *testing.T) {
	st, err := store.Open(t.Context(), t.TempDir(), store.WithCopyMode(store.CopyHardlink))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := t.Context()
	obj, err := st.New(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	w, err := obj.Write(ctx)
	if err != nil {
		t.Fatal(err)
	}
	storetest.RichTree(t, w.Path())
	storetest.WriteFile(t, w.Path(), "etc/hostname", "base\n")
	w.Close()
	baseSum, err := st.Commit(ctx, obj, "base")
	if err != nil {
		t.Fatal(err)
	}
	r, _ := st.Get(ctx, "base")
	before := storetest.Describe(t, r.Path())
	r.Close()
	full := store.FullChecks(st)

	hostfsStage(t, obj, func(fsys experimentalsys.FS) {
		writeVia(t, fsys, "etc/hostname", "changed\n", experimentalsys.O_TRUNC)
		if errno := fsys.Mkdir("new", 0o755); errno != 0 {
			t.Fatal(errno)
		}
	})
	sum, err := st.Commit(ctx, obj, "next")
	if err != nil {
		t.Fatal(err)
	}
	if store.IncrementalCommits(st) != 1 {
		t.Errorf("%d incremental commits, want 1", store.IncrementalCommits(st))
	}
	committedSum(t, st, "next", sum)
	if sum == baseSum {
		t.Fatal("the change was lost")
	}
	r, err = st.Get(ctx, "base")
	if err != nil {
		t.Fatal(err)
	}
	after := storetest.Describe(t, r.Path())
	r.Close()
	if strings.Join(before, "\n") != strings.Join(after, "\n") {
		t.Errorf("base changed:\n%s\n--\n%s", strings.Join(before, "\n"), strings.Join(after, "\n"))
	}
	if n := store.FullChecks(st) - full; n != 0 {
		t.Errorf("%d checks on use hashed a whole tree", n)
	}
	// Unchanged files are one inode in both objects.
	var a, b unix.Stat_t
	rb, _ := st.Get(ctx, "base")
	rn, _ := st.Get(ctx, "next")
	_ = unix.Lstat(filepath.Join(rb.Path(), "usr/share/big"), &a)
	_ = unix.Lstat(filepath.Join(rn.Path(), "usr/share/big"), &b)
	rb.Close()
	rn.Close()
	if a.Ino != b.Ino {
		t.Error("an unchanged file was copied")
	}
	check(t, obj.Close())
	storetest.AssertClean(t, st)
}

// TestPlainWriteUnshares: a plain write context on an object a hostfs
// context linked gets a tree of its own, so writing in place is safe.
func TestPlainWriteUnshares(t *testing.T) {
	st, err := store.Open(t.Context(), t.TempDir(), store.WithCopyMode(store.CopyHardlink))
	check(t, err)
	defer st.Close()
	ctx := t.Context()
	obj, err := st.New(ctx, "")
	check(t, err)
	w, err := obj.Write(ctx)
	check(t, err)
	storetest.WriteFile(t, w.Path(), "f", "base")
	check(t, os.Link(filepath.Join(w.Path(), "f"), filepath.Join(w.Path(), "g")))
	check(t, w.Close())
	_, err = st.Commit(ctx, obj, "base")
	check(t, err)
	hostfsStage(t, obj, func(experimentalsys.FS) {}) // links the tree
	w, err = obj.Write(ctx)
	check(t, err)
	check(t, os.WriteFile(filepath.Join(w.Path(), "f"), []byte("in place"), 0o644))
	if got := storetest.ReadFile(t, w.Path(), "g"); got != "in place" {
		t.Errorf("g = %q: the image's hardlink was split by the unsharing", got)
	}
	check(t, w.Close())
	r, err := st.Get(ctx, "base")
	check(t, err)
	if got := storetest.ReadFile(t, r.Path(), "f"); got != "base" {
		t.Errorf("base f = %q after a plain write on a linked object", got)
	}
	check(t, r.Close())
	check(t, obj.Close())
	storetest.AssertClean(t, st)
}

// guestOps is a random guest: the operations a stage does through hostfs,
// on names that are likely to exist.
type guestOps struct {
	t    *testing.T
	rng  *rand.Rand
	fsys experimentalsys.FS
	n    int
}

func (g *guestOps) name() string {
	dirs := []string{"", "a", "a/b", "c"}
	return path.Join(dirs[g.rng.IntN(len(dirs))], fmt.Sprintf("f%d", g.rng.IntN(6)))
}

func (g *guestOps) step() {
	g.n++
	p, q := g.name(), g.name()
	content := fmt.Sprintf("step %d\n", g.n)
	switch g.rng.IntN(11) {
	case 0, 1:
		f, errno := g.fsys.OpenFile(p, experimentalsys.O_WRONLY|experimentalsys.O_CREAT|experimentalsys.O_TRUNC, 0o644)
		if errno == 0 {
			f.Write([]byte(content))
			f.Close()
		}
	case 2:
		f, errno := g.fsys.OpenFile(p, experimentalsys.O_RDWR, 0)
		if errno == 0 {
			f.Pwrite([]byte("X"), 1)
			f.Close()
		}
	case 3:
		f, errno := g.fsys.OpenFile(p, experimentalsys.O_WRONLY|experimentalsys.O_APPEND, 0)
		if errno == 0 {
			f.Write([]byte(content))
			f.Close()
		}
	case 4:
		g.fsys.Unlink(p)
	case 5:
		g.fsys.Rename(p, q)
	case 6:
		g.fsys.Link(p, q)
	case 7:
		g.fsys.Chmod(p, fs.FileMode(0o600+g.rng.IntN(0o100)))
	case 8:
		g.fsys.Utimens(p, int64(g.rng.IntN(1e6))*1e9, int64(g.rng.IntN(1e6))*1e9)
	case 9:
		f, errno := g.fsys.OpenFile(p, experimentalsys.O_RDWR, 0)
		if errno == 0 {
			f.Truncate(int64(g.rng.IntN(4)))
			f.Close()
		}
	case 10:
		dirs := []string{"a", "a/b", "c", "c/d"}
		d := dirs[g.rng.IntN(len(dirs))]
		if g.fsys.Mkdir(d, 0o755) != 0 && g.rng.IntN(3) == 0 {
			g.fsys.Rename(d, "c/moved")
		}
	}
}

// TestRandomGuestKeepsStoreClean (issue 14): a long random sequence of
// guest operations through hostfs on a chain of objects that share inodes;
// after every commit the committed sum is the stored tree's full sum,
// every object still sums to its name (fsck), and the commit was
// incremental. Set KILN_COW_SEED to replay a seed.
func TestRandomGuestKeepsStoreClean(t *testing.T) {
	seeds := []uint64{1, 2, 3, 4}
	if s := os.Getenv("KILN_COW_SEED"); s != "" {
		var seed uint64
		fmt.Sscan(s, &seed)
		seeds = []uint64{seed}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Logf("seed %d (KILN_COW_SEED=%d replays it)", seed, seed)
			st, err := store.Open(t.Context(), t.TempDir(), store.WithCopyMode(store.CopyHardlink))
			check(t, err)
			defer st.Close()
			ctx := t.Context()
			obj, err := st.New(ctx, "")
			check(t, err)
			g := &guestOps{t: t, rng: rand.New(rand.NewPCG(seed, 14))}
			commits := 0
			for round := range 12 {
				// Two stages per checkpoint, as a pipeline segment runs.
				for range 2 {
					hostfsStage(t, obj, func(fsys experimentalsys.FS) {
						g.fsys = fsys
						for range 40 {
							g.step()
						}
					})
				}
				id := fmt.Sprintf("r%d", round)
				sum, err := st.Commit(ctx, obj, id)
				check(t, err)
				commits++
				committedSum(t, st, id, sum)
				if round%3 == 2 {
					// As the next build starts from this checkpoint: the
					// base is checked in the walk that links the new tree.
					check(t, obj.Close())
					walks := store.StatChecks(st)
					obj, err = st.NewHostfs(ctx, id)
					check(t, err)
					if n := store.StatChecks(st) - walks; n != 0 {
						t.Errorf("NewHostfs from %s walked it %d more times for its check", id, n)
					}
				}
			}
			if n := store.FullChecks(st); n != 0 {
				// A stat digest recorded incrementally that differs from
				// what a walk of the object finds.
				t.Errorf("%d checks on use hashed a whole tree", n)
			}
			if n := store.IncrementalCommits(st); n != int64(commits-1) {
				// The first commit has no base index to start from.
				t.Errorf("%d of %d commits were incremental, want %d", n, commits, commits-1)
			}
			check(t, obj.Close())
			storetest.AssertClean(t, st)
		})
	}
}

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var benchRoot *hostfs.Root

// openHostfs opens a root for changeOneFile, closed by closeHostfs.
func openHostfs(tree, state string) (experimentalsys.FS, error) {
	r, err := hostfs.OpenRoot(tree, hostfs.WithTreeState(state))
	if err != nil {
		return nil, err
	}
	benchRoot = r
	return hostfs.NewFS(r, false), nil
}

func closeHostfs() { benchRoot.Close() }

// TestFsckChecksTreeIndex: fsck reports a tree index that differs from its
// tree (it would mislead the next incremental commit) and --repair removes
// it; the next commit from that base then hashes everything and is right.
func TestFsckChecksTreeIndex(t *testing.T) {
	st, err := store.Open(t.Context(), t.TempDir(), store.WithCopyMode(store.CopyHardlink))
	check(t, err)
	defer st.Close()
	ctx := t.Context()
	obj, err := st.New(ctx, "")
	check(t, err)
	hostfsStage(t, obj, func(fsys experimentalsys.FS) {
		writeVia(t, fsys, "a", "one", experimentalsys.O_CREAT)
		writeVia(t, fsys, "b", "two", experimentalsys.O_CREAT)
	})
	sumA, err := st.Commit(ctx, obj, "a")
	check(t, err)
	check(t, obj.Close())
	// An index of another tree under this object's name, as a bug could
	// leave it: reading it refuses it, fsck reports it.
	other := t.TempDir()
	check(t, os.WriteFile(filepath.Join(other, "x"), nil, 0o644))
	_, ix, err := treesum.SumIndex(ctx, other)
	check(t, err)
	f, err := os.Create(filepath.Join(st.Root(), "index", sumA, "tree"))
	check(t, err)
	_, err = ix.WriteTo(f)
	check(t, err)
	check(t, f.Close())
	rep, err := st.Fsck(ctx)
	check(t, err)
	if len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0].What, "bad index") {
		t.Fatalf("fsck problems %v, want one bad index", rep.Problems)
	}
	rep, err = st.Fsck(ctx, store.Repair())
	check(t, err)
	if rep.Unrepaired() != 0 {
		t.Fatalf("unrepaired: %v", rep.Problems)
	}
	obj, err = st.New(ctx, "a")
	check(t, err)
	hostfsStage(t, obj, func(fsys experimentalsys.FS) {
		writeVia(t, fsys, "a", "ONE", experimentalsys.O_TRUNC)
	})
	sum, err := st.Commit(ctx, obj, "b")
	check(t, err)
	committedSum(t, st, "b", sum)
	check(t, obj.Close())
	storetest.AssertClean(t, st)
}
