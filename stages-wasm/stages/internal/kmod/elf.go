package kmod

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// moduleELF reads a module's ELF image the way libkmod 30 does
// (libkmod-elf.c): not with debug/elf, whose checks differ, because
// depmod's output depends on which sections libkmod accepts and how it
// splits their strings. The bytes come from the tree, so every offset is
// checked against the image; a section out of bounds is skipped, as
// libkmod skips it.
type moduleELF struct {
	src      io.ReaderAt
	size     uint64
	is32     bool
	order    binary.ByteOrder
	header   []byte
	shoff    uint64
	shnum    uint16
	shdrs    []byte // the section header table
	shstr    []byte // section name strings
	symSize  uint64 // one symbol table entry
	shdrSize uint64
	cache    map[uint16][]byte
}

var errELF = errors.New("not a valid ELF module")

// readAt reads n bytes at off, which the caller has checked lie within
// the image.
func (e *moduleELF) readAt(off, n uint64) ([]byte, error) {
	b := make([]byte, n)
	if _, err := e.src.ReadAt(b, int64(off)); err != nil && !(errors.Is(err, io.EOF) && off+n == e.size) {
		return nil, err
	}
	return b, nil
}

func (e *moduleELF) uintIn(b []byte, off, size uint64) uint64 {
	if off+size < off || off+size > uint64(len(b)) {
		return 0
	}
	b = b[off : off+size]
	switch size {
	case 1:
		return uint64(b[0])
	case 2:
		return uint64(e.order.Uint16(b))
	case 4:
		return uint64(e.order.Uint32(b))
	default:
		return e.order.Uint64(b)
	}
}

// cstring is the NUL-terminated string at rel in a section read at off.
// libkmod reads such strings unbounded: one that runs past the section
// goes on in the rest of the image, which is read then, up to its end.
func (e *moduleELF) cstring(sec []byte, off, rel uint64) string {
	if rel >= uint64(len(sec)) {
		return ""
	}
	b := sec[rel:]
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return string(b[:i])
	}
	start := off + uint64(len(sec))
	if start >= e.size {
		return string(b)
	}
	rest, err := e.readAt(start, e.size-start)
	if err != nil {
		return string(b)
	}
	if i := bytes.IndexByte(rest, 0); i >= 0 {
		rest = rest[:i]
	}
	return string(b) + string(rest)
}

// parseModuleELF reads the ELF header and section headers of a module of
// size bytes; sections are read when asked for, so that of a module's
// code nothing is read.
func parseModuleELF(src io.ReaderAt, size int64) (*moduleELF, error) {
	e := &moduleELF{src: src, size: uint64(size), cache: map[uint16][]byte{}}
	n := uint64(64)
	if e.size < n {
		n = e.size
	}
	h, err := e.readAt(0, n)
	if err != nil {
		return nil, err
	}
	e.header = h
	if len(h) <= 16 || !bytes.HasPrefix(h, []byte("\x7fELF")) {
		return nil, errELF
	}
	switch h[4] {
	case 1:
		e.is32 = true
		if e.size <= 52 {
			return nil, errELF
		}
	case 2:
		if e.size <= 64 {
			return nil, errELF
		}
	default:
		return nil, errELF
	}
	switch h[5] {
	case 1:
		e.order = binary.LittleEndian
	case 2:
		e.order = binary.BigEndian
	default:
		return nil, errELF
	}
	var shentsize, shstrndx uint64
	if e.is32 {
		e.shoff = e.uintIn(h, 32, 4)
		shentsize = e.uintIn(h, 46, 2)
		e.shnum = uint16(e.uintIn(h, 48, 2))
		shstrndx = e.uintIn(h, 50, 2)
		e.shdrSize, e.symSize = 40, 16
	} else {
		e.shoff = e.uintIn(h, 40, 8)
		shentsize = e.uintIn(h, 58, 2)
		e.shnum = uint16(e.uintIn(h, 60, 2))
		shstrndx = e.uintIn(h, 62, 2)
		e.shdrSize, e.symSize = 64, 24
	}
	if shentsize != e.shdrSize {
		return nil, errELF
	}
	end := e.shdrSize*uint64(e.shnum) + e.shoff
	if end < e.shoff || end > e.size {
		return nil, errELF
	}
	if e.shdrs, err = e.readAt(e.shoff, end-e.shoff); err != nil {
		return nil, err
	}
	off, sz, _, ok := e.section(uint16(shstrndx))
	if !ok || sz == 0 {
		return nil, errELF
	}
	if e.shstr, err = e.readAt(off, sz); err != nil {
		return nil, err
	}
	if e.shstr[sz-1] != 0 {
		return nil, errELF
	}
	return e, nil
}

// section is section idx's offset, size and name offset, if the section
// lies within the image.
func (e *moduleELF) section(idx uint16) (off, size uint64, name uint32, ok bool) {
	if idx == 0 || idx >= e.shnum {
		return 0, 0, 0, false
	}
	h := uint64(idx) * e.shdrSize
	n := e.uintIn(e.shdrs, h, 4)
	if e.is32 {
		off = e.uintIn(e.shdrs, h+16, 4)
		size = e.uintIn(e.shdrs, h+20, 4)
	} else {
		off = e.uintIn(e.shdrs, h+24, 8)
		size = e.uintIn(e.shdrs, h+32, 8)
	}
	if off+size < off || off+size > e.size {
		return 0, 0, 0, false
	}
	return off, size, uint32(n), true
}

// find returns the contents and offset of the first section called name
// (libkmod's kmod_elf_get_section). A section that cannot be read is as
// good as absent.
func (e *moduleELF) find(name string) ([]byte, uint64, bool) {
	for i := uint16(1); i < e.shnum; i++ {
		off, size, n, ok := e.section(i)
		if !ok || uint64(n) >= uint64(len(e.shstr)) {
			continue
		}
		rest := e.shstr[n:]
		if !bytes.HasPrefix(rest, []byte(name)) || len(rest) == len(name) || rest[len(name)] != 0 {
			continue
		}
		if b, ok := e.cache[i]; ok {
			return b, off, true
		}
		b, err := e.readAt(off, size)
		if err != nil {
			return nil, 0, false
		}
		e.cache[i] = b
		return b, off, true
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

func (e *moduleELF) sym(symtab []byte, i uint64) elfSym {
	off := i * e.symSize
	if e.is32 {
		return elfSym{uint32(e.uintIn(symtab, off, 4)), uint8(e.uintIn(symtab, off+12, 1)), uint16(e.uintIn(symtab, off+14, 2))}
	}
	return elfSym{uint32(e.uintIn(symtab, off, 4)), uint8(e.uintIn(symtab, off+4, 1)), uint16(e.uintIn(symtab, off+6, 2))}
}

// symtab returns .symtab, .strtab and .strtab's offset, or ok false when
// libkmod would not read them.
func (e *moduleELF) symtab() (symtab, strtab []byte, strOff uint64, ok bool) {
	strtab, so, ok1 := e.find(".strtab")
	symtab, _, ok2 := e.find(".symtab")
	if !ok1 || !ok2 || uint64(len(symtab))%e.symSize != 0 {
		return nil, nil, 0, false
	}
	return symtab, strtab, so, true
}

// exports are the symbols the module exports, as kmod_elf_get_symbols
// finds them: the __crc_ symbols of .symtab (a kernel with
// CONFIG_MODVERSIONS), else the strings of __ksymtab_strings.
func (e *moduleELF) exports() []string {
	if symtab, strtab, strOff, ok := e.symtab(); ok {
		var names []string
		bad := false
		n := uint64(len(symtab)) / e.symSize
		for i := uint64(1); i < n; i++ {
			s := e.sym(symtab, i)
			if uint64(s.name) >= uint64(len(strtab)) {
				bad = true
				break
			}
			if !bytes.HasPrefix(strtab[s.name:], []byte("__crc_")) {
				continue
			}
			names = append(names, e.cstring(strtab, strOff, uint64(s.name))[len("__crc_"):])
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
	symtab, strtab, strOff, ok := e.symtab()
	if !ok {
		return nil
	}
	m := e.uintIn(e.header, 18, 2)
	sparc := m == 2 || m == 43 // EM_SPARC, EM_SPARCV9
	var vernames []string
	firstVer := map[string]int{} // kmod_elf_crc_find takes the first match
	if hasVer {
		for i := 0; i < len(versions)/verlen; i++ {
			v := e.cstring(versions, verOff, uint64(i*verlen)+crclen)
			vernames = append(vernames, v)
			if _, ok := firstVer[v]; !ok {
				firstVer[v] = i
			}
		}
	}
	visited := make([]bool, len(vernames))
	var names []string
	n := uint64(len(symtab)) / e.symSize
	for i := uint64(1); i < n; i++ {
		s := e.sym(symtab, i)
		if s.shndx != 0 {
			continue
		}
		if sparc && s.info&0xf == 13 { // STT_REGISTER
			continue
		}
		if uint64(s.name) >= uint64(len(strtab)) {
			return nil
		}
		name := e.cstring(strtab, strOff, uint64(s.name))
		if name == "" {
			continue
		}
		names = append(names, name)
		if j, ok := firstVer[name]; ok {
			visited[j] = true
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
