package store_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"

	"github.com/kilnbuild/kiln/store"
	"github.com/kilnbuild/kiln/store/internal/reclist"
	"github.com/kilnbuild/kiln/store/storetest"
)

// TestIndexChainOutlivesBases (issue 14): commits that each change one
// file store their indexes as differences from their base's, a chain that
// is stored whole again before it grows past what a reader follows; gc
// then removes every base of the chain, and the next commit from its end
// is still incremental and right, and fsck finds nothing wrong.
func TestIndexChainOutlivesBases(t *testing.T) {
	st, err := store.Open(t.Context(), t.TempDir(), store.WithCopyMode(store.CopyHardlink))
	check(t, err)
	defer st.Close()
	ctx := t.Context()
	obj, err := st.New(ctx, "")
	check(t, err)
	hostfsStage(t, obj, func(fsys experimentalsys.FS) {
		for d := range 5 {
			dir := fmt.Sprintf("d%d", d)
			if errno := fsys.Mkdir(dir, 0o755); errno != 0 {
				t.Fatalf("mkdir %s: %v", dir, errno)
			}
			for f := range 10 {
				writeVia(t, fsys, fmt.Sprintf("%s/f%d", dir, f), fmt.Sprint(d, f), experimentalsys.O_CREAT)
			}
		}
	})
	_, err = st.Commit(ctx, obj, "c0")
	check(t, err)
	chained, whole := 0, 0
	const commits = 14
	for i := 1; i < commits; i++ {
		hostfsStage(t, obj, func(fsys experimentalsys.FS) {
			writeVia(t, fsys, "d3/f4", fmt.Sprint("step ", i), experimentalsys.O_TRUNC)
		})
		sum, err := st.Commit(ctx, obj, fmt.Sprint("c", i))
		check(t, err)
		committedSum(t, st, fmt.Sprint("c", i), sum)
		if storedBase(t, filepath.Join(st.Root(), "index", sum, "tree")) != "" {
			chained++
		} else {
			whole++
		}
	}
	if chained < commits/2 || whole < 1 {
		t.Errorf("%d indexes stored as differences, %d whole", chained, whole)
	}
	// obj holds the last commit, its base: everything else goes.
	res, err := st.GC(ctx, 0)
	check(t, err)
	if len(res.Removed) != commits-1 {
		t.Fatalf("gc removed %d objects, want %d", len(res.Removed), commits-1)
	}
	check(t, obj.Close())
	// Another store on the same root, as the next kiln process: it reads
	// the chain from disk, not from what this one remembers.
	st2, err := store.Open(ctx, st.Root(), store.WithCopyMode(store.CopyHardlink))
	check(t, err)
	defer st2.Close()
	obj, err = st2.New(ctx, fmt.Sprint("c", commits-1))
	check(t, err)
	hostfsStage(t, obj, func(fsys experimentalsys.FS) {
		writeVia(t, fsys, "d1/f1", "after gc", experimentalsys.O_TRUNC)
	})
	sum, err := st2.Commit(ctx, obj, "after")
	check(t, err)
	committedSum(t, st2, "after", sum)
	if store.IncrementalCommits(st2) != 1 {
		t.Error("the commit after gc removed the chain's bases hashed the whole tree")
	}
	if n := store.FullChecks(st) + store.FullChecks(st2); n != 0 {
		t.Errorf("%d checks on use hashed a whole tree", n)
	}
	check(t, obj.Close())
	storetest.AssertClean(t, st2)
	if storedBase(t, filepath.Join(st.Root(), "index", sum, "files")) == "" {
		t.Error("the last commit's file lines were stored whole")
	}
}

// storedBase is the base the stored list in file is a difference from, ""
// when it is whole.
func storedBase(t *testing.T, file string) string {
	t.Helper()
	data, err := os.ReadFile(file)
	check(t, err)
	base, err := reclist.Base(data)
	check(t, err)
	return base
}
