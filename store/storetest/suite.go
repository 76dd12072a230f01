// Package storetest is the behaviour suite every configuration of the
// object store must pass (each copy strategy, on each filesystem), plus the
// helpers it needs: tree builders, a description of a tree to compare, and
// helper processes for the multi-process checks. A backend's test is a
// factory and one call to Suite.
package storetest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/store"
)

// Factory opens a store on root, an empty directory.
type Factory func(ctx context.Context, root string) (*store.Store, error)

// Suite runs every check against stores made by newStore. Each check gets a
// fresh store in dir(t), which must return an empty directory on the
// filesystem under test (t.TempDir for the default one).
func Suite(t *testing.T, dir func(t *testing.T) string, newStore Factory) {
	checks := []struct {
		name string
		fn   func(t *testing.T, st *store.Store)
	}{
		{"CommitThenGet", checkCommitThenGet},
		{"EqualContentStoredOnce", checkDedupe},
		{"BaseUnchangedByWrite", checkBaseUnchanged},
		{"ReaderSeesBase", checkReaderSeesBase},
		{"WriteDuringRead", checkWriteDuringRead},
		{"ReadDuringWrite", checkReadDuringWrite},
		{"ReadMountRefusesWrites", checkReadOnly},
		{"CommitThenContinue", checkSnapshot},
		{"CopyKeepsMetadata", checkCopyKeepsMetadata},
		{"UseAfterClose", checkUseAfterClose},
		{"InvalidIDs", checkInvalidIDs},
		{"FsckCatchesTampering", checkFsckTamper},
		{"GCLeastRecentlyUsed", checkGC},
		{"ConcurrentCommits", checkHammer},
		{"StrayEntryInObjects", checkStray},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			root := dir(t)
			st, err := newStore(t.Context(), root)
			if err != nil {
				t.Fatal(err)
			}
			c.fn(t, st)
			AssertClean(t, st)
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// AssertClean fails t unless fsck finds nothing and tmp/ is empty: every
// check ends with it.
func AssertClean(t *testing.T, st *store.Store) {
	t.Helper()
	rep, err := st.Fsck(t.Context())
	if err != nil {
		t.Fatalf("fsck: %v", err)
	}
	for _, p := range rep.Problems {
		t.Errorf("fsck: %s", p)
	}
	entries, err := os.ReadDir(filepath.Join(st.Root(), "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("tmp/ not empty: %s", e.Name())
	}
}

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// commit makes an object on base, lets write fill its tree, and commits it
// as id.
func commit(t *testing.T, st *store.Store, base, id string, write func(dir string)) string {
	t.Helper()
	ctx := t.Context()
	obj, err := st.New(ctx, base)
	check(t, err)
	defer func() { check(t, obj.Close()) }()
	w, err := obj.Write(ctx)
	check(t, err)
	write(w.Path())
	check(t, w.Close())
	sum, err := st.Commit(ctx, obj, id)
	check(t, err)
	return sum
}

func checkCommitThenGet(t *testing.T, st *store.Store) {
	if st.Contains("a") {
		t.Fatal("empty store contains a")
	}
	commit(t, st, "", "a", func(d string) { WriteFile(t, d, "etc/hostname", "a\n") })
	if !st.Contains("a") {
		t.Fatal("Contains(a) = false after commit")
	}
	r, err := st.Get(t.Context(), "a")
	check(t, err)
	if got := ReadFile(t, r.Path(), "etc/hostname"); got != "a\n" {
		t.Errorf("content = %q", got)
	}
	if strings.Contains(r.Path(), "objects") {
		t.Errorf("read path %s exposes the store's object path", r.Path())
	}
	check(t, r.Close())
	if _, err := st.Get(t.Context(), "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(missing) = %v, want ErrNotFound", err)
	}
}

func checkDedupe(t *testing.T, st *store.Store) {
	s1 := commit(t, st, "", "one", func(d string) { WriteFile(t, d, "f", "same") })
	s2 := commit(t, st, "", "two", func(d string) { WriteFile(t, d, "f", "same") })
	if s1 != s2 {
		t.Fatalf("equal content, different sums %s %s", s1, s2)
	}
	objects, _ := os.ReadDir(filepath.Join(st.Root(), "objects"))
	refs, _ := os.ReadDir(filepath.Join(st.Root(), "refs"))
	if len(objects) != 1 || len(refs) != 2 {
		t.Errorf("%d objects and %d refs, want 1 and 2", len(objects), len(refs))
	}
}

func checkBaseUnchanged(t *testing.T, st *store.Store) {
	commit(t, st, "", "x", func(d string) { WriteFile(t, d, "f", "x") })
	commit(t, st, "x", "y", func(d string) {
		WriteFile(t, d, "f", "y")
		WriteFile(t, d, "g", "new")
	})
	r, err := st.Get(t.Context(), "x")
	check(t, err)
	defer r.Close()
	if got := ReadFile(t, r.Path(), "f"); got != "x" {
		t.Errorf("base content = %q after a write on top of it", got)
	}
	if got := ReadFile(t, r.Path(), "g"); got != "<missing>" {
		t.Errorf("base gained g = %q", got)
	}
}

func checkReaderSeesBase(t *testing.T, st *store.Store) {
	commit(t, st, "", "base", func(d string) { WriteFile(t, d, "f", "base") })
	obj, err := st.New(t.Context(), "base")
	check(t, err)
	defer obj.Close()
	r, err := obj.Read(t.Context())
	check(t, err)
	if got := ReadFile(t, r.Path(), "f"); got != "base" {
		t.Errorf("untouched object reads %q, want the base", got)
	}
	check(t, r.Close())
	w, err := obj.Write(t.Context())
	check(t, err)
	WriteFile(t, w.Path(), "f", "own")
	check(t, w.Close())
	r, err = obj.Read(t.Context())
	check(t, err)
	if got := ReadFile(t, r.Path(), "f"); got != "own" {
		t.Errorf("written object reads %q, want its own tree", got)
	}
	check(t, r.Close())
}

func checkWriteDuringRead(t *testing.T, st *store.Store) {
	obj, err := st.New(t.Context(), "")
	check(t, err)
	defer obj.Close()
	r1, err := obj.Read(t.Context())
	check(t, err)
	r2, err := obj.Read(t.Context()) // many readers are fine
	check(t, err)
	if _, err := obj.Write(t.Context()); !errors.Is(err, store.ErrBusy) {
		t.Errorf("Write during read = %v, want ErrBusy", err)
	}
	if _, err := st.Commit(t.Context(), obj, "c"); !errors.Is(err, store.ErrBusy) {
		t.Errorf("Commit during read = %v, want ErrBusy", err)
	}
	check(t, r1.Close())
	if _, err := obj.Write(t.Context()); !errors.Is(err, store.ErrBusy) {
		t.Errorf("Write with one reader left = %v, want ErrBusy", err)
	}
	check(t, r2.Close())
	w, err := obj.Write(t.Context())
	check(t, err)
	check(t, w.Close())
}

func checkReadDuringWrite(t *testing.T, st *store.Store) {
	obj, err := st.New(t.Context(), "")
	check(t, err)
	defer obj.Close()
	w, err := obj.Write(t.Context())
	check(t, err)
	if _, err := obj.Read(t.Context()); !errors.Is(err, store.ErrBusy) {
		t.Errorf("Read during write = %v, want ErrBusy", err)
	}
	if _, err := obj.Write(t.Context()); !errors.Is(err, store.ErrBusy) {
		t.Errorf("second Write = %v, want ErrBusy", err)
	}
	if err := obj.Close(); !errors.Is(err, store.ErrBusy) {
		t.Errorf("Close during write = %v, want ErrBusy", err)
	}
	check(t, w.Close())
}

func checkReadOnly(t *testing.T, st *store.Store) {
	commit(t, st, "", "ro", func(d string) { WriteFile(t, d, "f", "x") })
	r, err := st.Get(t.Context(), "ro")
	check(t, err)
	defer r.Close()
	// Root bypasses permission bits, so only the mount can refuse these.
	for name, op := range map[string]func() error{
		"create": func() error { return os.WriteFile(filepath.Join(r.Path(), "new"), nil, 0o644) },
		"modify": func() error { return os.WriteFile(filepath.Join(r.Path(), "f"), []byte("y"), 0o644) },
		"remove": func() error { return os.Remove(filepath.Join(r.Path(), "f")) },
		"chmod":  func() error { return os.Chmod(filepath.Join(r.Path(), "f"), 0o777) },
	} {
		if err := op(); !errors.Is(err, unix.EROFS) {
			t.Errorf("%s through the read context = %v, want EROFS", name, err)
		}
	}
	if got := ReadFile(t, r.Path(), "f"); got != "x" {
		t.Errorf("content changed to %q", got)
	}
}

func checkSnapshot(t *testing.T, st *store.Store) {
	ctx := t.Context()
	obj, err := st.New(ctx, "")
	check(t, err)
	defer obj.Close()
	w, err := obj.Write(ctx)
	check(t, err)
	WriteFile(t, w.Path(), "f", "one")
	check(t, w.Close())
	_, err = st.Commit(ctx, obj, "snap1")
	check(t, err)
	if obj.Base() != "snap1" {
		t.Errorf("Base after commit = %q, want snap1", obj.Base())
	}
	w, err = obj.Write(ctx)
	check(t, err)
	if got := ReadFile(t, w.Path(), "f"); got != "one" {
		t.Errorf("write after commit starts from %q, want the committed tree", got)
	}
	WriteFile(t, w.Path(), "f", "two")
	check(t, w.Close())
	_, err = st.Commit(ctx, obj, "snap2")
	check(t, err)
	for id, want := range map[string]string{"snap1": "one", "snap2": "two"} {
		r, err := st.Get(ctx, id)
		check(t, err)
		if got := ReadFile(t, r.Path(), "f"); got != want {
			t.Errorf("%s holds %q, want %q", id, got, want)
		}
		check(t, r.Close())
	}
	// A commit of an untouched object points the ref at its base: no copy.
	_, err = st.Commit(ctx, obj, "snap3")
	check(t, err)
	refs, err := st.Refs()
	check(t, err)
	if refs["snap3"] != refs["snap2"] {
		t.Errorf("untouched commit: snap3 -> %s, snap2 -> %s", refs["snap3"], refs["snap2"])
	}
}

func checkCopyKeepsMetadata(t *testing.T, st *store.Store) {
	ctx := t.Context()
	sum := commit(t, st, "", "rich", func(d string) { RichTree(t, d) })
	obj, err := st.New(ctx, "rich")
	check(t, err)
	defer obj.Close()
	w, err := obj.Write(ctx) // copies the base
	check(t, err)
	base, err := st.Get(ctx, "rich")
	check(t, err)
	want, got := Describe(t, base.Path()), Describe(t, w.Path())
	check(t, base.Close())
	if !slices.Equal(want, got) {
		t.Errorf("copy differs from base:\nbase: %s\ncopy: %s", strings.Join(want, "\n      "), strings.Join(got, "\n      "))
	}
	check(t, w.Close())
	again, err := st.Commit(ctx, obj, "rich-copy")
	check(t, err)
	if again != sum {
		t.Errorf("treesum of the copy %s, of the base %s", again, sum)
	}
}

func checkUseAfterClose(t *testing.T, st *store.Store) {
	ctx := t.Context()
	obj, err := st.New(ctx, "")
	check(t, err)
	r, err := obj.Read(ctx)
	check(t, err)
	check(t, r.Close())
	if err := r.Close(); !errors.Is(err, store.ErrClosed) {
		t.Errorf("second ReadContext.Close = %v, want ErrClosed", err)
	}
	check(t, obj.Close())
	for name, op := range map[string]func() error{
		"Write":  func() error { _, err := obj.Write(ctx); return err },
		"Read":   func() error { _, err := obj.Read(ctx); return err },
		"Commit": func() error { _, err := st.Commit(ctx, obj, "x"); return err },
		"Close":  obj.Close,
	} {
		if err := op(); !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
}

func checkInvalidIDs(t *testing.T, st *store.Store) {
	obj, err := st.New(t.Context(), "")
	check(t, err)
	defer obj.Close()
	for _, id := range []string{"", ".", "..", "../escape", "a/b", "-flag", strings.Repeat("x", 300), "nul\x00"} {
		if _, err := st.Commit(t.Context(), obj, id); !errors.Is(err, store.ErrInvalidID) {
			t.Errorf("Commit(%q) = %v, want ErrInvalidID", id, err)
		}
	}
}

func checkFsckTamper(t *testing.T, st *store.Store) {
	sum := commit(t, st, "", "t", func(d string) { WriteFile(t, d, "f", "original") })
	path := filepath.Join(st.Root(), "objects", sum, "f")
	check(t, os.WriteFile(path, []byte("tampered"), 0o644))
	rep, err := st.Fsck(t.Context())
	check(t, err)
	if len(rep.Problems) != 1 || !strings.HasPrefix(rep.Problems[0].What, "damaged") {
		t.Fatalf("fsck problems = %v, want one changed object", rep.Problems)
	}
	check(t, os.WriteFile(path, []byte("original"), 0o644))
	check(t, os.Symlink("../objects/"+strings.Repeat("0", 64), filepath.Join(st.Root(), "refs", "dangling")))
	rep, err = st.Fsck(t.Context())
	check(t, err)
	if len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0].What, "dangling") {
		t.Fatalf("fsck problems = %v, want one dangling ref", rep.Problems)
	}
	check(t, os.Remove(filepath.Join(st.Root(), "refs", "dangling")))
}

func checkGC(t *testing.T, st *store.Store) {
	ctx := t.Context()
	for _, id := range []string{"old", "mid", "new"} {
		commit(t, st, "", id, func(d string) { WriteFile(t, d, "f", strings.Repeat(id, 10000)) })
	}
	// Commits in one clock tick would tie: date the refs' last use apart.
	setUsed := func(id string, sec int64) {
		ts := []unix.Timespec{{Sec: sec}, {Sec: sec}}
		check(t, unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(st.Root(), "refs", id), ts, unix.AT_SYMLINK_NOFOLLOW))
	}
	for i, id := range []string{"old", "mid", "new"} {
		setUsed(id, 1e9+int64(i))
	}
	// Using "old" again makes it the most recently used.
	r, err := st.Get(ctx, "old")
	check(t, err)
	check(t, r.Close())
	objs, err := st.Objects(ctx)
	check(t, err)
	var order []string
	for _, o := range objs {
		order = append(order, o.Refs...)
	}
	if !slices.Equal(order, []string{"mid", "new", "old"}) {
		t.Errorf("least recently used first: %v, want [mid new old]", order)
	}
	// Hold "mid" as a base, but leave it the oldest: gc must skip it.
	held, err := st.New(ctx, "mid")
	check(t, err)
	setUsed("mid", 1e9)
	var total int64
	for _, o := range objs {
		total += o.Size
	}
	res, err := st.GC(ctx, total-1)
	check(t, err)
	if len(res.InUse) != 1 || !slices.Equal(res.InUse[0].Refs, []string{"mid"}) {
		t.Errorf("in use = %+v, want mid", res.InUse)
	}
	if len(res.Removed) != 1 || !slices.Equal(res.Removed[0].Refs, []string{"new"}) {
		t.Errorf("removed = %+v, want new (least recently used that is free)", res.Removed)
	}
	if res.After >= total {
		t.Errorf("size after gc %d, before %d", res.After, total)
	}
	check(t, held.Close())
	for id, want := range map[string]bool{"old": true, "mid": true, "new": false} {
		if st.Contains(id) != want {
			t.Errorf("Contains(%s) = %v after gc, want %v", id, !want, want)
		}
	}
	res, err = st.GC(ctx, 0)
	check(t, err)
	if res.After != 0 || st.Contains("old") || st.Contains("mid") {
		t.Errorf("gc to 0 left %d bytes", res.After)
	}
}

// checkStray: something that is not an object in objects/ is reported by
// fsck, and listing and gc leave it alone.
func checkStray(t *testing.T, st *store.Store) {
	commit(t, st, "", "real", func(d string) { WriteFile(t, d, "f", "x") })
	stray := filepath.Join(st.Root(), "objects", "x")
	check(t, os.Mkdir(stray, 0o755))
	objs, err := st.Objects(t.Context())
	check(t, err)
	if len(objs) != 1 || len(objs[0].Refs) != 1 || objs[0].Refs[0] != "real" {
		t.Errorf("Objects = %+v, want only the real object", objs)
	}
	_, err = st.GC(t.Context(), 0)
	check(t, err)
	if _, err := os.Stat(stray); err != nil {
		t.Errorf("gc removed a stray entry it does not own: %v", err)
	}
	rep, err := st.Fsck(t.Context())
	check(t, err)
	if len(rep.Problems) != 1 || rep.Problems[0].Path != filepath.Join("objects", "x") {
		t.Errorf("fsck problems %v, want objects/x", rep.Problems)
	}
	check(t, os.Remove(stray))
}
