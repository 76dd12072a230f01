//go:build wasip1

package main

import (
	"fmt"
	"strings"

	"pault.ag/go/debian/version"
)

// parseParagraphs splits deb822 text (a control file, dpkg's status) into
// paragraphs of fields in order. Values keep their continuation lines as
// written, joined by "\n" with their leading space; trailing white space,
// which dpkg drops too, is dropped.
func parseParagraphs(text string) ([][]debField, error) {
	var paras [][]debField
	var cur []debField
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimRight(line, " \t\r")
		switch {
		case line == "":
			if cur != nil {
				paras = append(paras, cur)
				cur = nil
			}
		case line[0] == ' ' || line[0] == '\t':
			if cur == nil {
				return nil, fmt.Errorf("line %d: continuation line without a field", n+1)
			}
			cur[len(cur)-1].Value += "\n" + line
		case line[0] == '#':
			// deb822 comments; dpkg never writes them.
		default:
			name, value, ok := strings.Cut(line, ":")
			if !ok || name == "" || strings.ContainsAny(name, " \t") {
				return nil, fmt.Errorf("line %d: %q is not a field", n+1, line)
			}
			cur = append(cur, debField{Name: name, Value: strings.TrimLeft(value, " \t")})
		}
	}
	if cur != nil {
		paras = append(paras, cur)
	}
	return paras, nil
}

// field returns the value of the named field (field names are case-blind).
func field(fields []debField, name string) string {
	for _, f := range fields {
		if strings.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

// relation is one possibility in a Depends-like field: name[:arch]
// [(op version)].
type relation struct {
	name, arch, op, version string
}

// parseRelations parses a relation field into its comma-separated
// dependencies, each a list of "|" alternatives. Binary packages carry no
// architecture restrictions or build profiles; they are refused.
func parseRelations(s string) ([][]relation, error) {
	var deps [][]relation
	s = strings.TrimSpace(strings.ReplaceAll(s, "\n", " "))
	if s == "" {
		return nil, nil
	}
	for _, dep := range strings.Split(s, ",") {
		var alts []relation
		for _, alt := range strings.Split(dep, "|") {
			r, err := parseRelation(strings.TrimSpace(alt))
			if err != nil {
				return nil, err
			}
			alts = append(alts, r)
		}
		deps = append(deps, alts)
	}
	return deps, nil
}

func parseRelation(s string) (relation, error) {
	var r relation
	name, rest, _ := strings.Cut(s, "(")
	name = strings.TrimSpace(name)
	if strings.ContainsAny(name, " \t[]<>") || name == "" {
		return r, fmt.Errorf("relation %q: not a package name", s)
	}
	r.name, r.arch, _ = strings.Cut(name, ":")
	if rest == "" {
		return r, nil
	}
	inner, tail, ok := strings.Cut(rest, ")")
	if !ok || strings.TrimSpace(tail) != "" {
		return r, fmt.Errorf("relation %q: bad version restriction", s)
	}
	inner = strings.TrimSpace(inner)
	for _, op := range []string{"<<", "<=", ">=", ">>", "=", "<", ">"} {
		if v, ok := strings.CutPrefix(inner, op); ok {
			r.op, r.version = op, strings.TrimSpace(v)
			break
		}
	}
	// dpkg reads the obsolete "<" and ">" as "<=" and ">=".
	switch r.op {
	case "<":
		r.op = "<="
	case ">":
		r.op = ">="
	case "":
		return r, fmt.Errorf("relation %q: no operator", s)
	}
	if _, err := version.Parse(r.version); err != nil || r.version == "" {
		return r, fmt.Errorf("relation %q: bad version %q", s, r.version)
	}
	return r, nil
}

// formatRelations writes a relation field as dpkg's status has it.
func formatRelations(deps [][]relation) string {
	var b strings.Builder
	for i, alts := range deps {
		if i > 0 {
			b.WriteString(", ")
		}
		for j, r := range alts {
			if j > 0 {
				b.WriteString(" | ")
			}
			b.WriteString(r.name)
			if r.arch != "" {
				b.WriteString(":" + r.arch)
			}
			if r.op != "" {
				fmt.Fprintf(&b, " (%s %s)", r.op, r.version)
			}
		}
	}
	return b.String()
}

// satisfiedBy reports whether version v meets r's version restriction.
func (r relation) satisfiedBy(v string) bool {
	if r.op == "" {
		return true
	}
	if v == "" {
		return false // an unversioned Provides meets no versioned relation
	}
	a, err1 := version.Parse(v)
	b, err2 := version.Parse(r.version)
	if err1 != nil || err2 != nil {
		return false
	}
	c := version.Compare(a, b)
	switch r.op {
	case "<<":
		return c < 0
	case "<=":
		return c <= 0
	case "=":
		return c == 0
	case ">=":
		return c >= 0
	case ">>":
		return c > 0
	}
	return false
}

func (r relation) String() string { return formatRelations([][]relation{{r}}) }

// fnmatch is fnmatch(3) with no flags, as dpkg's path filters use it:
// "*" and "?" match "/" and a leading ".", "[...]" is a bracket
// expression ("!" or "^" negates), "\" quotes the next character.
func fnmatch(pattern, name string) bool {
	for len(pattern) > 0 {
		switch pattern[0] {
		case '*':
			for len(pattern) > 0 && pattern[0] == '*' {
				pattern = pattern[1:]
			}
			if pattern == "" {
				return true
			}
			for i := 0; i <= len(name); i++ {
				if fnmatch(pattern, name[i:]) {
					return true
				}
			}
			return false
		case '?':
			if name == "" {
				return false
			}
			pattern, name = pattern[1:], name[1:]
		case '[':
			if name == "" {
				return false
			}
			ok, rest, valid := matchBracket(pattern, name[0])
			if !valid {
				// An unterminated "[" is an ordinary character.
				if name[0] != '[' {
					return false
				}
				pattern, name = pattern[1:], name[1:]
				continue
			}
			if !ok {
				return false
			}
			pattern, name = rest, name[1:]
		case '\\':
			if len(pattern) > 1 {
				pattern = pattern[1:]
			}
			fallthrough
		default:
			if name == "" || pattern[0] != name[0] {
				return false
			}
			pattern, name = pattern[1:], name[1:]
		}
	}
	return name == ""
}

// matchBracket matches c against the bracket expression at the start of
// pattern; it returns the pattern after it and whether it was terminated.
func matchBracket(pattern string, c byte) (matched bool, rest string, valid bool) {
	i := 1
	negate := false
	if i < len(pattern) && (pattern[i] == '!' || pattern[i] == '^') {
		negate = true
		i++
	}
	first := true
	for i < len(pattern) {
		if pattern[i] == ']' && !first {
			return matched != negate, pattern[i+1:], true
		}
		first = false
		lo := pattern[i]
		if lo == '\\' && i+1 < len(pattern) {
			i++
			lo = pattern[i]
		}
		hi := lo
		if i+2 < len(pattern) && pattern[i+1] == '-' && pattern[i+2] != ']' {
			hi = pattern[i+2]
			i += 2
		}
		if lo <= c && c <= hi {
			matched = true
		}
		i++
	}
	return false, "", false
}

// pathFilter is dpkg's --path-exclude/--path-include: the last pattern
// matching a path decides; excludes come first, so an include re-includes.
type pathFilter struct {
	patterns []filterPattern
}

type filterPattern struct {
	glob    string
	include bool
}

func newPathFilter(exclude, include []string) *pathFilter {
	f := &pathFilter{}
	for _, g := range exclude {
		f.patterns = append(f.patterns, filterPattern{g, false})
	}
	for _, g := range include {
		f.patterns = append(f.patterns, filterPattern{g, true})
	}
	return f
}

// skip reports whether the member at absolute path p is left out. As in
// dpkg's filters.c, an excluded directory or symlink stays when an include
// pattern's fixed part (up to its first wildcard, trailing "/" dropped)
// starts with its path, so that included files keep their parents.
func (f *pathFilter) skip(p string, dirOrLink bool) bool {
	skip := false
	for _, pt := range f.patterns {
		if fnmatch(pt.glob, p) {
			skip = !pt.include
		}
	}
	if !skip || !dirOrLink {
		return skip
	}
	for _, pt := range f.patterns {
		if !pt.include {
			continue
		}
		fixed := pt.glob
		if i := strings.IndexAny(fixed, "*?[\\"); i >= 0 {
			fixed = fixed[:i]
		}
		fixed = strings.TrimRight(fixed, "/")
		if strings.HasPrefix(p, fixed) {
			return false
		}
	}
	return true
}
