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
	if os.Getenv(envMarker) == "new" {
		return setup()
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
// setup. The child is killed if this process dies.
func Prepare(cmd *exec.Cmd) {
	cmd.Env = append(cmd.Environ(), envMarker+"=new")
	attr := &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNS,
		Pdeathsig:  syscall.SIGKILL,
	}
	if uid, gid := os.Geteuid(), os.Getegid(); uid != 0 {
		attr.Cloneflags |= syscall.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: gid, Size: 1}}
		attr.GidMappingsEnableSetgroups = false
	}
	cmd.SysProcAttr = attr
}

func reexec() (int, error) {
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	Prepare(cmd)
	attr := cmd.SysProcAttr
	// The child gets terminal signals itself (same process group); forward
	// what is sent to this process alone (kill PID, systemd) too.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		if attr.Cloneflags&syscall.CLONE_NEWUSER != 0 {
			return 0, fmt.Errorf("mountns: starting kiln in a new user and mount namespace (unprivileged user namespaces may be disabled: sysctl kernel.unprivileged_userns_clone / user.max_user_namespaces): %w", err)
		}
		return 0, fmt.Errorf("mountns: starting kiln in a new mount namespace: %w", err)
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
	err := cmd.Wait()
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
