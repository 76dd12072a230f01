// Package unitfile computes what `systemctl --root enable`, `disable`,
// `mask` and `set-default` do to a tree, from the units' [Install]
// sections, without systemd: which symlinks to create under
// /etc/systemd/system and which to remove. It reads unit files through a
// Finder, so the same code runs in the stage and in native tests.
package unitfile

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
)

// ConfigDir is where enablement symlinks go.
const ConfigDir = "/etc/systemd/system"

// SearchPath is where unit files are looked for, in systemd's order of
// precedence for an offline root (/lib for distributions without merged /usr).
var SearchPath = []string{
	"/etc/systemd/system",
	"/run/systemd/system",
	"/usr/local/lib/systemd/system",
	"/usr/lib/systemd/system",
	"/lib/systemd/system",
}

// ErrNotFound is what a Finder returns for a unit with no file.
var ErrNotFound = errors.New("no unit file")

// ErrMasked is what a Finder returns for a masked unit.
var ErrMasked = errors.New("the unit is masked")

// Finder returns the path in the tree of the unit file for name (symlinks
// resolved) and its text, ErrNotFound if there is none, or ErrMasked.
type Finder func(name string) (filePath, text string, err error)

// Install is a unit's [Install] section.
type Install struct {
	WantedBy, RequiredBy, UpheldBy, Alias, Also []string
	DefaultInstance                             string
	Present                                     bool // the unit has an [Install] section
}

// ParseInstall reads the [Install] section of a unit file: repeated keys
// add to a list, an empty assignment clears it, and a trailing backslash
// continues a line, as systemd reads them.
func ParseInstall(text string) Install {
	var in Install
	section := ""
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		for strings.HasSuffix(l, `\`) && i+1 < len(lines) {
			i++
			l = strings.TrimSuffix(l, `\`) + " " + strings.TrimSpace(lines[i])
		}
		if l == "" || l[0] == '#' || l[0] == ';' {
			continue
		}
		if l[0] == '[' && strings.HasSuffix(l, "]") {
			section = l[1 : len(l)-1]
			if section == "Install" {
				in.Present = true
			}
			continue
		}
		if section != "Install" {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		var list *[]string
		switch k {
		case "WantedBy":
			list = &in.WantedBy
		case "RequiredBy":
			list = &in.RequiredBy
		case "UpheldBy":
			list = &in.UpheldBy
		case "Alias":
			list = &in.Alias
		case "Also":
			list = &in.Also
		case "DefaultInstance":
			in.DefaultInstance = v
			continue
		default:
			continue
		}
		if v == "" {
			*list = nil
			continue
		}
		*list = append(*list, strings.Fields(v)...)
	}
	return in
}

// Name is a parsed unit name: "getty@tty1.service" has Prefix "getty",
// Instance "tty1", Suffix ".service"; a template has Template set and an
// empty Instance.
type Name struct {
	Prefix, Instance, Suffix string
	Template                 bool // has an "@"
}

// unitTypes are the suffixes systemd knows.
var unitTypes = []string{".service", ".socket", ".target", ".timer", ".path", ".mount", ".automount",
	".swap", ".slice", ".scope", ".device"}

// Mangle completes a unit name as systemctl does before enable, disable
// and mask (suffix ".service") or set-default (".target"): a name without
// a known unit type gets the suffix, so "sshd" is "sshd.service" and
// "foo.bar" is "foo.bar.service". The result is parsed; systemctl's other
// manglings (paths into .mount or .device units, escaping) are refused
// with ParseName's error rather than guessed.
func Mangle(s, suffix string) (Name, error) {
	if s == "" || strings.ContainsAny(s, "/\x00") {
		return ParseName(s)
	}
	if dot := strings.LastIndexByte(s, '.'); dot < 0 || !slices.Contains(unitTypes, s[dot:]) {
		s += suffix
	}
	return ParseName(s)
}

// ParseName splits a unit name and checks it has a known unit type.
func ParseName(s string) (Name, error) {
	if s == "" || strings.ContainsAny(s, "/\x00") {
		return Name{}, fmt.Errorf("unit name %q is not a unit name", s)
	}
	dot := strings.LastIndexByte(s, '.')
	if dot <= 0 {
		return Name{}, fmt.Errorf("unit name %q has no type suffix (.service, .target, ...)", s)
	}
	n := Name{Suffix: s[dot:]}
	if !slices.Contains(unitTypes, n.Suffix) {
		return Name{}, fmt.Errorf("unit name %q: unknown unit type %q", s, n.Suffix)
	}
	base := s[:dot]
	if p, inst, ok := strings.Cut(base, "@"); ok {
		n.Prefix, n.Instance, n.Template = p, inst, true
	} else {
		n.Prefix = base
	}
	if n.Prefix == "" {
		return Name{}, fmt.Errorf("unit name %q has an empty prefix", s)
	}
	return n, nil
}

func (n Name) String() string {
	if n.Template {
		return n.Prefix + "@" + n.Instance + n.Suffix
	}
	return n.Prefix + n.Suffix
}

// TemplateName is the template a (possibly instantiated) unit comes from.
func (n Name) TemplateName() string { return n.Prefix + "@" + n.Suffix }

// Resolved is the unit that the name n stands for when its file is file:
// an alias (a symlink, in /etc or a vendor directory, to a file of another
// name) stands for the unit of the file's name, an instance of an aliased
// template for the same instance of the real template. systemctl enables
// and disables that unit: its links are named after it, and disabling an
// alias removes the real unit's links. A file whose name is no unit of
// n's type leaves n as it is.
func Resolved(n Name, file string) Name {
	r, err := ParseName(path.Base(file))
	if err != nil || r.Suffix != n.Suffix || r.Template != n.Template {
		return n
	}
	if r.Template && r.Instance == "" {
		r.Instance = n.Instance
	}
	return r
}

// Link is one symlink to create: Path -> Target.
type Link struct{ Path, Target string }

// Enabler collects what enabling units does.
type Enabler struct {
	Find     Finder
	Links    []Link
	Warnings []string
	seen     map[string]bool
}

// maxAlsoUnits and maxAlsoDepth bound the units one Enable follows
// through Also=: a unit file in the tree can name, through specifiers, an
// ever longer unit (Also=x%N.service), which the seen set does not stop,
// and each level's error quotes the levels below it.
const (
	maxAlsoUnits = 1024
	maxAlsoDepth = 16
)

// Enable adds the links `systemctl enable name` creates, following Also=.
func (e *Enabler) Enable(name string) error { return e.enable(name, 0) }

func (e *Enabler) enable(name string, depth int) error {
	if e.seen == nil {
		e.seen = map[string]bool{}
	}
	if e.seen[name] {
		return nil
	}
	if len(e.seen) >= maxAlsoUnits || depth > maxAlsoDepth {
		return fmt.Errorf("unit %s: Also= leads to more than %d units or %d levels", name, maxAlsoUnits, maxAlsoDepth)
	}
	e.seen[name] = true
	n, err := ParseName(name)
	if err != nil {
		return err
	}
	file, text, err := e.Find(name)
	if errors.Is(err, ErrNotFound) && n.Template && n.Instance != "" {
		file, text, err = e.Find(n.TemplateName())
	}
	if err != nil {
		return fmt.Errorf("unit %s: %w", name, err)
	}
	n = Resolved(n, file)
	in := ParseInstall(text)
	if !in.Present || len(in.WantedBy)+len(in.RequiredBy)+len(in.UpheldBy)+len(in.Alias)+len(in.Also) == 0 {
		e.Warnings = append(e.Warnings, fmt.Sprintf("unit %s has no [Install] settings (it is static or pulled in by another unit); nothing to enable", name))
		return nil
	}
	named := n // the unit as named: aliases take their specifiers from it
	if n.Template && n.Instance == "" && in.DefaultInstance != "" {
		// The instance comes from the tree's unit file: one holding '/'
		// would make the link's path leave ConfigDir once joined.
		n.Instance = in.DefaultInstance
		if _, err := ParseName(n.String()); err != nil {
			return fmt.Errorf("unit %s: DefaultInstance=%s: %w", name, in.DefaultInstance, err)
		}
	}
	for _, a := range in.Also {
		if err := e.enable(expand(a, n), depth+1); err != nil {
			return fmt.Errorf("unit %s: Also=%s: %w", name, a, err)
		}
	}
	if n.Template && n.Instance == "" {
		if len(in.WantedBy)+len(in.RequiredBy)+len(in.UpheldBy) > 0 {
			e.Warnings = append(e.Warnings, fmt.Sprintf("unit %s is a template without DefaultInstance=; enable an instance (%s) to hook it into targets",
				name, n.Prefix+"@NAME"+n.Suffix))
		}
	} else {
		for _, dep := range []struct {
			list []string
			dir  string
		}{{in.WantedBy, ".wants"}, {in.RequiredBy, ".requires"}, {in.UpheldBy, ".upholds"}} {
			for _, t := range dep.list {
				t = expand(t, n)
				if _, err := ParseName(t); err != nil {
					return fmt.Errorf("unit %s: %w", name, err)
				}
				e.Links = append(e.Links, Link{Path: path.Join(ConfigDir, t+dep.dir, n.String()), Target: file})
			}
		}
	}
	for _, a := range in.Alias {
		an, err := ParseName(expand(a, named))
		if err != nil {
			return fmt.Errorf("unit %s: Alias=: %w", name, err)
		}
		if an.Suffix != n.Suffix {
			return fmt.Errorf("unit %s: Alias=%s has another unit type", name, a)
		}
		// An instance's alias that names a template is that template's
		// instance of the same name, as systemctl makes it.
		if an.Template && an.Instance == "" && named.Instance != "" {
			an.Instance = named.Instance
		}
		e.Links = append(e.Links, Link{Path: path.Join(ConfigDir, an.String()), Target: file})
	}
	return nil
}

// expand resolves the unit specifiers systemd allows in [Install] values.
func expand(s string, n Name) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case 'n':
			b.WriteString(n.String())
		case 'N':
			b.WriteString(strings.TrimSuffix(n.String(), n.Suffix))
		case 'p':
			b.WriteString(n.Prefix)
		case 'i':
			b.WriteString(n.Instance)
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// DisableRemoves reports whether `systemctl disable` removes the symlink
// named linkName under ConfigDir that leads to dest (its target with links
// followed), given the names disable marked: the units named and their
// Also= units, and the paths of links already removed. Like systemctl, it
// removes a link named after a marked unit, one named after an instance of
// a marked template, and one leading to a marked path or to a file of a
// marked name.
func DisableRemoves(marked []string, linkName, dest string) bool {
	if slices.Contains(marked, linkName) || slices.Contains(marked, dest) || slices.Contains(marked, path.Base(dest)) {
		return true
	}
	n, err := ParseName(linkName)
	return err == nil && n.Template && n.Instance != "" && slices.Contains(marked, n.TemplateName())
}
