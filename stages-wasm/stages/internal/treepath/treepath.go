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
