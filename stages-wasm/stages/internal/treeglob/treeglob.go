// Package treeglob expands the path globs kiln.remove takes against a tree.
//
// A pattern is an absolute, slash-separated path whose components are
// path.Match patterns, or "**": in the middle, "**" stands for any number of
// directories (zero included); at the end, for everything inside the
// directory before it, as in .gitignore (so "/var/cache/apt/**" empties
// /var/cache/apt and keeps it). "." and ".." components, empty components
// and "/" itself are refused, so a match is always a path strictly inside
// the tree. Expansion never follows a symbolic link: a link can be matched
// (and so removed) but is never descended into, so no pattern reaches
// outside the directory tree it names. "*" matches names starting with "."
// too: path.Match has no special case for them, and neither has dpkg's
// path-exclude, whose globs these are meant to mirror.
package treeglob

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
)

// ErrPattern is wrapped by Parse's errors.
var ErrPattern = errors.New("bad path pattern")

// nameMax is Linux's NAME_MAX: a longer component can match nothing, and
// lstat refuses it with an error rather than "not found".
const nameMax = 255

// Pattern is a parsed glob.
type Pattern struct {
	comps []string
}

// Parse checks p and splits it into components.
func Parse(p string) (Pattern, error) {
	if !strings.HasPrefix(p, "/") {
		return Pattern{}, fmt.Errorf("%w: %q is not absolute", ErrPattern, p)
	}
	if strings.ContainsRune(p, 0) {
		return Pattern{}, fmt.Errorf("%w: %q holds a NUL byte", ErrPattern, p)
	}
	if p == "/" {
		return Pattern{}, fmt.Errorf("%w: \"/\" would remove the whole tree", ErrPattern)
	}
	comps := strings.Split(p[1:], "/")
	for _, c := range comps {
		switch {
		case c == "":
			return Pattern{}, fmt.Errorf("%w: %q has an empty component", ErrPattern, p)
		case c == "." || c == "..":
			return Pattern{}, fmt.Errorf("%w: %q has a %q component", ErrPattern, p, c)
		case len(c) > nameMax:
			return Pattern{}, fmt.Errorf("%w: %q: a component is longer than the %d bytes a Linux file name can have", ErrPattern, p, nameMax)
		case c == "**":
		case strings.Contains(c, "**"):
			return Pattern{}, fmt.Errorf("%w: %q: \"**\" must be a whole component", ErrPattern, p)
		default:
			if _, err := path.Match(c, ""); err != nil {
				return Pattern{}, fmt.Errorf("%w: %q: component %q: %v", ErrPattern, p, c, err)
			}
		}
	}
	return Pattern{comps: comps}, nil
}

// Tree is the directory tree a pattern is expanded in, by slash-separated
// names relative to its root ("." is the root). It is not an fs.FS because
// fs.FS refuses names that are not UTF-8, which Linux file names need not
// be.
type Tree interface {
	Lstat(name string) (fs.FileInfo, error)
	ReadDir(name string) ([]fs.DirEntry, error)
}

// Dir is the Tree of the real directory it names ("/" in a stage).
type Dir string

// Lstat is os.Lstat of name below d.
func (d Dir) Lstat(name string) (fs.FileInfo, error) { return os.Lstat(path.Join(string(d), name)) }

// ReadDir is os.ReadDir of name below d.
func (d Dir) ReadDir(name string) ([]fs.DirEntry, error) {
	return os.ReadDir(path.Join(string(d), name))
}

// Expand returns the absolute paths in fsys that p matches, sorted, with
// no path inside another one of the list (removing the outer one removes
// it).
func (p Pattern) Expand(ctx context.Context, fsys Tree) ([]string, error) {
	e := expander{ctx: ctx, fsys: fsys, seen: map[string]bool{}}
	if err := e.match(".", p.comps); err != nil {
		return nil, err
	}
	slices.Sort(e.out)
	var pruned []string
	for _, m := range e.out {
		if n := len(pruned); n > 0 && strings.HasPrefix(m, pruned[n-1]+"/") {
			continue
		}
		pruned = append(pruned, m)
	}
	return pruned, nil
}

type expander struct {
	ctx  context.Context
	fsys Tree
	out  []string
	seen map[string]bool
}

func (e *expander) add(name string) {
	if name == "." || e.seen[name] {
		return
	}
	e.seen[name] = true
	e.out = append(e.out, "/"+name)
}

func join(dir, name string) string {
	if dir == "." {
		return name
	}
	return dir + "/" + name
}

// match adds what comps matches below dir, a directory reached without
// following links.
func (e *expander) match(dir string, comps []string) error {
	if err := e.ctx.Err(); err != nil {
		return err
	}
	if len(comps) == 0 {
		e.add(dir)
		return nil
	}
	c, rest := comps[0], comps[1:]
	if c != "**" && !hasMeta(c) {
		name := join(dir, c)
		st, err := e.fsys.Lstat(name)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("/%s: %w", name, err)
		}
		if len(rest) == 0 {
			e.add(name)
		} else if st.IsDir() {
			return e.match(name, rest)
		}
		return nil
	}
	ents, err := e.fsys.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("/%s: %w", strings.TrimPrefix(dir, "."), err)
	}
	if c == "**" {
		if len(rest) == 0 {
			for _, d := range ents {
				e.add(join(dir, d.Name()))
			}
			return nil
		}
		if err := e.match(dir, rest); err != nil {
			return err
		}
		for _, d := range ents {
			// DirEntry's type comes from lstat: a link to a directory is
			// not IsDir, so it is never descended.
			if d.IsDir() {
				if err := e.match(join(dir, d.Name()), comps); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, d := range ents {
		ok, _ := path.Match(c, d.Name()) // c was checked by Parse
		if !ok {
			continue
		}
		if len(rest) == 0 {
			e.add(join(dir, d.Name()))
		} else if d.IsDir() {
			if err := e.match(join(dir, d.Name()), rest); err != nil {
				return err
			}
		}
	}
	return nil
}

func hasMeta(c string) bool { return strings.ContainsAny(c, `*?[\`) }
