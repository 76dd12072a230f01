package store_test

import (
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/store"
	"github.com/kilnbuild/kiln/store/storetest"
)

var storeDirs = []string{"", "objects", "refs", "tmp", "index", "sources", "cache"}

func modeOf(t *testing.T, path string) uint32 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Mode & 07777
}

// TestStorePrivateDirs (issue 10 item 2): a new store's directories are
// 0700, and opening a store made with 0755 directories tightens them.
func TestStorePrivateDirs(t *testing.T) {
	fresh := filepath.Join(t.TempDir(), "fresh")
	st, err := store.Open(t.Context(), fresh)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	loose := filepath.Join(t.TempDir(), "loose")
	for _, d := range storeDirs {
		p := filepath.Join(loose, d)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	st, err = store.Open(t.Context(), loose)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	for _, root := range []string{fresh, loose} {
		for _, d := range storeDirs {
			if m := modeOf(t, filepath.Join(root, d)); m != 0o700 {
				t.Errorf("%s/%s has mode %#o, want 0700", filepath.Base(root), d, m)
			}
		}
	}
}

// commitTree commits one object filled by fill and returns its treesum.
func commitTree(t *testing.T, st *store.Store, id string, fill func(dir string)) string {
	t.Helper()
	ctx := t.Context()
	obj, err := st.New(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	w, err := obj.Write(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fill(w.Path())
	w.Close()
	sum, err := st.Commit(ctx, obj, id)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

func hostileTree(t *testing.T) func(dir string) {
	return func(dir string) {
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		must(os.WriteFile(filepath.Join(dir, "suid"), []byte("#!/bin/sh\nid -u\n"), 0o755))
		must(unix.Chmod(filepath.Join(dir, "suid"), 0o4755))
		must(os.Mkdir(filepath.Join(dir, "tmp"), 0o755))
		must(unix.Chmod(filepath.Join(dir, "tmp"), 0o1777))
		if storetest.CanMknod() {
			must(unix.Mknod(filepath.Join(dir, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
			must(unix.Chmod(filepath.Join(dir, "null"), 0o666))
		}
	}
}

// TestReadContextNosuidNodev (issue 10 item 2): a read context is mounted
// nosuid and nodev, so a setuid binary in it runs without the owner's
// privileges and a device node in it cannot be opened.
func TestReadContextNosuidNodev(t *testing.T) {
	if !storetest.CanMknod() {
		t.Skip("needs real root: creates a device node")
	}
	st, err := store.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	commitTree(t, st, "hostile", hostileTree(t))
	r, err := st.Get(t.Context(), "hostile")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var sfs unix.Statfs_t
	if err := unix.Statfs(r.Path(), &sfs); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name string
		flag int64
	}{{"ST_RDONLY", unix.ST_RDONLY}, {"ST_NOSUID", unix.ST_NOSUID}, {"ST_NODEV", unix.ST_NODEV}} {
		if sfs.Flags&f.flag == 0 {
			t.Errorf("read context mount lacks %s (flags %#x)", f.name, sfs.Flags)
		}
	}
	f, err := os.OpenFile(filepath.Join(r.Path(), "null"), os.O_RDWR, 0)
	if err == nil {
		f.Close()
		t.Error("a 0666 device node in a read context could be opened")
	} else if !errors.Is(err, unix.EACCES) {
		t.Errorf("opening the device node: %v, want EACCES (nodev)", err)
	}
}

// TestOtherUserCannotReachObjects (issue 10 item 2): another local user can
// reach neither a committed tree's setuid binary nor its 1777 /tmp, even
// when the store's parent directory is open to everyone.
func TestOtherUserCannotReachObjects(t *testing.T) {
	const name = "kiln-unpriv"
	if os.Geteuid() != 0 {
		t.Skip("needs root: makes the store as root and probes it as another user")
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Skipf("needs the user %s (created by .ci/run): %v", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	parent, err := os.MkdirTemp("", "kiln-private-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	// Walk up: every directory to the parent must be open to the other
	// user, or the test would pass whatever the store's modes are.
	for p := parent; p != "/"; p = filepath.Dir(p) {
		if modeOf(t, p)&0o001 == 0 {
			t.Skipf("%s is not searchable by others: the probe would prove nothing", p)
		}
	}
	root := filepath.Join(parent, "store")
	st, err := store.Open(t.Context(), root)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sum := commitTree(t, st, "hostile", hostileTree(t))
	obj := filepath.Join(root, "objects", sum)
	for _, probe := range [][]string{
		{"touch", filepath.Join(obj, "tmp", "planted")},
		{"cat", filepath.Join(obj, "suid")},
		{"ls", filepath.Join(root, "refs")},
		{"ls", filepath.Join(root, "objects")},
	} {
		cmd := exec.Command(probe[0], probe[1:]...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		if out, err := cmd.CombinedOutput(); err == nil {
			t.Errorf("as %s, %v succeeded: %s", name, probe, out)
		}
	}
	if _, err := os.Lstat(filepath.Join(obj, "tmp", "planted")); err == nil {
		t.Errorf("%s planted a file in a committed tree's /tmp", name)
	}
	// The tree itself keeps its modes: privacy comes from the directories
	// leading to it, not from changing what was built.
	if m := modeOf(t, filepath.Join(obj, "tmp")); m != 0o1777 {
		t.Errorf("committed /tmp has mode %#o, want 01777 kept", m)
	}
}

// TestReadContextSetuidNoEffect (issue 10 item 2): a setuid-root program in
// a read context runs with the caller's ids. The other user reaches it
// through a descriptor of the read context's root (the store's 0700
// directories would stop a path lookup before it got there).
func TestReadContextSetuidNoEffect(t *testing.T) {
	const name = "kiln-unpriv"
	if os.Geteuid() != 0 {
		t.Skip("needs root: makes a setuid-root program")
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Skipf("needs the user %s (created by .ci/run): %v", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	id, err := exec.LookPath("id")
	if err != nil {
		t.Skip("needs id(1)")
	}
	prog, err := os.ReadFile(id)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	commitTree(t, st, "suid", func(dir string) {
		p := filepath.Join(dir, "id")
		if err := os.WriteFile(p, prog, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Chmod(p, 0o4755); err != nil {
			t.Fatal(err)
		}
	})
	r, err := st.Get(t.Context(), "suid")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	root, err := os.Open(r.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	cmd := exec.Command("/proc/self/fd/3/id", "-u")
	cmd.ExtraFiles = []*os.File{root}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("running the setuid program as %s: %v %s", name, err, out)
	}
	if got := strings.TrimSpace(string(out)); got != u.Uid {
		t.Errorf("setuid-root program in a read context ran with euid %s, want %s (nosuid)", got, u.Uid)
	}
}
