// Package ldcache computes /etc/ld.so.cache as glibc 2.36's `ldconfig -r
// TREE` writes it (format "glibc-ld.so.cache1.1", elf/cache.c), and the
// SONAME links ldconfig makes, for a tree it reads through a Tree.
//
// The directories are ldconfig's: those of /etc/ld.so.conf (with its
// include globs), then the multiarch /lib/TRIPLET and /usr/lib/TRIPLET it
// always adds, a directory reached twice (merged /usr) scanned once under
// its first name. In each, every file named lib* or ld-* with ".so" in its
// name that is an ELF shared object of the tree's architecture gives one
// entry per SONAME (the file name when it has none), with the path
// DIR/SONAME. Entries are ordered as ldconfig orders them
// (_dl_cache_libcmp, descending), so `ldconfig -p -C` lists the same lines.
// Two things differ from ldconfig's bytes: the string table is not
// suffix-merged, and the generator extension names kiln. glibc-hwcaps
// subdirectories are not scanned (Debian 12 ships none).
package ldcache

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// Tree is the file system of the tree, by absolute paths inside it.
type Tree interface {
	// Stat follows symlinks; ID identifies the file (device and inode).
	Stat(p string) (isDir bool, id string, err error)
	Lstat(p string) (fs.FileMode, error)
	ReadDir(p string) ([]fs.DirEntry, error)
	ReadFile(p string) ([]byte, error)
	Open(p string) (io.ReadSeekCloser, error)
	Glob(pattern string) ([]string, error)
}

// ErrArch is returned for an architecture whose cache flags kiln does not
// know.
var ErrArch = errors.New("unsupported architecture")

// Arch is what the cache needs to know about a Debian architecture.
type Arch struct {
	Triplet string
	Machine elf.Machine
	Class   elf.Class
	Flags   int32 // FLAG_ELF_LIBC6 and the architecture's bits
}

// Arches are the Debian architectures kiln writes caches for.
var Arches = map[string]Arch{
	"amd64": {"x86_64-linux-gnu", elf.EM_X86_64, elf.ELFCLASS64, 0x0303},
	"arm64": {"aarch64-linux-gnu", elf.EM_AARCH64, elf.ELFCLASS64, 0x0a03},
	"i386":  {"i386-linux-gnu", elf.EM_386, elf.ELFCLASS32, 0x0003},
}

// Entry is one library in the cache.
type Entry struct {
	Soname, Path string
	Flags        int32
}

// Link is a SONAME link ldconfig creates: Path -> Target (a name in the
// same directory).
type Link struct{ Path, Target string }

// Scan finds the libraries of t for arch.
func Scan(t Tree, arch string) ([]Entry, []Link, error) {
	a, ok := Arches[arch]
	if !ok {
		return nil, nil, fmt.Errorf("%w %q", ErrArch, arch)
	}
	var dirs []string
	if err := parseConf(t, "/etc/ld.so.conf", &dirs, 0); err != nil {
		return nil, nil, err
	}
	dirs = append(dirs, "/lib/"+a.Triplet, "/usr/lib/"+a.Triplet)
	seen := map[string]bool{}
	var entries []Entry
	var links []Link
	for _, d := range dirs {
		isDir, id, err := t.Stat(d)
		if err != nil || !isDir || seen[id] {
			continue
		}
		seen[id] = true
		es, ls, err := scanDir(t, d, a)
		if err != nil {
			return nil, nil, err
		}
		entries = append(entries, es...)
		links = append(links, ls...)
	}
	slices.SortStableFunc(entries, func(x, y Entry) int {
		if r := libcmp(y.Soname, x.Soname); r != 0 {
			return r
		}
		return int(y.Flags) - int(x.Flags)
	})
	return entries, links, nil
}

func parseConf(t Tree, file string, dirs *[]string, depth int) error {
	if depth > 10 {
		return fmt.Errorf("%s: includes nested too deep", file)
	}
	b, err := t.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if i := strings.IndexByte(l, '#'); i >= 0 {
			l = l[:i]
		}
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "include":
			for _, pat := range f[1:] {
				if !path.IsAbs(pat) {
					pat = path.Join(path.Dir(file), pat)
				}
				ms, err := t.Glob(pat)
				if err != nil {
					return fmt.Errorf("%s: include %s: %w", file, pat, err)
				}
				slices.Sort(ms)
				for _, m := range ms {
					if err := parseConf(t, m, dirs, depth+1); err != nil {
						return err
					}
				}
			}
		case "hwcap":
		default:
			for _, d := range f {
				// Old "DIR=TYPE" entries; the type is ignored since 2.26.
				if i := strings.IndexByte(d, '='); i > 0 {
					d = d[:i]
				}
				if path.IsAbs(d) {
					*dirs = append(*dirs, path.Clean(d))
				}
			}
		}
	}
	return nil
}

type dlib struct {
	name, soname string
	isLink       bool
}

func scanDir(t Tree, dir string, a Arch) ([]Entry, []Link, error) {
	ents, err := t.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", dir, err)
	}
	var libs []*dlib
	for _, e := range ents {
		n := e.Name()
		if !(strings.HasPrefix(n, "lib") || strings.HasPrefix(n, "ld-")) || !strings.Contains(n, ".so") {
			continue
		}
		p := path.Join(dir, n)
		mode, err := t.Lstat(p)
		if err != nil {
			continue
		}
		isLink := mode&fs.ModeSymlink != 0
		if !isLink && !mode.IsRegular() {
			continue
		}
		isDir, _, err := t.Stat(p)
		if err != nil || isDir {
			continue
		}
		soname, ok := readSoname(t, p, a)
		if !ok {
			continue
		}
		if soname == "" {
			soname = n
		}
		if isLink {
			// As ldconfig: a link counts as a link only if it points to
			// its SONAME or is the .so link for ld(1).
			real, err := resolve(t, p)
			if err != nil {
				continue
			}
			rb := path.Base(real)
			if rb != soname && !(strings.HasSuffix(rb, ".so") && strings.HasPrefix(soname, rb)) {
				isLink = false
			}
		}
		if isLink {
			soname = n
		}
		var found *dlib
		for _, l := range libs {
			if l.soname == soname {
				found = l
				break
			}
		}
		switch {
		case found == nil:
			libs = append(libs, &dlib{name: n, soname: soname, isLink: isLink})
		case (!isLink && found.isLink) || (isLink == found.isLink && libcmp(found.name, n) < 0):
			found.name, found.isLink = n, isLink
		}
	}
	var entries []Entry
	var links []Link
	for _, l := range libs {
		if l.name != l.soname {
			if _, err := t.Lstat(path.Join(dir, l.soname)); errors.Is(err, fs.ErrNotExist) {
				links = append(links, Link{path.Join(dir, l.soname), l.name})
			}
		}
		entries = append(entries, Entry{Soname: l.soname, Path: path.Join(dir, l.soname), Flags: a.Flags})
	}
	return entries, links, nil
}

// resolve follows p's symlinks inside the tree.
func resolve(t Tree, p string) (string, error) {
	type readlinker interface{ Readlink(string) (string, error) }
	rl, ok := t.(readlinker)
	if !ok {
		return p, nil
	}
	for range 40 {
		mode, err := t.Lstat(p)
		if err != nil {
			return "", err
		}
		if mode&fs.ModeSymlink == 0 {
			return p, nil
		}
		target, err := rl.Readlink(p)
		if err != nil {
			return "", err
		}
		if path.IsAbs(target) {
			p = path.Clean(target)
		} else {
			p = path.Join(path.Dir(p), target)
		}
	}
	return "", fmt.Errorf("%s: too many links", p)
}

// readSoname returns the DT_SONAME of the ELF shared object at p, "" if it
// has none, and false if p is not one of a's shared objects.
func readSoname(t Tree, p string, a Arch) (string, bool) {
	f, err := t.Open(p)
	if err != nil {
		return "", false
	}
	defer f.Close()
	ra, ok := f.(io.ReaderAt)
	if !ok {
		return "", false
	}
	ef, err := elf.NewFile(ra)
	if err != nil {
		return "", false
	}
	defer ef.Close()
	if ef.Type != elf.ET_DYN || ef.Machine != a.Machine || ef.Class != a.Class {
		return "", false
	}
	names, err := ef.DynString(elf.DT_SONAME)
	if err != nil || len(names) == 0 {
		return "", true
	}
	return names[0], true
}

// libcmp is glibc's _dl_cache_libcmp: digit runs compare as numbers.
func libcmp(p1, p2 string) int {
	isDigit := func(c byte) bool { return c >= '0' && c <= '9' }
	i, j := 0, 0
	for i < len(p1) {
		var c2 byte
		if j < len(p2) {
			c2 = p2[j]
		}
		switch {
		case isDigit(p1[i]):
			if !isDigit(c2) {
				return 1
			}
			v1, v2 := 0, 0
			for i < len(p1) && isDigit(p1[i]) {
				v1 = v1*10 + int(p1[i]-'0')
				i++
			}
			for j < len(p2) && isDigit(p2[j]) {
				v2 = v2*10 + int(p2[j]-'0')
				j++
			}
			if v1 != v2 {
				return v1 - v2
			}
		case isDigit(c2):
			return -1
		case p1[i] != c2:
			return int(p1[i]) - int(c2)
		default:
			i++
			j++
		}
	}
	if j < len(p2) {
		return -int(p2[j])
	}
	return 0
}

// Generator is the generator string kiln writes in the cache's extension,
// where ldconfig writes its own version.
const Generator = "kiln"

// Encode writes the cache for entries, in order.
func Encode(entries []Entry) []byte {
	const headerSize, entrySize = 48, 24
	strOff := headerSize + entrySize*len(entries)
	var strs bytes.Buffer
	offsets := map[string]uint32{}
	intern := func(s string) uint32 {
		if o, ok := offsets[s]; ok {
			return o
		}
		o := uint32(strOff + strs.Len())
		strs.WriteString(s)
		strs.WriteByte(0)
		offsets[s] = o
		return o
	}
	type fe struct {
		flags      int32
		key, value uint32
	}
	fes := make([]fe, len(entries))
	for i, e := range entries {
		fes[i] = fe{e.Flags, intern(e.Soname), intern(e.Path)}
	}
	extOff := (strOff + strs.Len() + 3) &^ 3
	var b bytes.Buffer
	b.WriteString("glibc-ld.so.cache1.1")
	le := binary.LittleEndian
	w32 := func(v uint32) { b.Write(le.AppendUint32(nil, v)) }
	w32(uint32(len(entries)))
	w32(uint32(strs.Len()))
	b.Write([]byte{2, 0, 0, 0}) // flags: little-endian; padding
	w32(uint32(extOff))
	w32(0)
	w32(0)
	w32(0)
	for _, e := range fes {
		w32(uint32(e.flags))
		w32(e.key)
		w32(e.value)
		w32(0)                   // osversion_unused
		b.Write(make([]byte, 8)) // hwcap
	}
	b.Write(strs.Bytes())
	for b.Len() < extOff {
		b.WriteByte(0)
	}
	// struct cache_extension: magic, count, then one section (tag 0:
	// generator) whose data follows the section table.
	w32(0xeaa42174)
	w32(1)
	dataOff := extOff + 8 + 16
	w32(0)
	w32(0)
	w32(uint32(dataOff))
	w32(uint32(len(Generator)))
	b.WriteString(Generator)
	return b.Bytes()
}
