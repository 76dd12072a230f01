package kmod

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// moduleELF reads a module's ELF image the way libkmod 30 does
// (libkmod-elf.c): not with debug/elf, whose checks differ, because
// depmod's output depends on which sections libkmod accepts and how it
// splits their strings. The bytes come from the tree, so every offset is
// checked against the image; a section out of bounds is skipped, as
// libkmod skips it.
type moduleELF struct {
	data     []byte
	is32     bool
	order    binary.ByteOrder
	shoff    uint64
	shnum    uint16
	strOff   uint64 // section name strings
	strSize  uint64
	symSize  uint64 // one symbol table entry
	shdrSize uint64
}

var errELF = errors.New("not a valid ELF module")

func (e *moduleELF) uint(off, size uint64) (uint64, bool) {
	if off+size < off || off+size > uint64(len(e.data)) {
		return 0, false
	}
	b := e.data[off : off+size]
	switch size {
	case 1:
		return uint64(b[0]), true
	case 2:
		return uint64(e.order.Uint16(b)), true
	case 4:
		return uint64(e.order.Uint32(b)), true
	default:
		return e.order.Uint64(b), true
	}
}

// cstring is the NUL-terminated string at off; libkmod reads such
// strings unbounded, here they end at the image's end.
func (e *moduleELF) cstring(off uint64) string {
	if off >= uint64(len(e.data)) {
		return ""
	}
	b := e.data[off:]
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func parseModuleELF(data []byte) (*moduleELF, error) {
	if len(data) <= 16 || !bytes.HasPrefix(data, []byte("\x7fELF")) {
		return nil, errELF
	}
	e := &moduleELF{data: data}
	switch data[4] {
	case 1:
		e.is32 = true
		if len(data) <= 52 {
			return nil, errELF
		}
	case 2:
		if len(data) <= 64 {
			return nil, errELF
		}
	default:
		return nil, errELF
	}
	switch data[5] {
	case 1:
		e.order = binary.LittleEndian
	case 2:
		e.order = binary.BigEndian
	default:
		return nil, errELF
	}
	var shentsize, shstrndx uint64
	if e.is32 {
		e.shoff, _ = e.uint(32, 4)
		shentsize, _ = e.uint(46, 2)
		n, _ := e.uint(48, 2)
		e.shnum = uint16(n)
		shstrndx, _ = e.uint(50, 2)
		e.shdrSize, e.symSize = 40, 16
	} else {
		e.shoff, _ = e.uint(40, 8)
		shentsize, _ = e.uint(58, 2)
		n, _ := e.uint(60, 2)
		e.shnum = uint16(n)
		shstrndx, _ = e.uint(62, 2)
		e.shdrSize, e.symSize = 64, 24
	}
	if shentsize != e.shdrSize {
		return nil, errELF
	}
	end := e.shdrSize*uint64(e.shnum) + e.shoff
	if end < e.shoff || end > uint64(len(data)) {
		return nil, errELF
	}
	off, size, _, ok := e.section(uint16(shstrndx))
	if !ok || size == 0 || data[off+size-1] != 0 {
		return nil, errELF
	}
	e.strOff, e.strSize = off, size
	return e, nil
}

// section is section idx's offset, size and name offset, if the section
// lies within the image.
func (e *moduleELF) section(idx uint16) (off, size uint64, name uint32, ok bool) {
	if idx == 0 || idx >= e.shnum {
		return 0, 0, 0, false
	}
	h := e.shoff + uint64(idx)*e.shdrSize
	var n uint64
	if e.is32 {
		n, _ = e.uint(h, 4)
		off, _ = e.uint(h+16, 4)
		size, _ = e.uint(h+20, 4)
	} else {
		n, _ = e.uint(h, 4)
		off, _ = e.uint(h+24, 8)
		size, _ = e.uint(h+32, 8)
	}
	if off+size < off || off+size > uint64(len(e.data)) {
		return 0, 0, 0, false
	}
	return off, size, uint32(n), true
}

// find returns the first section called name (libkmod's
// kmod_elf_get_section).
func (e *moduleELF) find(name string) ([]byte, uint64, bool) {
	for i := uint16(1); i < e.shnum; i++ {
		off, size, n, ok := e.section(i)
		if !ok || uint64(n) >= e.strSize {
			continue
		}
		if e.cstring(e.strOff+uint64(n)) == name {
			return e.data[off : off+size], off, true
		}
	}
	return nil, 0, false
}

// splitStrings splits a section of NUL-separated strings as
// kmod_elf_get_strings does: leading NULs skipped, runs of NULs one
// separator, an unterminated last string kept, and nothing at all from a
// section of one byte or less after the leading NULs.
func splitStrings(b []byte) []string {
	for len(b) > 1 && b[0] == 0 {
		b = b[1:]
	}
	if len(b) <= 1 {
		return nil
	}
	var out []string
	for _, s := range strings.Split(string(b), "\x00") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// modinfo is the module's .modinfo as key, value pairs in section order;
// a string without '=' is both key and value, as libkmod reads it.
func (e *moduleELF) modinfo() [][2]string {
	b, _, ok := e.find(".modinfo")
	if !ok {
		return nil
	}
	var kv [][2]string
	for _, s := range splitStrings(b) {
		if k, v, ok := strings.Cut(s, "="); ok {
			kv = append(kv, [2]string{k, v})
		} else {
			kv = append(kv, [2]string{s, s})
		}
	}
	return kv
}

type elfSym struct {
	name  uint32
	info  uint8
	shndx uint16
}

func (e *moduleELF) sym(off uint64) elfSym {
	var s elfSym
	var n, info, shndx uint64
	if e.is32 {
		n, _ = e.uint(off, 4)
		info, _ = e.uint(off+12, 1)
		shndx, _ = e.uint(off+14, 2)
	} else {
		n, _ = e.uint(off, 4)
		info, _ = e.uint(off+4, 1)
		shndx, _ = e.uint(off+6, 2)
	}
	s.name, s.info, s.shndx = uint32(n), uint8(info), uint16(shndx)
	return s
}

// symtab returns .symtab's and .strtab's places, or ok false when
// libkmod would not read them.
func (e *moduleELF) symtab() (symOff, symCount, strOff, strSize uint64, ok bool) {
	strtab, so, ok1 := e.find(".strtab")
	symtab, yo, ok2 := e.find(".symtab")
	if !ok1 || !ok2 || uint64(len(symtab))%e.symSize != 0 {
		return 0, 0, 0, 0, false
	}
	return yo, uint64(len(symtab)) / e.symSize, so, uint64(len(strtab)), true
}

// exports are the symbols the module exports, as kmod_elf_get_symbols
// finds them: the __crc_ symbols of .symtab (a kernel with
// CONFIG_MODVERSIONS), else the strings of __ksymtab_strings.
func (e *moduleELF) exports() []string {
	if symOff, n, strOff, strSize, ok := e.symtab(); ok {
		var names []string
		bad := false
		for i := uint64(1); i < n; i++ {
			s := e.sym(symOff + i*e.symSize)
			if uint64(s.name) >= strSize {
				bad = true
				break
			}
			if name := e.cstring(strOff + uint64(s.name)); strings.HasPrefix(name, "__crc_") {
				names = append(names, name[len("__crc_"):])
			}
		}
		if !bad && len(names) > 0 {
			return names
		}
	}
	b, _, ok := e.find("__ksymtab_strings")
	if !ok {
		return nil
	}
	return splitStrings(b)
}

// undefined are the symbols the module needs, as
// kmod_elf_get_dependency_symbols lists them: .symtab's undefined
// symbols in order, then the __versions entries none of them named
// (module_layout). Nil when libkmod fails on the tables.
func (e *moduleELF) undefined() []string {
	const verlen = 64
	versions, verOff, hasVer := e.find("__versions")
	if hasVer && len(versions)%verlen != 0 {
		hasVer = false
	}
	crclen := uint64(8)
	if e.is32 {
		crclen = 4
	}
	symOff, n, strOff, strSize, ok := e.symtab()
	if !ok {
		return nil
	}
	sparc := false
	if m, _ := e.uint(18, 2); m == 2 || m == 43 { // EM_SPARC, EM_SPARCV9
		sparc = true
	}
	var vernames []string
	if hasVer {
		for i := 0; i < len(versions)/verlen; i++ {
			vernames = append(vernames, e.cstring(verOff+uint64(i*verlen)+crclen))
		}
	}
	visited := make([]bool, len(vernames))
	var names []string
	for i := uint64(1); i < n; i++ {
		s := e.sym(symOff + i*e.symSize)
		if s.shndx != 0 {
			continue
		}
		if sparc && s.info&0xf == 13 { // STT_REGISTER
			continue
		}
		if uint64(s.name) >= strSize {
			return nil
		}
		name := e.cstring(strOff + uint64(s.name))
		if name == "" {
			continue
		}
		names = append(names, name)
		for j, v := range vernames {
			if v == name {
				visited[j] = true
				break
			}
		}
	}
	for j, v := range vernames {
		if !visited[j] {
			names = append(names, v)
		}
	}
	return names
}

// describe is for error messages about a module that is not ELF.
func describe(data []byte) string {
	if len(data) > 4 {
		return fmt.Sprintf("%d bytes starting % x", len(data), data[:4])
	}
	return fmt.Sprintf("%d bytes", len(data))
}
