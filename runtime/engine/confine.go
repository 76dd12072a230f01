package engine

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// Values of workerEnv: a worker starts in the confine phase, confines
// itself and re-executes in the serve phase.
const (
	workerPhaseConfine = "1"
	workerPhaseServe   = "2"
)

// workerCaps are the capabilities a worker keeps, all for the kiln_hostfs
// calls a stage makes on its tree: lchown (CAP_CHOWN), mknod (CAP_MKNOD),
// chmod, utimens and links on files another user owns (CAP_FOWNER),
// chmod keeping a setgid bit (CAP_FSETID), reading and writing files and
// directories whatever their mode (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH),
// security.capability (CAP_SETFCAP), and trusted.* and security.* xattrs
// such as security.selinux (CAP_SYS_ADMIN: the kernel has no narrower one).
// What CAP_SYS_ADMIN allows besides is denied by the seccomp filter.
var workerCaps = capMask(unix.CAP_CHOWN, unix.CAP_DAC_OVERRIDE, unix.CAP_DAC_READ_SEARCH,
	unix.CAP_FOWNER, unix.CAP_FSETID, unix.CAP_MKNOD, unix.CAP_SETFCAP, unix.CAP_SYS_ADMIN)

func capMask(caps ...int) uint64 {
	var m uint64
	for _, c := range caps {
		m |= 1 << c
	}
	return m
}

// confineAndExec is the worker's first phase. Capabilities, no_new_privs,
// namespaces and seccomp filters are per-thread in Linux, and a Go program
// has many threads it does not control; but an execve takes only the
// calling thread's, so the worker sets them on one locked thread and then
// re-executes itself from it, with an environment that holds only the
// phase. It never returns.
func confineAndExec() {
	runtime.LockOSThread()
	if err := confine(); err != nil {
		fmt.Fprintf(os.Stderr, "kiln stage worker: confining: %v\n", err)
		os.Exit(1)
	}
	exe, err := selfExe()
	if err == nil {
		err = syscall.Exec(exe, os.Args, []string{workerEnv + "=" + workerPhaseServe})
	}
	fmt.Fprintf(os.Stderr, "kiln stage worker: re-executing confined: %v\n", err)
	os.Exit(1)
}

// confine gives the calling thread the least a worker needs: a network
// namespace of its own (nothing but a down loopback), no_new_privs and only
// workerCaps. The seccomp filter follows after the execve (serveWorker).
func confine() error {
	// A stage has no sockets, but the worker process is kiln's code
	// running hostile input: if wazero were ever broken through, the
	// host's network is not there. Where kiln may not create one (no
	// CAP_SYS_ADMIN in its user namespace) the worker goes without.
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil && !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("unsharing the network namespace: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("setting no_new_privs: %w", err)
	}
	return dropCaps(workerCaps)
}

// dropCaps keeps only keep of the thread's capabilities, in every set, and
// in the bounding set, so that the execve that follows cannot give root its
// full set back (no_new_privs would stop that too).
func dropCaps(keep uint64) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("reading capabilities: %w", err)
	}
	for c := 0; c < 64; c++ {
		if keep&(1<<c) != 0 {
			continue
		}
		err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0)
		if errors.Is(err, unix.EINVAL) {
			break // past the kernel's last capability
		}
		if errors.Is(err, unix.EPERM) {
			break // no CAP_SETPCAP: nothing to give back at execve
		}
		if err != nil {
			return fmt.Errorf("dropping capability %d from the bounding set: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("clearing ambient capabilities: %w", err)
	}
	perm := (uint64(data[1].Permitted)<<32 | uint64(data[0].Permitted)) & keep
	data[0] = unix.CapUserData{Effective: uint32(perm), Permitted: uint32(perm)}
	data[1] = unix.CapUserData{Effective: uint32(perm >> 32), Permitted: uint32(perm >> 32)}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("dropping capabilities: %w", err)
	}
	return nil
}
