// Package debfmt parses the Debian formats kiln.deb reads from packages
// it does not trust: deb822 paragraphs (control files, dpkg's status), the
// relation fields (Depends, Pre-Depends, Provides, Replaces...), the ar
// archives .debs are, and dpkg's --path-exclude/--path-include filters. Its
// parsers return an error for any input they do not understand and never
// panic (fuzzed); formatting a parsed relation field gives what dpkg
// writes in its status file. It has no build constraint so that it is
// tested natively.
package debfmt

import (
	"fmt"
	"strings"

	"pault.ag/go/debian/version"
)

// Field is one field of a paragraph; Value keeps continuation lines as
// written (joined by "\n" with their leading space).
type Field struct {
	Name, Value string
}

// ParseParagraphs splits deb822 text (a control file, dpkg's status) into
// paragraphs of fields in order. Values keep their continuation lines as
// written, joined by "\n" with their leading space; trailing white space,
// which dpkg drops too, is dropped.
func ParseParagraphs(text string) ([][]Field, error) {
	var paras [][]Field
	var cur []Field
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
			cur = append(cur, Field{Name: name, Value: strings.TrimLeft(value, " \t")})
		}
	}
	if cur != nil {
		paras = append(paras, cur)
	}
	return paras, nil
}

// Value returns the value of the named field (field names are case-blind).
func Value(fields []Field, name string) string {
	for _, f := range fields {
		if strings.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

// Relation is one possibility in a Depends-like field: name[:arch]
// [(op version)].
type Relation struct {
	Name, Arch, Op, Version string
}

// ParseRelations parses a relation field into its comma-separated
// dependencies, each a list of "|" alternatives. Binary packages carry no
// architecture restrictions or build profiles; they are refused.
func ParseRelations(s string) ([][]Relation, error) {
	var deps [][]Relation
	s = strings.TrimSpace(strings.ReplaceAll(s, "\n", " "))
	if s == "" {
		return nil, nil
	}
	for _, dep := range strings.Split(s, ",") {
		var alts []Relation
		for _, alt := range strings.Split(dep, "|") {
			r, err := parseOne(strings.TrimSpace(alt))
			if err != nil {
				return nil, err
			}
			alts = append(alts, r)
		}
		deps = append(deps, alts)
	}
	return deps, nil
}

func parseOne(s string) (Relation, error) {
	var r Relation
	name, rest, _ := strings.Cut(s, "(")
	name = strings.TrimSpace(name)
	if strings.ContainsAny(name, " \t[]<>") || name == "" {
		return r, fmt.Errorf("relation %q: not a package name", s)
	}
	var qualified bool
	r.Name, r.Arch, qualified = strings.Cut(name, ":")
	if !validName(r.Name) || qualified && !validName(r.Arch) {
		return r, fmt.Errorf("relation %q: not a package name", s)
	}
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
			r.Op, r.Version = op, strings.TrimSpace(v)
			break
		}
	}
	// dpkg reads the obsolete "<" and ">" as "<=" and ">=".
	switch r.Op {
	case "<":
		r.Op = "<="
	case ">":
		r.Op = ">="
	case "":
		return r, fmt.Errorf("relation %q: no operator", s)
	}
	if _, err := version.Parse(r.Version); err != nil || r.Version == "" {
		return r, fmt.Errorf("relation %q: bad version %q", s, r.Version)
	}
	return r, nil
}

// validName accepts package and architecture names as dpkg reads them
// (letters, digits, "+", "-", ".", starting with a letter or digit).
func validName(s string) bool {
	for i, c := range s {
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || i > 0 && (c == '+' || c == '-' || c == '.')
		if !ok {
			return false
		}
	}
	return s != ""
}

// FormatRelations writes a relation field as dpkg's status has it.
func FormatRelations(deps [][]Relation) string {
	var b strings.Builder
	for i, alts := range deps {
		if i > 0 {
			b.WriteString(", ")
		}
		for j, r := range alts {
			if j > 0 {
				b.WriteString(" | ")
			}
			b.WriteString(r.Name)
			if r.Arch != "" {
				b.WriteString(":" + r.Arch)
			}
			if r.Op != "" {
				fmt.Fprintf(&b, " (%s %s)", r.Op, r.Version)
			}
		}
	}
	return b.String()
}

// SatisfiedBy reports whether version v meets r's version restriction.
func (r Relation) SatisfiedBy(v string) bool {
	if r.Op == "" {
		return true
	}
	if v == "" {
		return false // an unversioned Provides meets no versioned relation
	}
	a, err1 := version.Parse(v)
	b, err2 := version.Parse(r.Version)
	if err1 != nil || err2 != nil {
		return false
	}
	c := version.Compare(a, b)
	switch r.Op {
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

func (r Relation) String() string { return FormatRelations([][]Relation{{r}}) }
