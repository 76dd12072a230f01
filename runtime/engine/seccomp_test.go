//go:build amd64 || arm64

package engine

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSeccompFilterDenies runs the worker's seccomp filter in a process of
// its own (TestHelperSeccomp) and checks what it denies and what it lets
// through: Seccomp 2 in /proc says a filter is there, not that it works.
func TestSeccompFilterDenies(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperSeccomp$", "-test.v")
	cmd.Env = append(os.Environ(), "KILN_ENGINE_TEST_SECCOMP=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: TestHelperSeccomp") {
		t.Fatalf("the helper did not run:\n%s", out)
	}
}

// TestHelperSeccomp is the process TestSeccompFilterDenies starts.
func TestHelperSeccomp(t *testing.T) {
	if os.Getenv("KILN_ENGINE_TEST_SECCOMP") == "" {
		t.Skip("helper process for TestSeccompFilterDenies")
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := installSeccomp(); err != nil {
		t.Fatal(err)
	}
	denied := map[string]func() error{
		"socket":  func() error { _, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0); return err },
		"unshare": func() error { return unix.Unshare(unix.CLONE_NEWNS) },
		"mount":   func() error { return unix.Mount("none", t.TempDir(), "tmpfs", 0, "") },
		"execve":  func() error { return unix.Exec("/bin/true", []string{"true"}, nil) },
		"clone with CLONE_NEWUSER": func() error {
			_, _, errno := unix.RawSyscall6(unix.SYS_CLONE, unix.CLONE_NEWUSER|uintptr(unix.SIGCHLD), 0, 0, 0, 0, 0)
			if errno != 0 {
				return errno
			}
			return nil
		},
		"setuid": func() error {
			_, _, errno := unix.RawSyscall(unix.SYS_SETUID, 0, 0, 0)
			if errno != 0 {
				return errno
			}
			return nil
		},
	}
	for name, call := range denied {
		if err := call(); !errors.Is(err, unix.EPERM) {
			t.Errorf("%s under the filter: %v, want EPERM", name, err)
		}
	}
	if _, _, errno := unix.RawSyscall(unix.SYS_CLONE3, 0, 0, 0); errno != unix.ENOSYS {
		t.Errorf("clone3 under the filter: %v, want ENOSYS", errno)
	}
	// What a worker does still works: files, new threads, pipes.
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Errorf("writing a file: %v", err)
	}
	if err := os.Chmod(file, 0o644); err != nil {
		t.Errorf("chmod: %v", err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			runtime.LockOSThread() // a locked goroutine that exits retires its thread: Go makes new ones
		})
	}
	wg.Wait()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatalf("pipe: %v", err)
	}
	_, _ = r.Close(), w.Close()
}
