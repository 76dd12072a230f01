package main

import (
	"fmt"
	"strings"
	"unsafe"
)

// Raw kiln_hostfs imports taking guest addresses as plain i32s, to pass
// pointers the SDK never would.

//go:wasmimport kiln_hostfs lstat
func rawLstat(path, pathLen, st uint32) uint32

//go:wasmimport kiln_hostfs getxattr
func rawGetxattr(path, pathLen, name, nameLen, buf, bufLen, size uint32) uint32

//go:wasmimport kiln_hostfs setxattr
func rawSetxattr(path, pathLen, name, nameLen, value, valueLen, flags uint32) uint32

//go:wasmimport kiln_hostfs utimens
func rawUtimens(path, pathLen uint32, atimeSec int64, atimeNsec uint32, mtimeSec int64, mtimeNsec uint32) uint32

//go:wasmimport kiln_hostfs chmod
func rawChmod(path, pathLen, mode uint32) uint32

//go:wasmimport kiln_hostfs lchown
func rawLchown(path, pathLen, uid, gid uint32) uint32

//go:wasmimport kiln_hostfs mknod
func rawMknod(path, pathLen, mode, major, minor uint32) uint32

// buf pins b and returns its guest address and length.
func buf(b []byte) (uint32, uint32) {
	if len(b) == 0 {
		return 0, 0
	}
	return uint32(uintptr(unsafe.Pointer(&b[0]))), uint32(len(b))
}

// abi prints "name errno" for each call: the test compares the lines with
// the ABI in docs/hostfs.md.
func abi(string) {
	const bad = 0xfffffff0 // past the end of guest memory
	hostname, hlen := buf([]byte("/etc/hostname"))
	rel, rlen := buf([]byte("etc/hostname"))
	name, nlen := buf([]byte("user.kiln.abi"))
	missing, mlen := buf([]byte("user.kiln.missing"))
	value, vlen := buf([]byte("hello"))
	nul, nullen := buf([]byte("/etc\x00/hostname"))
	long, longlen := buf([]byte("/" + strings.Repeat("a", 4100)))
	ro, rolen := buf([]byte("/run/kiln/sources/file"))
	esc, esclen := buf([]byte("/planted-abs/secret"))
	st := make([]byte, 80)
	stp, _ := buf(st)
	small := make([]byte, 2)
	sp, _ := buf(small)
	size := make([]byte, 4)
	sizep, _ := buf(size)
	sz := func() uint32 { return uint32(size[0]) | uint32(size[1])<<8 | uint32(size[2])<<16 | uint32(size[3])<<24 }

	for _, c := range []struct {
		name string
		rc   func() uint32
	}{
		{"lstat ok", func() uint32 { return rawLstat(hostname, hlen, stp) }},
		{"lstat relative-to-root", func() uint32 { return rawLstat(rel, rlen, stp) }},
		{"lstat efault-path", func() uint32 { return rawLstat(bad, 8, stp) }},
		{"lstat efault-stat", func() uint32 { return rawLstat(hostname, hlen, bad) }},
		{"lstat nul", func() uint32 { return rawLstat(nul, nullen, stp) }},
		{"lstat long", func() uint32 { return rawLstat(long, longlen, stp) }},
		{"lstat escape", func() uint32 { return rawLstat(esc, esclen, stp) }},
		{"setxattr ok", func() uint32 { return rawSetxattr(hostname, hlen, name, nlen, value, vlen, 0) }},
		{"setxattr create-existing", func() uint32 { return rawSetxattr(hostname, hlen, name, nlen, value, vlen, 1) }},
		{"setxattr bad-flags", func() uint32 { return rawSetxattr(hostname, hlen, name, nlen, value, vlen, 4) }},
		{"setxattr efault-value", func() uint32 { return rawSetxattr(hostname, hlen, name, nlen, bad, 64, 0) }},
		{"getxattr size-query", func() uint32 { return rawGetxattr(hostname, hlen, name, nlen, 0, 0, sizep) }},
		{"getxattr too-small", func() uint32 { return rawGetxattr(hostname, hlen, name, nlen, sp, 2, sizep) }},
		{"getxattr efault-size", func() uint32 { return rawGetxattr(hostname, hlen, name, nlen, 0, 0, bad) }},
		{"getxattr missing", func() uint32 { return rawGetxattr(hostname, hlen, missing, mlen, 0, 0, sizep) }},
		{"utimens ok", func() uint32 { return rawUtimens(hostname, hlen, 1, 2, 3, 4) }},
		{"utimens omit", func() uint32 { return rawUtimens(hostname, hlen, 0, 0x3ffffffe, 0, 0x3ffffffe) }},
		{"utimens now", func() uint32 { return rawUtimens(hostname, hlen, 0, 0x3fffffff, 0, 0) }},
		{"utimens nsec-range", func() uint32 { return rawUtimens(hostname, hlen, 0, 1e9, 0, 0) }},
		{"chmod ok", func() uint32 { return rawChmod(hostname, hlen, 0o644) }},
		{"chmod bad-mode", func() uint32 { return rawChmod(hostname, hlen, 0o10644) }},
		{"chmod read-only", func() uint32 { return rawChmod(ro, rolen, 0o644) }},
		{"lchown keep-both", func() uint32 { return rawLchown(hostname, hlen, 0xffffffff, 0xffffffff) }},
		{"mknod dir", func() uint32 { return rawMknod(rel, rlen, 0o040755, 0, 0) }},
		{"mknod socket", func() uint32 { return rawMknod(rel, rlen, 0o140755, 0, 0) }},
		{"mknod existing", func() uint32 { return rawMknod(rel, rlen, 0o010644, 0, 0) }},
		{"mknod major", func() uint32 { return rawMknod(rel, rlen, 0o020644, 4096, 0) }},
	} {
		fmt.Printf("%s %d\n", c.name, c.rc())
		if c.name == "getxattr size-query" || c.name == "lstat ok" {
			if c.name == "getxattr size-query" {
				fmt.Printf("  size %d\n", sz())
			} else {
				mode := uint32(st[16]) | uint32(st[17])<<8 | uint32(st[18])<<16 | uint32(st[19])<<24
				fmt.Printf("  mode %o\n", mode)
			}
		}
	}
}

func abiNoMounts(string) {
	p, n := buf([]byte("/etc/hostname"))
	st := make([]byte, 80)
	stp, _ := buf(st)
	fmt.Printf("lstat no-mount-table %d\n", rawLstat(p, n, stp))
}
