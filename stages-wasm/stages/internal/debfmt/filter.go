package debfmt

import (
	"strings"
	"unicode/utf8"
)

// Fnmatch is fnmatch(3) with no flags, as dpkg's path filters use it:
// "*" and "?" match "/" and a leading ".", "[...]" is a bracket
// expression ("!" or "^" negates, an unterminated "[" is itself), "\"
// quotes the next character. It backtracks to the last "*" only, so it
// takes time proportional to len(pattern)*len(name), whatever the
// pattern. "?", "*" and brackets match whole UTF-8 characters, as glibc's
// fnmatch does in a UTF-8 locale; a byte that is not UTF-8 counts as one.
func Fnmatch(pattern, name string) bool {
	px, nx := 0, 0
	starPx, starNx := -1, -1
	for px < len(pattern) || nx < len(name) {
		if px < len(pattern) {
			switch c := pattern[px]; c {
			case '*':
				starPx, starNx = px, nx+runeLen(name, nx)
				px++
				continue
			case '?':
				if nx < len(name) {
					px, nx = px+1, nx+runeLen(name, nx)
					continue
				}
			case '[':
				if nx < len(name) {
					c, w := utf8.DecodeRuneInString(name[nx:])
					ok, n, valid := matchBracket(pattern[px:], c)
					switch {
					case valid && ok:
						px, nx = px+n, nx+w
						continue
					case !valid && name[nx] == '[':
						px, nx = px+1, nx+1
						continue
					}
				}
			case '\\':
				q := px
				if px+1 < len(pattern) {
					q = px + 1
				}
				if nx < len(name) && pattern[q] == name[nx] {
					px, nx = q+1, nx+1
					continue
				}
			default:
				if nx < len(name) && c == name[nx] {
					px, nx = px+1, nx+1
					continue
				}
			}
		}
		// A mismatch: let the last "*" take one more byte.
		if starNx > 0 && starNx <= len(name) {
			px, nx = starPx+1, starNx
			starNx += runeLen(name, starNx)
			continue
		}
		return false
	}
	return true
}

// runeLen is the length of the character at s[i:], at least 1.
func runeLen(s string, i int) int {
	if i >= len(s) {
		return 1
	}
	_, w := utf8.DecodeRuneInString(s[i:])
	return w
}

// matchBracket matches c against the bracket expression at the start of
// pattern; it returns the expression's length and whether it was
// terminated.
func matchBracket(pattern string, c rune) (matched bool, n int, valid bool) {
	i := 1
	negate := false
	if i < len(pattern) && (pattern[i] == '!' || pattern[i] == '^') {
		negate = true
		i++
	}
	first := true
	for i < len(pattern) {
		if pattern[i] == ']' && !first {
			return matched != negate, i + 1, true
		}
		first = false
		if pattern[i] == '\\' && i+1 < len(pattern) {
			i++
		}
		lo, w := utf8.DecodeRuneInString(pattern[i:])
		i += w
		hi := lo
		if i+1 < len(pattern) && pattern[i] == '-' && pattern[i+1] != ']' {
			j := i + 1
			if pattern[j] == '\\' && j+1 < len(pattern) {
				j++
			}
			var w2 int
			hi, w2 = utf8.DecodeRuneInString(pattern[j:])
			i = j + w2
		}
		if lo <= c && c <= hi {
			matched = true
		}
	}
	return false, 0, false
}

// PathFilter is dpkg's --path-exclude/--path-include: the last pattern
// matching a path decides; excludes come first, so an include re-includes.
type PathFilter struct {
	patterns []filterPattern
}

type filterPattern struct {
	glob    string
	include bool
}

func NewPathFilter(exclude, include []string) *PathFilter {
	f := &PathFilter{}
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
func (f *PathFilter) Skip(p string, dirOrLink bool) bool {
	skip := false
	for _, pt := range f.patterns {
		if Fnmatch(pt.glob, p) {
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
