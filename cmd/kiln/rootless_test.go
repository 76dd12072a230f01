package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// TestRootlessBuild builds the example as an ordinary user: kiln maps the
// user and its subordinate ids into a user namespace, and must produce the
// same tree, owners included, as a build as root.
func TestRootlessBuild(t *testing.T) {
	uid, gid := unprivUser(t, "to compare against")
	dir, err := os.MkdirTemp("", "kiln-rootless-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "kiln")
	if out, err := exec.Command("cp", kilnBin, bin).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	manifest := filepath.Join(dir, "hello.json")
	if out, err := exec.Command("cp", "../../examples/hello.json", manifest).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	for _, p := range []string{dir, bin, manifest} {
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	out, err := asUser(uid, gid, dir, bin, "build", "--json", "--progress", "plain", "--output-directory", filepath.Join(dir, "out"), manifest).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("rootless build: %v\n%s", err, stderr)
	}
	var rootless buildResult
	if err := json.Unmarshal(out, &rootless); err != nil {
		t.Fatal(err)
	}
	rootOut := t.TempDir()
	if _, r := build(t, t.TempDir(), rootOut, manifest); r.code != 0 {
		t.Fatalf("root build: %s", r.stderr)
	}
	// Ids only depend on the manifest and the modules; the bytes of the
	// image show the trees are the same, owners (alice is 1000) included.
	a, errA := os.ReadFile(filepath.Join(dir, "out", "root.tar.zst"))
	b, errB := os.ReadFile(filepath.Join(rootOut, "root.tar.zst"))
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	if !bytes.Equal(a, b) || !rootless.Success {
		t.Error("the rootless build's image differs from the root build's")
	}
	// The store lives in the user's cache and belongs to the user.
	st, err := os.Stat(filepath.Join(dir, ".cache", "kiln", "objects"))
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Sys().(*syscall.Stat_t).Uid; int(got) != uid {
		t.Errorf("store owned by uid %d, want %d", got, uid)
	}
}

// unprivUser skips unless the test runs as root and can switch to the CI's
// kiln-unpriv user with subordinate ids (newuidmap); it returns that
// user's uid and gid. why says what the test needs root for besides.
func unprivUser(t *testing.T, why string) (uid, gid int) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("needs root %s and to switch to the test user", why)
	}
	u, err := user.Lookup("kiln-unpriv")
	if err != nil {
		t.Skipf("needs the user kiln-unpriv (created by .ci/run): %v", err)
	}
	if _, err := exec.LookPath("newuidmap"); err != nil {
		t.Skip("needs newuidmap (Debian package uidmap, installed by .ci/run)")
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid
}

// asUser is kiln (bin) run as uid:gid in dir, with dir as its home, so that
// its default store is the user's own.
func asUser(uid, gid int, dir, bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	return cmd
}
