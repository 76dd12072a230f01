package kmod

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// DepmodFiles are the files kmod 30's depmod -a writes under
// /lib/modules/VERSION, in the order it writes them. (modules.weakdep
// came with kmod 33.)
var DepmodFiles = []string{
	"modules.dep", "modules.dep.bin", "modules.alias", "modules.alias.bin",
	"modules.softdep", "modules.symbols", "modules.symbols.bin",
	"modules.builtin.bin", "modules.builtin.alias.bin", "modules.devname",
}

// Decompressor returns a compressed module's ELF image; kind is "xz" or
// "zst", as the file's magic says (libkmod looks at the magic, not at the
// name). The caller supplies it so that this package needs no
// decompression code.
type Decompressor func(kind string, data []byte) ([]byte, error)

// dmod is depmod's struct mod.
type dmod struct {
	name       string
	relpath    string // under the kernel's module directory
	uncrelpath string
	info       [][2]string
	exports    []string
	undef      []string
	sortIdx    int
	depSortIdx int
	idx        int
	deps       []*dmod
	users      int
}

type depmodSymbol struct {
	name  string
	owner *dmod
}

// Depmod is the result of running depmod on one kernel's modules.
type Depmod struct {
	Files    map[string][]byte // by name in DepmodFiles
	Modules  int
	Warnings []string
}

// kmodExts are the module file names Debian 12's kmod (+XZ +ZSTD -ZLIB)
// looks at.
var kmodExts = []string{".ko", ".ko.xz", ".ko.zst"}

func hasKmodExt(name string) bool {
	for _, e := range kmodExts {
		if len(name) > len(e) && strings.HasSuffix(name, e) {
			return true
		}
	}
	return false
}

// modnameOf is kmod's path_to_modname: the base name up to its first
// '.', with '-' as '_'.
func modnameOf(p string) string {
	b := p[strings.LastIndexByte(p, '/')+1:]
	if i := strings.IndexByte(b, '.'); i >= 0 {
		b = b[:i]
	}
	return strings.ReplaceAll(b, "-", "_")
}

// RunDepmod computes what `depmod -b ROOT VERSION` (kmod 30) writes for
// the modules under dir in fsys (ROOT/lib/modules/VERSION), with conf
// from depmod.d. decompress opens .ko.xz and .ko.zst modules.
func RunDepmod(fsys fs.FS, dir string, conf *DepmodConfig, decompress Decompressor) (*Depmod, error) {
	d := &depmodRun{fsys: fsys, dir: dir, conf: conf, byName: map[string]*dmod{}, decompress: decompress}
	d.warn = append(d.warn, conf.Warnings...)
	if err := d.search(dir, "", 0); err != nil {
		return nil, err
	}
	// The module array is the modules_by_name hash (512 buckets) in
	// iteration order, then sorted by modules.order.
	mods := make([]*dmod, 0, len(d.byName))
	for _, m := range d.byName {
		mods = append(mods, m)
	}
	hashOrder(mods, func(m *dmod) string { return m.name }, 512)
	if err := d.sortByOrder(mods); err != nil {
		return nil, err
	}
	for i, m := range mods {
		m.idx = i
	}
	if err := d.load(mods); err != nil {
		return nil, err
	}
	syms := d.resolve(mods)
	if err := calculateDependencies(mods); err != nil {
		return nil, err
	}
	out := &Depmod{Files: map[string][]byte{}, Modules: len(mods)}
	var err error
	out.Files["modules.dep"] = outputDeps(mods)
	if out.Files["modules.dep.bin"], err = outputDepsBin(mods); err != nil {
		return nil, fmt.Errorf("modules.dep.bin: %w", err)
	}
	out.Files["modules.alias"] = outputAliases(mods)
	if out.Files["modules.alias.bin"], err = d.outputAliasesBin(mods); err != nil {
		return nil, fmt.Errorf("modules.alias.bin: %w", err)
	}
	out.Files["modules.softdep"] = outputSoftdeps(mods)
	out.Files["modules.symbols"] = outputSymbols(syms)
	if out.Files["modules.symbols.bin"], err = outputSymbolsBin(syms); err != nil {
		return nil, fmt.Errorf("modules.symbols.bin: %w", err)
	}
	if out.Files["modules.builtin.bin"], err = d.outputBuiltinBin(); err != nil {
		return nil, fmt.Errorf("modules.builtin.bin: %w", err)
	}
	if out.Files["modules.builtin.alias.bin"], err = d.outputBuiltinAliasBin(); err != nil {
		return nil, fmt.Errorf("modules.builtin.alias.bin: %w", err)
	}
	out.Files["modules.devname"] = d.outputDevname(mods)
	out.Warnings = d.warn
	return out, nil
}

type depmodRun struct {
	fsys       fs.FS
	dir        string
	conf       *DepmodConfig
	byName     map[string]*dmod
	decompress Decompressor
	warn       []string
}

func (d *depmodRun) warnf(format string, args ...any) {
	d.warn = append(d.warn, fmt.Sprintf(format, args...))
}

func (d *depmodRun) excluded(name string) bool {
	return name == "." || name == ".." || name == "build" || name == "source" || slices.Contains(d.conf.excludes, name)
}

// search walks the module directory as depmod_modules_search_dir does.
// depmod takes entries in readdir order, which matters only between two
// modules of one name and equal priority (the first found stays): here
// it is name order. Symbolic links are followed, as depmod's fstatat
// does; a loop of them stops at a depth no module tree has.
func (d *depmodRun) search(dir, rel string, depth int) error {
	if depth > 32 {
		return fmt.Errorf("%s: directories nest deeper than 32 (a symbolic link loop?)", dir)
	}
	ents, err := fs.ReadDir(d.fsys, dir)
	if err != nil {
		return fmt.Errorf("reading %s: %w", dir, err)
	}
	for _, e := range ents {
		name := e.Name()
		if d.excluded(name) {
			continue
		}
		p, r := dir+"/"+name, rel+name
		isDir := e.IsDir()
		if !e.Type().IsRegular() && !isDir {
			st, err := fs.Stat(d.fsys, p)
			if err != nil {
				d.warnf("%s: %v (skipped, as depmod does)", p, err)
				continue
			}
			switch {
			case st.IsDir():
				isDir = true
			case st.Mode().IsRegular():
			default:
				d.warnf("%s: unsupported file type %v (skipped, as depmod does)", p, st.Mode().Type())
				continue
			}
		}
		if isDir {
			if err := d.search(p, r+"/", depth+1); err != nil {
				return err
			}
			continue
		}
		if !hasKmodExt(name) {
			continue
		}
		if err := d.add(r); err != nil {
			return err
		}
	}
	return nil
}

func (d *depmodRun) add(rel string) error {
	name := modnameOf(rel)
	if name == "" {
		return fmt.Errorf("%s: module file name gives an empty module name", rel)
	}
	if old, ok := d.byName[name]; ok {
		if d.oldWins(old, rel, name) {
			return nil
		}
	}
	slash := strings.LastIndexByte(rel, '/')
	n := slash + 1 + len(name) + len(".ko")
	if n > len(rel) {
		n = len(rel)
	}
	d.byName[name] = &dmod{name: name, relpath: rel, uncrelpath: rel[:n], sortIdx: 1, depSortIdx: 1<<31 - 1}
	return nil
}

// oldWins is depmod_module_is_higher_priority: overrides first, then the
// search list (a later entry wins; modules in no listed directory have
// built-in's priority). Paths are compared up to the module name's
// length, as depmod does.
func (d *depmodRun) oldWins(old *dmod, newRel, name string) bool {
	cut := func(rel string) string {
		n := strings.LastIndexByte(rel, '/') + 1 + len(name)
		if n > len(rel) {
			n = len(rel)
		}
		return rel[:n]
	}
	np, op := cut(newRel), cut(old.relpath)
	for _, ov := range d.conf.overrides {
		if np == ov {
			return false
		}
		if op == ov {
			return true
		}
	}
	bprio, oldprio, newprio := -1, -1, -1
	under := func(p, dir string) bool {
		return len(p) > len(dir) && p[len(dir)] == '/' && p[:len(dir)] == dir
	}
	for i, s := range d.conf.searches {
		switch {
		case s == "":
			bprio = i
		case under(np, s):
			newprio = i
		case under(op, s):
			oldprio = i
		}
	}
	if newprio < 0 {
		newprio = bprio
	}
	if oldprio < 0 {
		oldprio = bprio
	}
	return newprio <= oldprio
}

// fgetsLines splits data as repeated fgets with a PATH_MAX buffer does.
func fgetsLines(data []byte) []string {
	var lines []string
	for len(data) > 0 {
		n := bytes.IndexByte(data, '\n') + 1
		if n == 0 {
			n = len(data)
		}
		if n > 4095 {
			n = 4095
		}
		lines = append(lines, string(data[:n]))
		data = data[n:]
	}
	return lines
}

// readOptional reads a file of the module directory, nil if absent.
func (d *depmodRun) readOptional(name string) ([]byte, error) {
	b, err := fs.ReadFile(d.fsys, d.dir+"/"+name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return b, nil
}

// sortByOrder is depmod_modules_sort: modules modules.order lists first,
// in its order, then the others in hash order (glibc's qsort is a stable
// merge sort for arrays this size). A last line without a newline makes
// depmod skip the sort entirely.
func (d *depmodRun) sortByOrder(mods []*dmod) error {
	data, err := d.readOptional("modules.order")
	if err != nil || data == nil {
		return err
	}
	lines := fgetsLines(data)
	for i, l := range lines {
		if !strings.HasSuffix(l, "\n") {
			d.warnf("%s/modules.order line %d misses its newline: not sorted by it (as depmod does)", d.dir, i+1)
			return nil
		}
	}
	byUnc := map[string]*dmod{}
	for _, m := range mods {
		byUnc[m.uncrelpath] = m
	}
	total := len(lines) + 1
	for i, l := range lines {
		if m := byUnc[strings.TrimSuffix(l, "\n")]; m != nil {
			m.sortIdx = i + 1 - total
		}
	}
	slices.SortStableFunc(mods, func(a, b *dmod) int { return a.sortIdx - b.sortIdx })
	return nil
}

// image opens a module's ELF image, decompressed by its magic as
// libkmod's kmod_file_open does, or returns nil with a warning where
// libkmod fails: depmod then lists the module with nothing from it. A
// plain module is read in the parts depmod needs, not whole.
func (d *depmodRun) image(m *dmod) (*moduleELF, func()) {
	e, closer, err := d.open(m.relpath)
	if err != nil {
		d.warnf("%s: %v: listed without dependencies, aliases or symbols (as depmod does)", m.relpath, err)
		return nil, nil
	}
	return e, closer
}

func (d *depmodRun) open(rel string) (*moduleELF, func(), error) {
	f, err := d.fsys.Open(d.dir + "/" + rel)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	ra, ok := f.(io.ReaderAt)
	if !ok || st.Size() < 6 {
		// A file without ReadAt (none in the stage's file system), or
		// one too short for libkmod's magic check.
		data, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			return nil, nil, err
		}
		if len(data) < 6 {
			return nil, nil, fmt.Errorf("%s: too short", describe(data))
		}
		return d.fromBytes(data)
	}
	magic := make([]byte, 6)
	if _, err := ra.ReadAt(magic, 0); err != nil {
		f.Close()
		return nil, nil, err
	}
	if isCompressed(magic) {
		data, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			return nil, nil, err
		}
		return d.fromBytes(data)
	}
	e, err := parseModuleELF(ra, st.Size())
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return e, func() { f.Close() }, nil
}

var (
	magicZstd = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicXz   = []byte{0xfd, '7', 'z', 'X', 'Z', 0}
)

func isCompressed(magic []byte) bool {
	return bytes.HasPrefix(magic, magicZstd) || bytes.HasPrefix(magic, magicXz)
}

func (d *depmodRun) fromBytes(data []byte) (*moduleELF, func(), error) {
	var err error
	switch {
	case bytes.HasPrefix(data, magicZstd):
		data, err = d.decompress("zst", data)
	case bytes.HasPrefix(data, magicXz):
		data, err = d.decompress("xz", data)
	}
	if err != nil {
		return nil, nil, err
	}
	e, err := parseModuleELF(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, nil, err
	}
	return e, func() {}, nil
}

func (d *depmodRun) load(mods []*dmod) error {
	for _, m := range mods {
		e, closer := d.image(m)
		if e == nil {
			continue
		}
		m.exports = e.exports()
		m.info = e.modinfo()
		m.undef = e.undefined()
		closer()
	}
	return nil
}

// resolve fills in each module's dependencies from the symbols it needs
// and the others export; a symbol two modules export belongs to the
// later one in module order (kmod's hash_add replaces). It returns the
// symbols in the symbols hash's (2048 buckets) iteration order.
func (d *depmodRun) resolve(mods []*dmod) []*depmodSymbol {
	syms := map[string]*depmodSymbol{}
	for _, s := range []string{"__this_module", "_GLOBAL_OFFSET_TABLE_", "TOC."} {
		syms[s] = &depmodSymbol{name: s}
	}
	for _, m := range mods {
		for _, s := range m.exports {
			syms[s] = &depmodSymbol{name: s, owner: m}
		}
	}
	for _, m := range mods {
		for _, u := range m.undef {
			u = strings.TrimPrefix(u, ".")
			s := syms[u]
			if s == nil || s.owner == nil {
				continue
			}
			if !slices.Contains(m.deps, s.owner) {
				m.deps = append(m.deps, s.owner)
				s.owner.users++
			}
		}
	}
	list := make([]*depmodSymbol, 0, len(syms))
	for _, s := range syms {
		list = append(list, s)
	}
	hashOrder(list, func(s *depmodSymbol) string { return s.name }, 2048)
	return list
}

// calculateDependencies is depmod's topological sort: a stack of the
// modules no other needs, in module order, each popped module numbered
// and its dependencies pushed once all their users are numbered.
func calculateDependencies(mods []*dmod) error {
	users := make([]int, len(mods))
	var roots []int
	for i, m := range mods {
		users[i] = m.users
		if users[i] == 0 {
			roots = append(roots, i)
		}
	}
	sorted := 0
	for len(roots) > 0 {
		src := mods[roots[len(roots)-1]]
		roots = roots[:len(roots)-1]
		src.depSortIdx = sorted
		sorted++
		for _, dst := range src.deps {
			users[dst.idx]--
			if users[dst.idx] == 0 {
				roots = append(roots, dst.idx)
			}
		}
	}
	if sorted < len(mods) {
		var cyc []string
		for i, u := range users {
			if u > 0 {
				cyc = append(cyc, mods[i].name)
			}
		}
		return fmt.Errorf("modules depend on each other in a cycle (depmod refuses those too): %s", strings.Join(cyc, " "))
	}
	for _, m := range mods {
		slices.SortFunc(m.deps, func(a, b *dmod) int { return a.depSortIdx - b.depSortIdx })
	}
	return nil
}

// allDeps is mod_get_all_sorted_dependencies: every module m needs,
// directly or not, once, in dependency sort order.
func allDeps(m *dmod) []*dmod {
	var out []*dmod
	var fill func(m *dmod)
	fill = func(m *dmod) {
		for _, d := range m.deps {
			if slices.Contains(out, d) {
				continue
			}
			out = append(out, d)
			fill(d)
		}
	}
	fill(m)
	slices.SortFunc(out, func(a, b *dmod) int { return a.depSortIdx - b.depSortIdx })
	return out
}

func depLine(m *dmod) string {
	var b strings.Builder
	b.WriteString(m.relpath + ":")
	for _, d := range allDeps(m) {
		b.WriteString(" " + d.relpath)
	}
	return b.String()
}

func outputDeps(mods []*dmod) []byte {
	var b bytes.Buffer
	for _, m := range mods {
		b.WriteString(depLine(m) + "\n")
	}
	return b.Bytes()
}

func outputDepsBin(mods []*dmod) ([]byte, error) {
	x := newIndex()
	for _, m := range mods {
		if err := x.insert(m.name, depLine(m), uint32(m.idx)); err != nil {
			return nil, err
		}
	}
	return x.bytes(), nil
}

func outputAliases(mods []*dmod) []byte {
	var b bytes.Buffer
	b.WriteString("# Aliases extracted from modules themselves.\n")
	for _, m := range mods {
		for _, kv := range m.info {
			if kv[0] == "alias" {
				fmt.Fprintf(&b, "alias %s %s\n", kv[1], m.name)
			}
		}
	}
	return b.Bytes()
}

// aliasNormalize is kmod's alias_normalize: '-' becomes '_' except
// inside brackets; an unmatched bracket is an error.
func aliasNormalize(s string) (string, bool) {
	if len(s) > 4095 {
		s = s[:4095]
	}
	b := []byte(s)
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '-':
			b[i] = '_'
		case ']':
			return "", false
		case '[':
			for i < len(b) && b[i] != ']' {
				i++
			}
			if i == len(b) {
				return "", false
			}
		}
	}
	return string(b), true
}

func (d *depmodRun) outputAliasesBin(mods []*dmod) ([]byte, error) {
	x := newIndex()
	for _, m := range mods {
		for _, kv := range m.info {
			if kv[0] != "alias" {
				continue
			}
			a, ok := aliasNormalize(kv[1])
			if !ok {
				d.warnf("%s: alias %q: unmatched bracket (left out of modules.alias.bin, as depmod does)", m.relpath, kv[1])
				continue
			}
			if err := x.insert(a, m.name, uint32(m.idx)); err != nil {
				return nil, err
			}
		}
	}
	return x.bytes(), nil
}

func outputSoftdeps(mods []*dmod) []byte {
	var b bytes.Buffer
	b.WriteString("# Soft dependencies extracted from modules themselves.\n")
	for _, m := range mods {
		for _, kv := range m.info {
			if kv[0] == "softdep" {
				fmt.Fprintf(&b, "softdep %s %s\n", m.name, kv[1])
			}
		}
	}
	return b.Bytes()
}

func outputSymbols(syms []*depmodSymbol) []byte {
	var b bytes.Buffer
	b.WriteString("# Aliases for symbols, used by symbol_request().\n")
	for _, s := range syms {
		if s.owner != nil {
			fmt.Fprintf(&b, "alias symbol:%s %s\n", s.name, s.owner.name)
		}
	}
	return b.Bytes()
}

func outputSymbolsBin(syms []*depmodSymbol) ([]byte, error) {
	x := newIndex()
	for _, s := range syms {
		if s.owner == nil {
			continue
		}
		if err := x.insert("symbol:"+s.name, s.owner.name, uint32(s.owner.idx)); err != nil {
			return nil, err
		}
	}
	return x.bytes(), nil
}

// outputBuiltinBin indexes modules.builtin's module names. Without the
// file depmod still writes the index file, empty.
func (d *depmodRun) outputBuiltinBin() ([]byte, error) {
	data, err := d.readOptional("modules.builtin")
	if err != nil || data == nil {
		return []byte{}, err
	}
	x := newIndex()
	for i, l := range fgetsLines(data) {
		c := l[0]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			d.warnf("%s/modules.builtin line %d: %q: invalid (skipped, as depmod does)", d.dir, i+1, l)
			continue
		}
		base := l[strings.LastIndexByte(l, '/')+1:]
		if base == "" {
			// depmod would index an uninitialised buffer.
			return nil, fmt.Errorf("%s/modules.builtin line %d: %q has no file name", d.dir, i+1, l)
		}
		if err := x.insert(modnameOf(base), "", 0); err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
	}
	return x.bytes(), nil
}

// builtinStream reads modules.builtin.modinfo as depmod's flush_stream_to
// does, character by character.
type builtinStream struct {
	b   []byte
	pos int
}

func (s *builtinStream) eof() bool { return s.pos > len(s.b) }

func (s *builtinStream) getc() int {
	if s.pos >= len(s.b) {
		s.pos = len(s.b) + 1 // feof is set by a read past the end
		return -1
	}
	c := s.b[s.pos]
	s.pos++
	return int(c)
}

// to reads until end, NUL or EOF, at most 4096 bytes, and returns what it
// read if it stopped at end, else "".
func (s *builtinStream) to(end int) (string, bool) {
	var dst []byte
	c := s.getc()
	for c != -1 && c != end && c != 0 && len(dst) < 4096 {
		dst = append(dst, byte(c))
		c = s.getc()
	}
	n := len(dst)
	if n == 4096 {
		n--
	}
	if c == end {
		return string(dst[:n]), true
	}
	return "", false
}

func (s *builtinStream) flush() {
	for c := s.getc(); c != -1 && c != 0; c = s.getc() {
	}
}

func (d *depmodRun) outputBuiltinAliasBin() ([]byte, error) {
	data, err := d.readOptional("modules.builtin.modinfo")
	if err != nil || data == nil {
		return []byte{}, err
	}
	x := newIndex()
	s := &builtinStream{b: data}
	for !s.eof() {
		mod, _ := s.to('.')
		if mod == "" {
			continue
		}
		key, _ := s.to('=')
		if key != "alias" {
			s.flush()
			continue
		}
		val, _ := s.to(0)
		if val == "" {
			continue
		}
		a, ok := aliasNormalize(val)
		if !ok {
			d.warnf("modules.builtin.modinfo: %s alias %q: unmatched bracket (skipped, as depmod does)", mod, val)
			continue
		}
		if err := x.insert(a, mod, 0); err != nil {
			return nil, err
		}
	}
	return x.bytes(), nil
}

// scanU is sscanf's %u: optional spaces and sign, decimal digits, the
// value as strtoul gives it (saturated) truncated to 32 bits.
func scanU(s string) (uint32, string, bool) {
	s = strings.TrimLeft(s, " \t\n\v\f\r")
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	i := 0
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, s, false
	}
	v, err := strconv.ParseUint(s[:i], 10, 64)
	if err != nil {
		v = 1<<64 - 1
	} else if neg {
		v = -v
	}
	return uint32(v), s[i:], true
}

// majorMinor is sscanf(value, prefix+"%u-%u", ...) == 2.
func majorMinor(value, prefix string) (uint32, uint32, bool) {
	rest, ok := strings.CutPrefix(value, prefix)
	if !ok {
		return 0, 0, false
	}
	maj, rest, ok := scanU(rest)
	if !ok {
		return 0, 0, false
	}
	rest, ok = strings.CutPrefix(rest, "-")
	if !ok {
		return 0, 0, false
	}
	min, _, ok := scanU(rest)
	return maj, min, ok
}

func (d *depmodRun) outputDevname(mods []*dmod) []byte {
	var b bytes.Buffer
	for _, m := range mods {
		devname, haveDev := "", false
		var typ byte
		var maj, min uint32
		for _, kv := range m.info {
			if kv[0] != "alias" {
				continue
			}
			v := kv[1]
			if n, ok := strings.CutPrefix(v, "devname:"); ok {
				devname, haveDev = n, true
			} else if a, i, ok := majorMinor(v, "char-major-"); ok {
				typ, maj, min = 'c', a, i
			} else if a, i, ok := majorMinor(v, "block-major-"); ok {
				typ, maj, min = 'b', a, i
			}
			if typ != 0 && haveDev {
				break
			}
		}
		if !haveDev {
			continue
		}
		if typ == 0 {
			d.warnf("module %s has devname (%s) but no major and minor: left out of modules.devname (as depmod does)", m.name, devname)
			continue
		}
		if b.Len() == 0 {
			b.WriteString("# Device nodes to trigger on-demand module loading.\n")
		}
		fmt.Fprintf(&b, "%s %s %c%d:%d\n", m.name, devname, typ, maj, min)
	}
	return b.Bytes()
}

// ModuleDir is where a kernel's modules are, relative to the tree.
func ModuleDir(kver string) string { return path.Join("lib/modules", kver) }
