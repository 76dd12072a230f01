// Package kmod reads the module index files depmod writes under
// /lib/modules/<version> (modules.dep, modules.builtin, modules.softdep,
// modules.alias) and resolves a list of module names into the modules to
// load and their load order, dependencies before the modules needing them,
// as modprobe would. It reads text only; the files come from the tree, so
// every line is checked and a malformed one is an error naming its line.
package kmod

import (
	"bufio"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"slices"
	"strings"
)

// ErrUnknownModule is returned for a module name that is neither in
// modules.dep nor built into the kernel (modules.builtin).
var ErrUnknownModule = errors.New("no such module")

// pathRE is what kiln accepts as a module path: it is written into the
// initramfs's /init script and into its paths.
var pathRE = regexp.MustCompile(`^[A-Za-z0-9._+-]+(/[A-Za-z0-9._+-]+)*\.ko(\.xz|\.zst|\.gz)?$`)

// Name is the module name of a module file's path: its base name without
// .ko and compression suffix, with '-' as '_' (the kernel's spelling).
func Name(p string) string {
	b := path.Base(p)
	for _, s := range []string{".xz", ".zst", ".gz"} {
		b = strings.TrimSuffix(b, s)
	}
	return Normalize(strings.TrimSuffix(b, ".ko"))
}

// Normalize spells a module name as the kernel does: '-' and '_' are the
// same character in module names.
func Normalize(name string) string { return strings.ReplaceAll(name, "-", "_") }

// Module is one line of modules.dep.
type Module struct {
	Name string
	Path string   // relative to /lib/modules/<version>
	Deps []string // paths, as modules.dep lists them
}

// Index is a kernel's module index.
type Index struct {
	Modules map[string]*Module // by name
	Builtin map[string]bool
	Pre     map[string][]string // softdep pre: names or aliases
	Post    map[string][]string
	Aliases map[string][]string // exact aliases only (no glob), to module names
}

// NewIndex is an empty index.
func NewIndex() *Index {
	return &Index{Modules: map[string]*Module{}, Builtin: map[string]bool{},
		Pre: map[string][]string{}, Post: map[string][]string{}, Aliases: map[string][]string{}}
}

// lines calls fn for each line of r without comments and blank lines.
func lines(r io.Reader, file string, fn func(n int, line string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if err := fn(n, line); err != nil {
			return fmt.Errorf("%s line %d: %w", file, n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return nil
}

// ReadDep reads modules.dep: "PATH: DEP..." per module.
func (x *Index) ReadDep(r io.Reader) error {
	return lines(r, "modules.dep", func(_ int, line string) error {
		p, rest, ok := strings.Cut(line, ":")
		if !ok {
			return fmt.Errorf("%q: want PATH: DEPS", line)
		}
		if !pathRE.MatchString(p) || strings.Contains("/"+p+"/", "/../") {
			return fmt.Errorf("module path %q refused", p)
		}
		m := &Module{Name: Name(p), Path: p}
		for _, d := range strings.Fields(rest) {
			if !pathRE.MatchString(d) || strings.Contains("/"+d+"/", "/../") {
				return fmt.Errorf("dependency path %q refused", d)
			}
			m.Deps = append(m.Deps, d)
		}
		if _, dup := x.Modules[m.Name]; dup {
			return fmt.Errorf("module %s listed twice", m.Name)
		}
		x.Modules[m.Name] = m
		return nil
	})
}

// ReadBuiltin reads modules.builtin: one path per built-in module.
func (x *Index) ReadBuiltin(r io.Reader) error {
	return lines(r, "modules.builtin", func(_ int, line string) error {
		x.Builtin[Name(line)] = true
		return nil
	})
}

// ReadSoftdep reads modules.softdep: "softdep NAME pre: A B post: C".
// Words before any pre: or post: are pre ones, as modprobe reads them.
func (x *Index) ReadSoftdep(r io.Reader) error {
	return lines(r, "modules.softdep", func(_ int, line string) error {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "softdep" {
			return fmt.Errorf("%q: want softdep NAME [pre: NAMES] [post: NAMES]", line)
		}
		name := Normalize(f[1])
		pre, post := x.Pre[name], x.Post[name]
		intoPost := false
		for _, w := range f[2:] {
			switch w {
			case "pre:":
				intoPost = false
			case "post:":
				intoPost = true
			default:
				if intoPost {
					post = append(post, w)
				} else {
					pre = append(pre, w)
				}
			}
		}
		if len(pre) > 0 {
			x.Pre[name] = pre
		}
		if len(post) > 0 {
			x.Post[name] = post
		}
		return nil
	})
}

// ReadAlias reads modules.alias, keeping the aliases without wildcards
// (crypto-crc32c, fs-ext4): those are what softdeps and request_module
// name; device aliases with patterns are for udev.
func (x *Index) ReadAlias(r io.Reader) error {
	return lines(r, "modules.alias", func(_ int, line string) error {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "alias" {
			return fmt.Errorf("%q: want alias PATTERN MODULE", line)
		}
		if strings.ContainsAny(f[1], "*?[") {
			return nil
		}
		x.Aliases[f[1]] = append(x.Aliases[f[1]], Normalize(f[2]))
		return nil
	})
}

// Resolution is what Resolve found.
type Resolution struct {
	Load    []*Module // in load order
	Builtin []string  // requested names the kernel has built in
	// Missing holds softdeps that name nothing in the index: modprobe
	// skips those too.
	Missing []string
}

// Resolve returns the modules names need, each once, dependencies (and
// softdep pre modules) before the modules that need them, softdep post
// modules after. A requested name may be an exact alias. A requested
// name that is unknown is ErrUnknownModule; an unknown softdep is listed
// in Missing.
func (x *Index) Resolve(names []string) (*Resolution, error) {
	res := &Resolution{}
	done := map[string]bool{}
	active := map[string]bool{}
	byPath := map[string]*Module{}
	for _, m := range x.Modules {
		byPath[m.Path] = m
	}
	var visit func(name string, required bool, depth int) error
	visitPath := func(p string, depth int) error {
		m, ok := byPath[p]
		if !ok {
			return fmt.Errorf("dependency %s is not in modules.dep", p)
		}
		return visit(m.Name, true, depth)
	}
	visit = func(name string, required bool, depth int) error {
		if depth > 64 {
			return fmt.Errorf("module %s: dependencies nest deeper than 64", name)
		}
		targets := []string{Normalize(name)}
		if _, ok := x.Modules[targets[0]]; !ok && !x.Builtin[targets[0]] {
			if a, ok := x.Aliases[name]; ok {
				targets = slices.Clone(a)
				slices.Sort(targets)
				targets = slices.Compact(targets)
			}
		}
		for _, t := range targets {
			if done[t] || active[t] {
				// active: a softdep cycle (modprobe breaks those too).
				continue
			}
			if x.Builtin[t] {
				done[t] = true
				if required && depth == 0 {
					res.Builtin = append(res.Builtin, t)
				}
				continue
			}
			m, ok := x.Modules[t]
			if !ok {
				if required {
					return fmt.Errorf("%w: %s (not in modules.dep, modules.builtin or modules.alias)", ErrUnknownModule, name)
				}
				res.Missing = append(res.Missing, name)
				continue
			}
			active[t] = true
			for _, p := range x.Pre[t] {
				if err := visit(p, false, depth+1); err != nil {
					return err
				}
			}
			for _, d := range m.Deps {
				if err := visitPath(d, depth+1); err != nil {
					return fmt.Errorf("module %s: %w", t, err)
				}
			}
			active[t] = false
			done[t] = true
			res.Load = append(res.Load, m)
			for _, p := range x.Post[t] {
				if err := visit(p, false, depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, n := range names {
		if err := visit(n, true, 0); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// Dep renders modules.dep for the resolved modules only, in load order,
// with paths as rename maps them (compressed modules are stored
// decompressed in the initramfs), so that modprobe there finds them.
func Dep(mods []*Module, rename func(string) string) string {
	var b strings.Builder
	for _, m := range mods {
		b.WriteString(rename(m.Path) + ":")
		for _, d := range m.Deps {
			b.WriteString(" " + rename(d))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// AddModinfo adds one module from its .modinfo section (NUL-separated
// key=value strings, as modinfo(8) reads them): depends= names its
// dependencies, softdep= its pre and post modules, alias= its aliases.
// It is what depmod reads to write modules.dep, modules.softdep and
// modules.alias, and stands in for them where depmod has not run (a tree
// whose linux-image postinst is deferred to the first boot). Call
// ResolveModinfoDeps once every module is added.
func (x *Index) AddModinfo(p string, info []byte) error {
	if !pathRE.MatchString(p) || strings.Contains("/"+p+"/", "/../") {
		return fmt.Errorf("module path %q refused", p)
	}
	m := &Module{Name: Name(p), Path: p}
	if _, dup := x.Modules[m.Name]; dup {
		return fmt.Errorf("module %s found twice (%s, %s)", m.Name, x.Modules[m.Name].Path, p)
	}
	for _, kv := range strings.Split(string(info), "\x00") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		switch k {
		case "depends":
			for _, d := range strings.Split(v, ",") {
				if d = strings.TrimSpace(d); d != "" {
					m.Deps = append(m.Deps, Normalize(d))
				}
			}
		case "softdep":
			if err := x.ReadSoftdep(strings.NewReader("softdep " + m.Name + " " + v + "\n")); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		case "alias":
			if v != "" && !strings.ContainsAny(v, "*?[ \t") {
				x.Aliases[v] = append(x.Aliases[v], m.Name)
			}
		}
	}
	x.Modules[m.Name] = m
	return nil
}

// ResolveModinfoDeps turns the dependency names AddModinfo recorded into
// paths, as modules.dep lists them; a name no module has is an error.
func (x *Index) ResolveModinfoDeps() error {
	for _, m := range x.Modules {
		for i, d := range m.Deps {
			if pathRE.MatchString(d) {
				continue
			}
			dm, ok := x.Modules[d]
			if !ok {
				return fmt.Errorf("module %s depends on %s: %w", m.Name, d, ErrUnknownModule)
			}
			m.Deps[i] = dm.Path
		}
	}
	return nil
}

// Modinfo returns the .modinfo section of a module's ELF image (a plain
// .ko; decompress others first).
func Modinfo(r io.ReaderAt) ([]byte, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, err
	}
	s := f.Section(".modinfo")
	if s == nil {
		return nil, errors.New("no .modinfo section")
	}
	return s.Data()
}
