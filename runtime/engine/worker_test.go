package engine

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// onFirstWrite runs fn at a stage's first output, when it is surely running.
type onFirstWrite struct {
	once sync.Once
	fn   func()
}

func (o *onFirstWrite) Write(p []byte) (int, error) {
	o.once.Do(o.fn)
	return len(p), nil
}

func TestWorkerCrashIsReported(t *testing.T) {
	e := newEngine(t, Config{})
	var pid int
	kill := &onFirstWrite{fn: func() {
		pid = e.w.cmd.Process.Pid
		// As the kernel's OOM killer would.
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Error(err)
		}
	}}
	_, err := e.Run(t.Context(), Invocation{Name: "spin", ID: testID, Module: guest(t), Tree: t.TempDir(), Log: kill})
	var se *StageError
	if !errors.As(err, &se) || !errors.Is(err, ErrWorker) || !strings.Contains(err.Error(), "signal: killed") {
		t.Fatalf("Run = %v, want a *StageError matching ErrWorker that says how the worker died", err)
	}
	runNoop(t, e)
	if e.w.cmd.Process.Pid == pid {
		t.Errorf("the engine kept the dead worker %d", pid)
	}
}

func TestCloseStopsARunningStage(t *testing.T) {
	e := newEngine(t, Config{})
	closer := &onFirstWrite{fn: func() { _ = e.Close() }}
	_, err := e.Run(t.Context(), Invocation{Name: "spin", ID: testID, Module: guest(t), Tree: t.TempDir(), Log: closer})
	if !errors.Is(err, ErrClosed) {
		t.Errorf("Run interrupted by Close = %v, want ErrClosed", err)
	}
}

func TestConcurrentRunsTakeTurns(t *testing.T) {
	e := newEngine(t, Config{})
	mod := guest(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	logs := make([]string, 4)
	for i := range errs {
		wg.Go(func() {
			res, err := e.Run(t.Context(), Invocation{Name: "env", ID: fmt.Sprintf("%02x", i), Module: mod, Tree: t.TempDir()})
			errs[i], logs[i] = err, string(res.Log)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("run %d: %v", i, err)
		} else if want := fmt.Sprintf("KILN_STAGE_ID=%02x\n", i); !strings.Contains(logs[i], want) {
			t.Errorf("run %d got another run's output:\n%s", i, logs[i])
		}
	}
}

// TestWorkerDiesWithParent kills a process that is running a spinning stage
// and checks that its worker goes too, rather than spinning on unowned.
func TestWorkerDiesWithParent(t *testing.T) {
	guest(t) // built here, read by the helper
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperParent$")
	cmd.Env = append(os.Environ(), "KILN_ENGINE_TEST_PARENT="+buildDir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	// The helper prints the worker's pid once the stage is spinning.
	var pid int
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if s, ok := strings.CutPrefix(sc.Text(), "worker "); ok {
			if pid, err = strconv.Atoi(s); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if pid == 0 {
		t.Fatalf("the helper did not report its worker (%v)", sc.Err())
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatalf("pidfd_open(%d): %v", pid, err)
	}
	defer unix.Close(pidfd)

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	// A pidfd becomes readable when its process exits. No timeout here:
	// if the worker survived, the test binary's -timeout reports it.
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || n != 1 {
			t.Fatalf("poll on the worker's pidfd: %d, %v", n, err)
		}
		return
	}
}

// TestHelperParent is the process TestWorkerDiesWithParent kills. It runs
// only when that test starts it.
func TestHelperParent(t *testing.T) {
	dir := os.Getenv("KILN_ENGINE_TEST_PARENT")
	if dir == "" {
		t.Skip("helper process for TestWorkerDiesWithParent")
	}
	buildDir = dir // reuse the parent's guest build and cache
	e := newEngine(t, Config{})
	report := &onFirstWrite{fn: func() { fmt.Printf("worker %d\n", e.w.cmd.Process.Pid) }}
	_, err := e.Run(context.Background(), Invocation{Name: "spin", ID: testID, Module: guest(t), Tree: t.TempDir(), Log: report})
	t.Fatalf("the spinning stage returned: %v", err)
}

// TestForgottenHook runs a test binary whose TestMain does not call
// MaybeRunWorker, as another package's tests might, and checks that New says
// so instead of hanging or re-executing itself.
func TestForgottenHook(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperNoHook$", "-test.v")
	cmd.Env = append(os.Environ(), "KILN_ENGINE_TEST_NO_HOOK=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	if want := "must call engine.MaybeRunWorker first"; !strings.Contains(string(out), want) {
		t.Errorf("New in a binary without the hook said:\n%s\nwant a message containing %q", out, want)
	}
}

// TestHelperNoHook is the process TestForgottenHook starts.
func TestHelperNoHook(t *testing.T) {
	if os.Getenv("KILN_ENGINE_TEST_NO_HOOK") == "" {
		t.Skip("helper process for TestForgottenHook")
	}
	e, err := New(context.Background(), Config{})
	if err == nil {
		_ = e.Close()
		t.Fatal("New succeeded without a worker hook")
	}
	t.Logf("New: %v", err)
}
