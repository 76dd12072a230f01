package store_test

import (
	"context"
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
	"github.com/kilnbuild/kiln/store/mountns"
	"github.com/kilnbuild/kiln/store/storetest"
)

func TestMain(m *testing.M) {
	mountns.MustEnter()
	storetest.RunHelper()
	os.Exit(m.Run())
}

func factory(mode store.CopyMode) storetest.Factory {
	return func(ctx context.Context, root string) (*store.Store, error) {
		return store.Open(ctx, root, store.WithCopyMode(mode))
	}
}

func tempDir(t *testing.T) string { return t.TempDir() }

func TestSuitePlainCopy(t *testing.T) {
	storetest.Suite(t, tempDir, factory(store.CopyPlain))
}

func TestSuiteAuto(t *testing.T) {
	storetest.Suite(t, tempDir, factory(store.CopyAuto))
}

// TestSuiteReflink runs the suite on an XFS filesystem made for the test,
// where FICLONE works, with reflinks required.
func TestSuiteReflink(t *testing.T) {
	mnt := xfsMount(t)
	n := 0
	dir := func(t *testing.T) string {
		n++
		d := filepath.Join(mnt, strconv.Itoa(n))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	storetest.Suite(t, dir, factory(store.CopyReflink))
}

func TestReflinkRequiredFails(t *testing.T) {
	// t.TempDir is on the test machine's ext4, which has no reflinks.
	if !noReflinkHere(t) {
		t.Skip("the temporary directory's filesystem supports reflinks")
	}
	st, err := store.Open(t.Context(), t.TempDir(), store.WithCopyMode(store.CopyReflink))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	obj, err := st.New(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	w, _ := obj.Write(t.Context())
	storetest.WriteFile(t, w.Path(), "f", "x")
	w.Close()
	if _, err := st.Commit(t.Context(), obj, "a"); err != nil {
		t.Fatal(err)
	}
	obj2, _ := st.New(t.Context(), "a")
	if _, err := obj2.Write(t.Context()); err == nil || !errors.Is(err, store.ErrNoReflink) {
		t.Errorf("Write with CopyReflink on a filesystem without reflinks = %v, want ErrNoReflink", err)
	}
	obj2.Close()
	obj.Close()
	storetest.AssertClean(t, st)
}

func TestCrashRecovery(t *testing.T) {
	storetest.CheckCrashRecovery(t, t.TempDir())
}

// TestUnprivileged runs the suite again as an ordinary user, which makes
// kiln enter a user namespace of its own: once mapping the user's
// subordinate ids too (newuidmap, /etc/subuid), so that files can have
// other owners, and once mapping the user alone. .ci/run creates the user.
func TestUnprivileged(t *testing.T) {
	const name = "kiln-unpriv"
	if os.Geteuid() != 0 {
		t.Skip("already unprivileged: the suite above ran in a user namespace")
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Skipf("needs the user %s (created by .ci/run): %v", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir, err := os.MkdirTemp("", "kiln-unpriv-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "store.test")
	if out, err := exec.Command("cp", exe, bin).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	for _, p := range []string{dir, bin} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ name, env string }{
		{"subordinate-ids", ""},
		{"own-id-only", "KILN_NO_SUBIDS=1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env == "" {
				if _, err := exec.LookPath("newuidmap"); err != nil {
					t.Skip("needs newuidmap (Debian package uidmap, installed by .ci/run)")
				}
			}
			cmd := exec.Command(bin, "-test.run=^(TestIDMapping|TestSuitePlainCopy|TestCrashRecovery)$", "-test.v")
			cmd.Dir = dir
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "TMPDIR=" + dir, tc.env,
				"KILN_TEST_EXPECT_CHOWN=" + strconv.FormatBool(tc.env == "")}
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("suite as %s: %v\n%s", name, err, out)
			}
			t.Logf("suite as %s (uid %d):\n%s", name, uid, lastLines(string(out), 40))
		})
	}
}

// TestIDMapping runs in TestUnprivileged's child: it fails unless the
// user namespace maps what the parent expects, so that the subordinate-id
// run cannot pass while quietly mapping the user alone.
func TestIDMapping(t *testing.T) {
	want := os.Getenv("KILN_TEST_EXPECT_CHOWN")
	if want == "" {
		t.Skip("only meaningful in TestUnprivileged's child process")
	}
	if got := strconv.FormatBool(storetest.CanChown()); got != want {
		t.Errorf("can give files to other owners: %s, want %s (uid_map: %s)", got, want, readFile("/proc/self/uid_map"))
	}
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return strings.TrimSpace(string(b))
}

func noReflinkHere(t *testing.T) bool {
	dir := t.TempDir()
	a, err := os.Create(filepath.Join(dir, "a"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := os.Create(filepath.Join(dir, "b"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	return unix.IoctlFileClone(int(b.Fd()), int(a.Fd())) != nil
}

// xfsMount makes an XFS filesystem with reflinks in a file and mounts it
// for the test (inside the test's private mount namespace).
func xfsMount(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts a loop device")
	}
	if _, err := exec.LookPath("mkfs.xfs"); err != nil {
		t.Skip("needs mkfs.xfs (Debian package xfsprogs, installed by .ci/run)")
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "xfs.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 512<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.xfs", "-q", "-m", "reflink=1", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.xfs: %v %s", err, out)
	}
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot loop-mount an XFS image here: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount: %v %s", err, out)
		}
	})
	return mnt
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// TestSuiteHardlink runs the suite with every write context's tree
// hardlinked to its base (the hostfs strategy on filesystems without
// reflinks), its writers replacing files rather than writing in place as
// hostfs's copy-up does: committed objects must come out unchanged.
func TestSuiteHardlink(t *testing.T) {
	storetest.Suite(t, tempDir, func(ctx context.Context, root string) (*store.Store, error) {
		return store.Open(ctx, root, store.WithLinkedWrites())
	})
}
