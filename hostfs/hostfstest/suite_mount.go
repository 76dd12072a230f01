package hostfstest

import (
	"os"
	"path/filepath"
	"testing"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"golang.org/x/sys/unix"
)

// testMountInside mounts a tmpfs inside the tree, standing for a procfs or a
// bind mount of a host directory: the tree is one filesystem, and nothing
// may enter or change another mount through it.
func testMountInside(t *testing.T, open Factory) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts a tmpfs inside the tree")
	}
	e := NewEnv(t, open)
	mnt := filepath.Join(e.Tree, "mnt")
	must(t, os.Mkdir(mnt, 0o755))
	if err := unix.Mount("tmpfs", mnt, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	must(t, os.WriteFile(filepath.Join(mnt, "file"), []byte(Sentinel), 0o644))
	must(t, os.Symlink("/mnt/file", filepath.Join(e.Tree, "mntlink")))
	inside := Capture(t, mnt)

	const exdev = experimentalsys.EPERM // wazero has no EXDEV
	for _, p := range []string{"mnt/file", "mntlink", "mnt/", "escape/mnt/file"} {
		_, errno := ReadFile(e.FS, p)
		wantErrno(t, "read "+p, errno, exdev)
		_, errno = e.FS.Stat(p)
		wantErrno(t, "stat "+p, errno, exdev)
		wantErrno(t, "chmod "+p, e.FS.Chmod(p, 0o777), exdev)
		wantErrno(t, "utimens "+p, e.FS.Utimens(p, 1, 1), exdev)
	}
	_, errno := e.FS.Lstat("mnt")
	wantErrno(t, "lstat mnt", errno, exdev)
	wantErrno(t, "create in mnt", writeFile(e.FS, "mnt/new", experimentalsys.O_RDWR|experimentalsys.O_CREAT, 0o644, "x"), exdev)
	wantErrno(t, "mkdir in mnt", e.FS.Mkdir("mnt/dir", 0o755), exdev)
	wantErrno(t, "unlink in mnt", e.FS.Unlink("mnt/file"), exdev)
	wantErrno(t, "rename out of mnt", e.FS.Rename("mnt/file", "stolen"), exdev)
	// The mount point itself is busy, not removable or movable.
	if errno := e.FS.Rmdir("mnt"); errno == 0 {
		t.Error("rmdir of a mount point succeeded")
	}
	inside.Check(t)
	e.CheckHost(t)
}
