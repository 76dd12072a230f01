// Package treepath turns the paths osbuild manifests write into paths in the
// stage's tree: "/etc", "etc" and "tree:///etc" all name /etc. osbuild's
// "mount://" URLs name a mounted device, which a kiln v1 manifest does not
// have, so they are refused with an error saying so.
package treepath

import (
	"errors"
	"path"
	"strings"
)

// ErrMount is wrapped by Parse's error for a mount:// URL.
var ErrMount = errors.New("mount:// paths need a mount, and kiln v1 manifests have none; use a plain path or tree://")

// Parse returns the absolute, clean path in the tree that p names. A path
// with a ".." component is refused even where it would stay inside the
// tree: osbuild's schemas refuse it, and a stage never needs it.
func Parse(p string) (string, error) {
	switch {
	case strings.HasPrefix(p, "mount://"):
		return "", ErrMount
	case strings.HasPrefix(p, "tree://"):
		p = strings.TrimPrefix(p, "tree://")
	case strings.Contains(p, "://"):
		return "", errors.New("unknown URL scheme (want a plain path or tree://)")
	}
	if p == "" {
		return "", errors.New("empty path")
	}
	if strings.ContainsRune(p, 0) {
		return "", errors.New("path holds a NUL byte")
	}
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return "", errors.New("path has a \"..\" component")
		}
	}
	return path.Clean("/" + p), nil
}

// ErrDotDot is Member's error for a name with a ".." component.
var ErrDotDot = errors.New("has a \"..\" component")

// Member places an archive member's name under prefix, a path Parse
// returned: a ".." component is refused (ErrDotDot) as GNU tar refuses it,
// a leading "/" is dropped as GNU tar drops it, and the name of the
// archive's root ("./", "/") is "". It runs once a member of an unpacked
// tree, in wasm, where path.Clean goes a byte at a time: a name already
// clean ("./a/b", as tar -C dir . writes them) is only joined.
func Member(prefix, name string) (string, error) {
	if rel := strings.TrimPrefix(name, "./"); cleanRel(rel) {
		if prefix == "/" {
			return "/" + rel, nil
		}
		return prefix + "/" + rel, nil
	}
	for rest := name; rest != ""; {
		var c string
		c, rest, _ = strings.Cut(rest, "/")
		if c == ".." {
			return "", ErrDotDot
		}
	}
	clean := path.Clean("/" + name)
	switch {
	case clean == "/":
		return "", nil
	case prefix == "/":
		return clean, nil
	}
	return prefix + clean, nil
}

// cleanRel reports whether p is a relative path that path.Clean leaves as
// it is: not empty, and no component empty, "." or "..".
func cleanRel(p string) bool {
	if p == "" {
		return false
	}
	start := 0
	for i := 0; i <= len(p); i++ {
		if i == len(p) || p[i] == '/' {
			if c := p[start:i]; c == "" || c == "." || c == ".." {
				return false
			}
			start = i + 1
		}
	}
	return true
}
