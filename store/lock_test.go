package store_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/store"
	"github.com/kilnbuild/kiln/store/storetest"
)

func commitFile(t *testing.T, st *store.Store, id, content string) {
	t.Helper()
	obj, err := st.New(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	w, err := obj.Write(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	storetest.WriteFile(t, w.Path(), "f", content)
	w.Close()
	if _, err := st.Commit(t.Context(), obj, id); err != nil {
		t.Fatal(err)
	}
}

// TestLockIDExcludes: of two holders of one id's lock, the second waits
// (and says so) until the first unlocks; no lock is left in tmp/.
func TestLockIDExcludes(t *testing.T) {
	st, err := store.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	unlock, err := st.LockID(t.Context(), "abc", nil)
	if err != nil {
		t.Fatal(err)
	}
	waiting := make(chan struct{})
	got := make(chan error, 1)
	var holding atomic.Bool
	go func() {
		u2, err := st.LockID(t.Context(), "abc", func() { close(waiting) })
		if err == nil {
			holding.Store(true)
			u2()
		}
		got <- err
	}()
	<-waiting
	if holding.Load() {
		t.Fatal("the second holder got the lock while the first held it")
	}
	// Another id is independent.
	u3, err := st.LockID(t.Context(), "other", func() { t.Error("waited for an unrelated id") })
	if err != nil {
		t.Fatal(err)
	}
	u3()
	unlock()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	storetest.AssertClean(t, st)
}

// TestLockIDCanceled: a wait ends with the context.
func TestLockIDCanceled(t *testing.T) {
	st, err := store.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	unlock, err := st.LockID(t.Context(), "abc", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithCancel(t.Context())
	_, err = st.LockID(ctx, "abc", cancel)
	if !errors.Is(err, store.ErrLocked) {
		t.Errorf("LockID after cancel = %v, want ErrLocked", err)
	}
}

// TestHoldKeepsObjectFromGC (issue 10 item 14): gc leaves a held object,
// and its ref, alone, and removes it once released.
func TestHoldKeepsObjectFromGC(t *testing.T) {
	st, err := store.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	commitFile(t, st, "held", "1")
	commitFile(t, st, "free", "2")
	h, err := st.Hold(t.Context(), "held")
	if err != nil {
		t.Fatal(err)
	}
	res, err := st.GC(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 1 || len(res.InUse) != 1 || res.InUse[0].Sum != h.Sum() {
		t.Errorf("gc removed %v, kept %v; want the free one removed, the held one kept", res.Removed, res.InUse)
	}
	if !st.Contains("held") || st.Contains("free") {
		t.Error("gc removed the held object or kept the free one")
	}
	if err := h.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GC(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	if st.Contains("held") {
		t.Error("a released object survived gc --max-size 0")
	}
	if _, err := st.Hold(t.Context(), "held"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Hold of a removed object = %v, want ErrNotFound", err)
	}
	storetest.AssertClean(t, st)
}

// TestGCKeepsObjectUsedAfterSizing: gc sizes the store without its lock;
// an object used after that is not removed even if it was least recently
// used when gc looked.
func TestGCKeepsObjectUsedAfterSizing(t *testing.T) {
	st, err := store.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	commitFile(t, st, "a", "1")
	// A ref whose mtime is in the future stands for a use after sizing,
	// without sleeping.
	future := time.Now().Add(time.Hour)
	ref := filepath.Join(st.Root(), "refs", "a")
	if err := lchtimes(ref, future); err != nil {
		t.Fatal(err)
	}
	res, err := st.GC(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Contains("a") || len(res.Removed) != 0 {
		t.Errorf("gc removed an object used after it sized the store: %+v", res)
	}
	if _, err := os.Lstat(ref); err != nil {
		t.Error(err)
	}
}

func lchtimes(path string, t time.Time) error {
	ts := []unix.Timespec{unix.NsecToTimespec(t.UnixNano()), unix.NsecToTimespec(t.UnixNano())}
	return unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// TestGCSizesWithoutTheLock (issue 10 item 14): gc does not hold objects/
// while it sizes the store, so a gc with nothing to remove goes through
// while a commit holds objects/ (here the test holds it, as a commit
// does). Before, gc waited for the lock first, and commits waited for gc's
// whole walk of the store.
func TestGCSizesWithoutTheLock(t *testing.T) {
	st, err := store.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	commitFile(t, st, "a", "1")
	f, err := os.Open(filepath.Join(st.Root(), "objects"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
		t.Fatal(err)
	}
	// The deadline only ends the old behaviour's wait; it is not measured.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	res, err := st.GC(ctx, 1<<40)
	if err != nil {
		t.Fatalf("gc with nothing to remove while a commit holds objects/: %v", err)
	}
	if res.Before == 0 || len(res.Removed) != 0 {
		t.Errorf("gc result %+v", res)
	}
}

// TestGCRemovesIndex: gc takes an object's index (its stat digest and ref
// records) with it, so index/ does not grow with every object ever made.
func TestGCRemovesIndex(t *testing.T) {
	root := t.TempDir()
	st, err := store.Open(t.Context(), root)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	commitFile(t, st, "a", "1")
	if entries, _ := os.ReadDir(filepath.Join(root, "index")); len(entries) != 1 {
		t.Fatalf("index/ after one commit holds %d entries, want 1", len(entries))
	}
	if _, err := st.GC(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(filepath.Join(root, "index")); len(entries) != 0 {
		t.Errorf("index/ after gc --max-size 0 holds %v", entries)
	}
	rep, err := st.Fsck(t.Context())
	if err != nil || len(rep.Problems) != 0 {
		t.Errorf("fsck after gc: %v %v", rep.Problems, err)
	}
	storetest.AssertClean(t, st)
}
