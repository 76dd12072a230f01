// Package mountns puts the kiln process into a private mount namespace, so
// that every bind mount the store makes disappears with the process, however
// it ends: a killed kiln never leaves mounts on the host.
//
// Enter re-executes the running binary in a new mount namespace (and, when
// not run as root, a new user namespace that maps the invoking user to root,
// so that bind mounts work without privileges). The outer process only
// forwards signals and exit status; the inner one makes every mount private
// before anything else and carries on with the program. Children of the
// inner process inherit both the namespace and the marker, so they do not
// re-execute again.
package mountns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// envMarker holds the inode number of the private namespace kiln made, or
// "new" in the child before it has finished setting the namespace up.
const envMarker = "KILN_MOUNTNS"

// ErrNotEntered is returned by Check when the process is not in a private
// mount namespace made by Enter.
var ErrNotEntered = errors.New("not in kiln's private mount namespace (call mountns.Enter first)")

func currentNS() (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/mnt", &st); err != nil {
		return 0, fmt.Errorf("mountns: %w", err)
	}
	return st.Ino, nil
}

// Check reports whether the process runs in the private mount namespace
// that Enter made (it or an ancestor in the same namespace).
func Check() error {
	want := os.Getenv(envMarker)
	ns, err := currentNS()
	if err != nil {
		return err
	}
	if want != strconv.FormatUint(ns, 10) {
		return ErrNotEntered
	}
	return nil
}

// Enter makes sure the process runs in a private mount namespace. In the
// original process it never returns: it re-executes the binary with the same
// arguments in new namespaces, waits for it and exits with its status. In
// the re-executed process it makes all mounts private and returns nil.
func Enter() error {
	if Check() == nil {
		return nil
	}
	switch os.Getenv(envMarker) {
	case "new":
		return setup()
	case "wait":
		if err := waitForMaps(); err != nil {
			return err
		}
		// This process was exec'd before it had ids in its namespace, so
		// it got no capabilities there; executing again as the root the
		// maps now make it gives it the capabilities to mount.
		if err := os.Setenv(envMarker, "new"); err != nil {
			return err
		}
		if err := syscall.Exec("/proc/self/exe", os.Args, os.Environ()); err != nil {
			return fmt.Errorf("mountns: re-executing in the mapped user namespace: %w", err)
		}
	}
	code, err := reexec()
	if err != nil {
		return err
	}
	os.Exit(code)
	return nil
}

// setup runs first thing in the new namespace: until / is private, a bind
// mount made here would propagate back to the host's namespace.
func setup() error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("mountns: making mounts private: %w", err)
	}
	ns, err := currentNS()
	if err != nil {
		return err
	}
	return os.Setenv(envMarker, strconv.FormatUint(ns, 10))
}

// Prepare sets cmd up to start in a new mount namespace (and user
// namespace when not root) in which its own call to Enter only finishes the
// setup. The child is killed if this process dies. Call the returned
// function right after cmd.Start: where subordinate ids are mapped it runs
// newuidmap and newgidmap for the child and then lets it go on.
func Prepare(cmd *exec.Cmd) (started func() error, err error) {
	attr := &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNS,
		Pdeathsig:  syscall.SIGKILL,
	}
	cmd.SysProcAttr = attr
	started = func() error { return nil }
	uid, gid := os.Geteuid(), os.Getegid()
	if uid == 0 {
		cmd.Env = append(cmd.Environ(), envMarker+"=new")
		return started, nil
	}
	attr.Cloneflags |= syscall.CLONE_NEWUSER
	uidArgs, gidArgs, ok := subordinateMaps(uid, gid)
	if !ok || len(cmd.ExtraFiles) > 0 {
		// Only the user itself: enough for bind mounts, not for chown to
		// other owners.
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: gid, Size: 1}}
		attr.GidMappingsEnableSetgroups = false
		cmd.Env = append(cmd.Environ(), envMarker+"=new")
		return started, nil
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("mountns: %w", err)
	}
	cmd.ExtraFiles = []*os.File{r} // fd 3 in the child
	cmd.Env = append(cmd.Environ(), envMarker+"=wait")
	return func() error {
		r.Close()
		defer w.Close() // lets the child go on, mapped or not
		if cmd.Process == nil {
			return nil
		}
		if err := writeMaps(cmd.Process.Pid, uidArgs, gidArgs); err != nil {
			_ = cmd.Process.Kill()
			return fmt.Errorf("mountns: mapping subordinate ids (set %s=1 to map only your own user): %w", envNoSubIDs, err)
		}
		return nil
	}, nil
}

func reexec() (int, error) {
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	started, err := Prepare(cmd)
	if err != nil {
		return 0, err
	}
	attr := cmd.SysProcAttr
	// The child gets terminal signals itself (same process group); forward
	// what is sent to this process alone (kill PID, systemd) too.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		_ = started() // closes the pipe; there is no child to map
		if attr.Cloneflags&syscall.CLONE_NEWUSER != 0 {
			return 0, fmt.Errorf("mountns: starting kiln in a new user and mount namespace (unprivileged user namespaces may be disabled: sysctl kernel.unprivileged_userns_clone / user.max_user_namespaces): %w", err)
		}
		return 0, fmt.Errorf("mountns: starting kiln in a new mount namespace: %w", err)
	}
	if err := started(); err != nil {
		_ = cmd.Wait()
		return 0, err
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				_ = cmd.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	err = cmd.Wait()
	close(done)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	if err != nil {
		return 0, fmt.Errorf("mountns: %w", err)
	}
	return 0, nil
}

// MustEnter is Enter for main functions and TestMain: on failure it prints
// why and exits with status 1, since nothing can run without the namespace.
func MustEnter() {
	if err := Enter(); err != nil {
		fmt.Fprintf(os.Stderr, "kiln: %v\n", err)
		os.Exit(1)
	}
}
