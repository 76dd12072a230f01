package engine

import "golang.org/x/sys/unix"

const (
	auditArch      = unix.AUDIT_ARCH_AARCH64
	syscallNrLimit = 0 // arm64 has one numbering
)

var archDeniedSyscalls []uintptr
