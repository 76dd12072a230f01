package storetest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"

	"github.com/kilnbuild/kiln/store"
	"github.com/kilnbuild/kiln/store/mountns"
)

// envHelper selects a helper role when the test binary is started again by
// one of the multi-process checks.
const envHelper = "KILN_STORETEST_HELPER"

// RunHelper must be called from TestMain after mountns.Enter. In a helper
// process it performs the role named in the environment and exits; in the
// test process it returns at once.
func RunHelper() {
	role := os.Getenv(envHelper)
	if role == "" {
		return
	}
	if err := runHelper(context.Background(), role, os.Getenv("KILN_STORETEST_ROOT"), os.Getenv("KILN_STORETEST_ARG")); err != nil {
		fmt.Fprintf(os.Stderr, "helper %s: %v\n", role, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func runHelper(ctx context.Context, role, root, arg string) error {
	st, err := store.Open(ctx, root)
	if err != nil {
		return err
	}
	defer st.Close()
	n, _ := strconv.Atoi(arg)
	switch role {
	case "commit":
		// Commit the same content under a shared ref and an own ref, n times.
		for i := range n {
			if err := helperCommit(ctx, st, "shared", fmt.Sprintf("p%d-%d", os.Getpid(), i)); err != nil {
				return err
			}
		}
	case "gc":
		for range n {
			if _, err := st.GC(ctx, 0); err != nil {
				return err
			}
		}
	case "open":
		for range n {
			s2, err := store.Open(ctx, root)
			if err != nil {
				return err
			}
			s2.Close()
		}
	case "hold":
		// Leave an object mid-write and a read mount, then wait to be killed.
		obj, err := st.New(ctx, "")
		if err != nil {
			return err
		}
		r, err := obj.Read(ctx)
		if err != nil {
			return err
		}
		_ = r
		obj2, err := st.New(ctx, "")
		if err != nil {
			return err
		}
		w, err := obj2.Write(ctx)
		if err != nil {
			return err
		}
		if err := os.WriteFile(w.Path()+"/half-written", []byte("x"), 0o644); err != nil {
			return err
		}
		fmt.Println("ready")
		select {}
	default:
		return fmt.Errorf("unknown role %q", role)
	}
	return nil
}

// helperCommit commits fixed content as ids, then reads one back. A
// concurrent gc may remove what was just committed: that is the only
// failure it tolerates.
func helperCommit(ctx context.Context, st *store.Store, ids ...string) error {
	obj, err := st.New(ctx, "")
	if err != nil {
		return err
	}
	defer obj.Close()
	w, err := obj.Write(ctx)
	if err != nil {
		return err
	}
	if err := os.WriteFile(w.Path()+"/f", []byte("same content everywhere"), 0o644); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	for _, id := range ids {
		if _, err := st.Commit(ctx, obj, id); err != nil {
			return err
		}
	}
	r, err := st.Get(ctx, ids[0])
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return r.Close()
}

// helperCmd is the test binary started again in a role.
type helperCmd struct {
	*exec.Cmd
	started func() error
}

// Start starts the helper in a mount namespace of its own.
func (h helperCmd) Start() error {
	if err := h.Cmd.Start(); err != nil {
		_ = h.started()
		return err
	}
	return h.started()
}

// helper prepares the test binary to start again in role.
func helper(t *testing.T, root, role, arg string) helperCmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), envHelper+"="+role, "KILN_STORETEST_ROOT="+root, "KILN_STORETEST_ARG="+arg)
	cmd.Stderr = os.Stderr
	// A mount namespace of its own, as every kiln process has.
	started, err := mountns.Prepare(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return helperCmd{cmd, started}
}

// checkHammer runs committers, a gc and store openers as separate processes
// on one store, plus goroutines in this process; afterwards fsck must be
// clean.
func checkHammer(t *testing.T, st *store.Store) {
	var cmds []helperCmd
	for _, role := range []struct{ name, n string }{
		{"commit", "15"}, {"commit", "15"}, {"commit", "15"}, {"gc", "10"}, {"open", "20"},
	} {
		cmd := helper(t, st.Root(), role.name, role.n)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Go(func() {
			for i := range 10 {
				if err := helperCommit(t.Context(), st, "shared", fmt.Sprintf("g%d-%d", g, i)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("helper %v: %v", cmd.Env[len(os.Environ())], err)
		}
	}
	objs, err := st.Objects(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) > 1 {
		t.Errorf("%d objects for one content", len(objs))
	}
}

// CheckCrashRecovery kills a process that holds an object mid-write and a
// read mount, and checks that the next Open removes its leftovers and says
// how many.
func CheckCrashRecovery(t *testing.T, root string) {
	st, err := store.Open(t.Context(), root)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	cmd := helper(t, root, "hold", "")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("helper said %q, %v", line, err)
	}
	// While the holder lives, nothing of its is removed.
	st, err = store.Open(t.Context(), root)
	if err != nil {
		t.Fatal(err)
	}
	if n := st.Recovered(); n != 0 {
		t.Errorf("Open removed %d entries of a live process", n)
	}
	st.Close()
	_ = cmd.Process.Kill()
	_ = cmd.Wait() // reaped: its files, and so its flocks, are closed
	st, err = store.Open(t.Context(), root)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if n := st.Recovered(); n != 3 {
		t.Errorf("Open after the crash removed %d leftovers, want 3 (two objects, one read mount)", n)
	}
	AssertClean(t, st)
}
