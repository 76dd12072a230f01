// Package alternatives reproduces what a sequence of `update-alternatives
// --install` calls leaves behind in auto mode on a fresh system: the link
// groups, the choice each selects, the /etc/alternatives and generic-name
// symlinks, and the administrative file of each group in
// /var/lib/dpkg/alternatives, byte for byte as dpkg's update-alternatives
// writes it (its tests check that against the real tool).
//
// Auto mode is simulated call by call, as the scripts run in installation
// order: a new choice replaces the selected one only if its priority is
// higher, so equal priorities keep the first installed. A slave link exists
// only when the selected choice provides that slave and its file is in the
// tree, as update-alternatives skips it otherwise.
package alternatives

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
)

// ErrConflict is wrapped by Add's error when a call contradicts the group
// it names (another master link, a slave name used as a master).
var ErrConflict = errors.New("conflicting alternatives")

// Install is one `update-alternatives --install LINK NAME PATH PRIORITY
// [--slave LINK NAME PATH]...` call.
type Install struct {
	Link, Name, Path string
	Priority         int
	Slaves           []Slave
}

// Slave is a --slave LINK NAME PATH.
type Slave struct{ Link, Name, Path string }

// Group is one link group after the calls.
type Group struct {
	Name, Link string
	// Slaves are the group's slave links by name, as the union of what its
	// choices declared.
	Slaves map[string]string
	// Choices by path.
	Choices map[string]*Choice
	// Selected is the path auto mode chose.
	Selected string
}

// Choice is one alternative of a group.
type Choice struct {
	Path     string
	Priority int
	// Slaves maps slave name to this choice's file for it.
	Slaves map[string]string
}

// Set is the groups of a tree, by name.
type Set struct {
	Groups  map[string]*Group
	slaveOf map[string]string // slave name -> group
}

// NewSet returns an empty set.
func NewSet() *Set {
	return &Set{Groups: map[string]*Group{}, slaveOf: map[string]string{}}
}

// Add applies one call. Its paths must be absolute and its names plain
// (no "/"), as update-alternatives requires.
func (s *Set) Add(in Install) error {
	if err := check(in.Link, in.Name, in.Path); err != nil {
		return err
	}
	for _, sl := range in.Slaves {
		if err := check(sl.Link, sl.Name, sl.Path); err != nil {
			return err
		}
		if sl.Name == in.Name || sl.Link == in.Link {
			return fmt.Errorf("%w: slave %s of %s repeats its master", ErrConflict, sl.Name, in.Name)
		}
	}
	if g, ok := s.slaveOf[in.Name]; ok {
		return fmt.Errorf("%w: %s is a slave of %s", ErrConflict, in.Name, g)
	}
	g := s.Groups[in.Name]
	if g == nil {
		g = &Group{Name: in.Name, Link: in.Link, Slaves: map[string]string{}, Choices: map[string]*Choice{}}
	} else if g.Link != in.Link {
		return fmt.Errorf("%w: %s has link %s, not %s", ErrConflict, in.Name, g.Link, in.Link)
	}
	for _, sl := range in.Slaves {
		if _, ok := s.Groups[sl.Name]; ok {
			return fmt.Errorf("%w: slave %s of %s is a master", ErrConflict, sl.Name, in.Name)
		}
		if other, ok := s.slaveOf[sl.Name]; ok && other != in.Name {
			return fmt.Errorf("%w: %s is already a slave of %s", ErrConflict, sl.Name, other)
		}
		if l, ok := g.Slaves[sl.Name]; ok && l != sl.Link {
			return fmt.Errorf("%w: slave %s of %s has link %s, not %s", ErrConflict, sl.Name, in.Name, l, sl.Link)
		}
	}
	s.Groups[in.Name] = g
	c := &Choice{Path: in.Path, Priority: in.Priority, Slaves: map[string]string{}}
	for _, sl := range in.Slaves {
		g.Slaves[sl.Name] = sl.Link
		s.slaveOf[sl.Name] = in.Name
		c.Slaves[sl.Name] = sl.Path
	}
	g.Choices[in.Path] = c
	if cur := g.Choices[g.Selected]; cur == nil || cur.Path == in.Path || in.Priority > cur.Priority {
		g.Selected = in.Path
	}
	return nil
}

func check(link, name, p string) error {
	if !path.IsAbs(link) || path.Clean(link) != link || !path.IsAbs(p) || path.Clean(p) != p {
		return fmt.Errorf("%w: %s: link %q and path %q must be clean absolute paths", ErrConflict, name, link, p)
	}
	if name == "" || strings.ContainsAny(name, "/ \t\n") || name == "." || name == ".." {
		return fmt.Errorf("%w: %q is not an alternative name", ErrConflict, name)
	}
	if strings.ContainsAny(link+p, "\n\x00") {
		return fmt.Errorf("%w: %s: a path holds a line break", ErrConflict, name)
	}
	return nil
}

// Names returns the group names, sorted.
func (s *Set) Names() []string {
	var ns []string
	for n := range s.Groups {
		ns = append(ns, n)
	}
	slices.Sort(ns)
	return ns
}

// AdminFile is the group's file in /var/lib/dpkg/alternatives: status,
// master link, slave name and link pairs sorted by name, a blank line,
// then each choice sorted by path with its priority and one line per
// slave (empty where it provides none), and a final blank line.
func (g *Group) AdminFile() []byte {
	var b strings.Builder
	b.WriteString("auto\n" + g.Link + "\n")
	names := g.slaveNames()
	for _, n := range names {
		b.WriteString(n + "\n" + g.Slaves[n] + "\n")
	}
	b.WriteString("\n")
	var paths []string
	for p := range g.Choices {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		c := g.Choices[p]
		b.WriteString(p + "\n" + strconv.Itoa(c.Priority) + "\n")
		for _, n := range names {
			b.WriteString(c.Slaves[n] + "\n")
		}
	}
	b.WriteString("\n")
	return []byte(b.String())
}

func (g *Group) slaveNames() []string {
	var names []string
	for n := range g.Slaves {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Link is a symlink to make: Path -> Target.
type Link struct{ Path, Target string }

// Links are the symlinks for the selected choice: the master's and, for
// each slave the choice provides whose file exists (as exists says), the
// slave's; each generic link points into altdir (/etc/alternatives).
func (g *Group) Links(altdir string, exists func(string) bool) []Link {
	c := g.Choices[g.Selected]
	ls := []Link{
		{path.Join(altdir, g.Name), c.Path},
		{g.Link, path.Join(altdir, g.Name)},
	}
	for _, n := range g.slaveNames() {
		p := c.Slaves[n]
		if p == "" || !exists(p) {
			continue
		}
		ls = append(ls, Link{path.Join(altdir, n), p}, Link{g.Slaves[n], path.Join(altdir, n)})
	}
	return ls
}

// Clone returns a deep copy of s, so that a package's calls can be tried
// together and dropped if one fails.
func (s *Set) Clone() *Set {
	n := NewSet()
	for k, v := range s.slaveOf {
		n.slaveOf[k] = v
	}
	for name, g := range s.Groups {
		ng := &Group{Name: g.Name, Link: g.Link, Selected: g.Selected, Slaves: map[string]string{}, Choices: map[string]*Choice{}}
		for k, v := range g.Slaves {
			ng.Slaves[k] = v
		}
		for p, c := range g.Choices {
			nc := &Choice{Path: c.Path, Priority: c.Priority, Slaves: map[string]string{}}
			for k, v := range c.Slaves {
				nc.Slaves[k] = v
			}
			ng.Choices[p] = nc
		}
		n.Groups[name] = ng
	}
	return n
}
