//go:build amd64 || arm64

package engine

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// deniedSyscalls fail with EPERM in a worker. A worker needs none of them:
// it reads and writes pipes and files, maps memory and makes threads. They
// are what a broken-through worker would use with the capabilities it
// keeps for hostfs (CAP_SYS_ADMIN above all) or without any: mounting,
// leaving or entering namespaces, running programs, loading kernel code,
// tracing other processes, opening files by handle (the classic container
// escape with CAP_DAC_READ_SEARCH), sockets, changing ids.
var deniedSyscalls = append([]uintptr{
	unix.SYS_MOUNT, unix.SYS_UMOUNT2, unix.SYS_PIVOT_ROOT, unix.SYS_CHROOT,
	unix.SYS_FSOPEN, unix.SYS_FSCONFIG, unix.SYS_FSMOUNT, unix.SYS_MOVE_MOUNT,
	unix.SYS_OPEN_TREE, unix.SYS_FSPICK, unix.SYS_MOUNT_SETATTR,
	unix.SYS_UNSHARE, unix.SYS_SETNS,
	unix.SYS_EXECVE, unix.SYS_EXECVEAT,
	unix.SYS_PTRACE, unix.SYS_PROCESS_VM_READV, unix.SYS_PROCESS_VM_WRITEV, unix.SYS_PIDFD_GETFD,
	unix.SYS_KEXEC_LOAD, unix.SYS_KEXEC_FILE_LOAD, unix.SYS_INIT_MODULE, unix.SYS_FINIT_MODULE,
	unix.SYS_DELETE_MODULE, unix.SYS_BPF, unix.SYS_PERF_EVENT_OPEN, unix.SYS_USERFAULTFD,
	unix.SYS_IO_URING_SETUP, unix.SYS_IO_URING_ENTER, unix.SYS_IO_URING_REGISTER,
	unix.SYS_OPEN_BY_HANDLE_AT, unix.SYS_NAME_TO_HANDLE_AT, unix.SYS_FANOTIFY_INIT,
	unix.SYS_KEYCTL, unix.SYS_ADD_KEY, unix.SYS_REQUEST_KEY,
	unix.SYS_SOCKET, unix.SYS_SOCKETPAIR,
	unix.SYS_REBOOT, unix.SYS_SWAPON, unix.SYS_SWAPOFF, unix.SYS_ACCT, unix.SYS_QUOTACTL,
	unix.SYS_SETHOSTNAME, unix.SYS_SETDOMAINNAME, unix.SYS_SYSLOG, unix.SYS_VHANGUP,
	unix.SYS_SETTIMEOFDAY, unix.SYS_CLOCK_SETTIME, unix.SYS_CLOCK_ADJTIME, unix.SYS_ADJTIMEX,
	unix.SYS_SETUID, unix.SYS_SETGID, unix.SYS_SETREUID, unix.SYS_SETREGID,
	unix.SYS_SETRESUID, unix.SYS_SETRESGID, unix.SYS_SETGROUPS, unix.SYS_SETFSUID, unix.SYS_SETFSGID,
	unix.SYS_PERSONALITY, unix.SYS_NFSSERVCTL,
}, archDeniedSyscalls...)

// cloneNamespaceFlags are the clone flags that make new namespaces: a
// worker makes threads, never namespaces.
const cloneNamespaceFlags = unix.CLONE_NEWNS | unix.CLONE_NEWUSER | unix.CLONE_NEWNET | unix.CLONE_NEWPID |
	unix.CLONE_NEWIPC | unix.CLONE_NEWUTS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWTIME

// seccompFilter is the worker's filter: a denylist, so that it costs a few
// dozen BPF comparisons per system call (nanoseconds) and cannot break a
// system call that Go's runtime or wazero start to make in a later version.
// A system call of another architecture's numbering (x32 on amd64) kills
// the worker. clone3 answers ENOSYS, as on an old kernel, so that libc
// falls back to clone, whose flags the filter can see.
func seccompFilter() []unix.SockFilter {
	const (
		offNr   = 0
		offArch = 4
		offArg0 = 16 // the low half of args[0] on a little-endian machine
	)
	type ins struct {
		f      unix.SockFilter
		jt, jf string // labels, resolved below
	}
	var prog []ins
	op := func(code uint16, k uint32) { prog = append(prog, ins{f: unix.SockFilter{Code: code, K: k}}) }
	jump := func(code uint16, k uint32, jt, jf string) {
		prog = append(prog, ins{f: unix.SockFilter{Code: code, K: k}, jt: jt, jf: jf})
	}
	const (
		ld   = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq  = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		jge  = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
		jset = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
		ret  = unix.BPF_RET | unix.BPF_K
	)
	op(ld, offArch)
	jump(jeq, auditArch, "", "kill")
	op(ld, offNr)
	if syscallNrLimit != 0 {
		jump(jge, syscallNrLimit, "kill", "")
	}
	for _, nr := range deniedSyscalls {
		jump(jeq, uint32(nr), "eperm", "")
	}
	jump(jeq, unix.SYS_CLONE3, "enosys", "")
	jump(jeq, unix.SYS_CLONE, "", "allow")
	op(ld, offArg0)
	jump(jset, cloneNamespaceFlags, "eperm", "")
	labels := map[string]int{"allow": len(prog)}
	op(ret, unix.SECCOMP_RET_ALLOW)
	labels["eperm"] = len(prog)
	op(ret, unix.SECCOMP_RET_ERRNO|uint32(unix.EPERM))
	labels["enosys"] = len(prog)
	op(ret, unix.SECCOMP_RET_ERRNO|uint32(unix.ENOSYS))
	labels["kill"] = len(prog)
	op(ret, unix.SECCOMP_RET_KILL_PROCESS)

	out := make([]unix.SockFilter, len(prog))
	for i, in := range prog {
		f := in.f
		for _, j := range []struct {
			label string
			off   *uint8
		}{{in.jt, &f.Jt}, {in.jf, &f.Jf}} {
			if j.label == "" {
				continue // 0: the next instruction
			}
			d := labels[j.label] - i - 1
			if d < 0 || d > 255 {
				panic(fmt.Sprintf("seccomp filter: jump of %d to %s", d, j.label))
			}
			*j.off = uint8(d)
		}
		out[i] = f
	}
	return out
}

// installSeccomp installs the filter on every thread of the process
// (SECCOMP_FILTER_FLAG_TSYNC): it denies execve, so it comes after the
// confined re-execution, whose no_new_privs every thread has.
func installSeccomp() error {
	filter := seccompFilter()
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog)))
	if errno != 0 {
		return fmt.Errorf("installing the seccomp filter: %w", errno)
	}
	if r != 0 {
		return fmt.Errorf("installing the seccomp filter: thread %d could not take it", r)
	}
	return nil
}
