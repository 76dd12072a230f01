package debrepo

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"pault.ag/go/debian/dependency"
	"pault.ag/go/debian/version"
)

// Resolver errors, for errors.Is.
var (
	// ErrUnsatisfiable: a requested package or a dependency has no
	// candidate. The message names the chain of packages that led to it.
	ErrUnsatisfiable = errors.New("unsatisfiable dependency")
	// ErrConflict: two chosen packages conflict (Conflicts or Breaks).
	ErrConflict = errors.New("conflicting packages")
	// ErrPreDependsCycle: packages Pre-Depend on each other, so no order
	// unpacks each after what it pre-depends on.
	ErrPreDependsCycle = errors.New("Pre-Depends cycle")
)

// Request is one package asked for: a name and, optionally, a version
// constraint ("libc6 (>= 2.36)").
type Request struct {
	Name       string
	Constraint *dependency.VersionRelation
}

func (r Request) String() string {
	if r.Constraint == nil {
		return r.Name
	}
	return r.Name + " " + r.Constraint.String()
}

// ParseRequest parses a package request as written on the command line and
// recorded in a lock: "name" or "name (op version)", op one of << <= = >= >>.
// Architecture qualifiers and alternatives are refused: a request names one
// package of the resolved architecture.
func ParseRequest(s string) (Request, error) {
	d, err := ParseRelations(s)
	if err != nil {
		return Request{}, fmt.Errorf("request %q: %w", s, err)
	}
	if len(d.Relations) != 1 || len(d.Relations[0].Possibilities) != 1 {
		return Request{}, fmt.Errorf("request %q: want one package, optionally with (op version): %w", s, ErrMalformed)
	}
	p := d.Relations[0].Possibilities[0]
	if p.Arch != nil || p.Substvar || len(p.StageSets) > 0 ||
		(p.Architectures != nil && len(p.Architectures.Architectures) > 0) {
		return Request{}, fmt.Errorf("request %q: architecture qualifiers, [arch] lists and <profiles> are not allowed: %w", s, ErrMalformed)
	}
	r := Request{Name: p.Name}
	if p.Version != nil {
		switch p.Version.Operator {
		case "<<", "<=", "=", ">=", ">>":
		default:
			return Request{}, fmt.Errorf("request %q: operator %q: %w", s, p.Version.Operator, ErrMalformed)
		}
		r.Constraint = &dependency.VersionRelation{Number: p.Version.Number, Operator: p.Version.Operator}
	}
	return r, nil
}

// ResolveOptions says what to resolve for.
type ResolveOptions struct {
	// Architecture is the one binary architecture (e.g. amd64); packages
	// of it and of "all" are candidates, others are ignored.
	Architecture string
	// Required adds every package of Priority: required, as debootstrap
	// does.
	Required bool
	// Essential adds every package marked Essential: yes.
	Essential bool
}

// Resolution is an install set in install order.
type Resolution struct {
	// Packages in install order: each after what it Pre-Depends on, and
	// after what it Depends on unless a Depends cycle forbids it.
	Packages []Package
}

// candidate is one version of one package, indexed.
type candidate struct {
	pkg  *Package
	prio int // priority rank, lower is more important
}

// provision is one Provides entry: pkg provides a virtual name, optionally
// at a version (versioned Provides: "foo (= 1.0)").
type provision struct {
	c       *candidate
	version string // "" when unversioned
}

type index struct {
	arch      string
	byName    map[string][]*candidate // highest version first
	providers map[string][]provision  // sorted deterministically
}

var priorityRank = map[string]int{"required": 0, "important": 1, "standard": 2, "optional": 3, "extra": 4}

func rank(p string) int {
	if r, ok := priorityRank[p]; ok {
		return r
	}
	return 5
}

func newIndex(pkgs []Package, arch string) *index {
	ix := &index{arch: arch, byName: map[string][]*candidate{}, providers: map[string][]provision{}}
	for i := range pkgs {
		p := &pkgs[i]
		if p.Architecture != arch && p.Architecture != "all" {
			continue
		}
		c := &candidate{pkg: p, prio: rank(p.Priority)}
		ix.byName[p.Name] = append(ix.byName[p.Name], c)
		for _, rel := range p.Provides.Relations {
			for _, pv := range rel.Possibilities {
				v := ""
				if pv.Version != nil && pv.Version.Operator == "=" {
					v = pv.Version.Number
				}
				ix.providers[pv.Name] = append(ix.providers[pv.Name], provision{c: c, version: v})
			}
		}
	}
	for name, cs := range ix.byName {
		// Highest version first; equal versions (the same package in two
		// components) by architecture, then digest, so input order never
		// decides.
		slices.SortStableFunc(cs, func(a, b *candidate) int {
			if c := version.Compare(b.pkg.Version, a.pkg.Version); c != 0 {
				return c
			}
			if c := cmp.Compare(a.pkg.Architecture, b.pkg.Architecture); c != 0 {
				return c
			}
			return cmp.Compare(a.pkg.SHA256, b.pkg.SHA256)
		})
		ix.byName[name] = cs
	}
	for name, ps := range ix.providers {
		// Among providers of a virtual package: more important Priority
		// first (mawk, required, before gawk, optional, for awk), then
		// name, then highest version.
		slices.SortStableFunc(ps, func(a, b provision) int {
			if c := cmp.Compare(a.c.prio, b.c.prio); c != 0 {
				return c
			}
			if c := cmp.Compare(a.c.pkg.Name, b.c.pkg.Name); c != 0 {
				return c
			}
			if c := version.Compare(b.c.pkg.Version, a.c.pkg.Version); c != 0 {
				return c
			}
			return cmp.Compare(a.c.pkg.SHA256, b.c.pkg.SHA256)
		})
		ix.providers[name] = ps
	}
	return ix
}

// satisfiesVersion reports whether version v meets relation r (nil: any).
func satisfiesVersion(v version.Version, r *dependency.VersionRelation) bool {
	if r == nil {
		return true
	}
	want, err := version.Parse(r.Number)
	if err != nil {
		return false
	}
	c := version.Compare(v, want)
	switch r.Operator {
	case "<<", "<":
		return c < 0
	case "<=":
		return c <= 0
	case "=":
		return c == 0
	case ">=":
		return c >= 0
	case ">>", ">":
		return c > 0
	}
	return false
}

// provSatisfies: an unversioned Provides satisfies only unversioned
// relations; a versioned one is compared like a real version (Policy 7.5).
func provSatisfies(pv provision, r *dependency.VersionRelation) bool {
	if r == nil {
		return true
	}
	if pv.version == "" {
		return false
	}
	v, err := version.Parse(pv.version)
	if err != nil {
		return false
	}
	return satisfiesVersion(v, r)
}

// archOK reports whether a relation's architecture qualifier can be met by
// a package of the resolved architecture: none, :any, :native or the
// architecture itself.
func (ix *index) archOK(p dependency.Possibility) bool {
	if p.Arch == nil {
		return true
	}
	switch a := p.Arch.String(); a {
	case "any", "native", ix.arch:
		return true
	}
	return false
}

// resolver holds the state of one resolution.
type resolver struct {
	ix       *index
	selected map[string]*candidate // by package name
	chain    map[string][]string   // how each selected package was reached
	order    []string              // selection order, the work queue
	// edges[pkg] = packages that must come first (pre) or should (dep).
	pre, dep map[string][]string
}

// Resolve computes the install set for reqs (plus the required or
// essential sets when asked) from pkgs, as apt does for a fresh install:
// Depends and Pre-Depends (never Recommends or Suggests) are followed
// breadth-first from the requests; for an alternative "a | b" an
// alternative already chosen (or requested) satisfies it, else the first
// installable one is taken; a virtual package is satisfied by a real
// package of its name if one fits, else by a provider, preferring one
// already chosen, then by Priority and name; versioned relations are met
// only by versions (or versioned Provides) that fit; each name gets its
// highest version that meets the relation that pulled it in. Conflicts
// and Breaks among the chosen packages are an error naming both.
//
// The result depends only on the set of inputs, not their order.
func Resolve(pkgs []Package, reqs []Request, opts ResolveOptions) (*Resolution, error) {
	if opts.Architecture == "" || opts.Architecture == "all" {
		return nil, fmt.Errorf("resolve: architecture %q: need a binary architecture such as amd64: %w", opts.Architecture, ErrMalformed)
	}
	r := &resolver{
		ix:       newIndex(pkgs, opts.Architecture),
		selected: map[string]*candidate{},
		chain:    map[string][]string{},
		pre:      map[string][]string{},
		dep:      map[string][]string{},
	}
	// Roots are all chosen before any dependency is looked at, so that an
	// alternative or a virtual package that a root satisfies is satisfied
	// by it, whatever order the roots came in.
	// Requests of one name are met together: the highest version that
	// meets all their constraints.
	byReq := map[string][]Request{}
	for _, q := range reqs {
		byReq[q.Name] = append(byReq[q.Name], q)
	}
	for _, name := range slices.Sorted(maps.Keys(byReq)) {
		qs := byReq[name]
		slices.SortFunc(qs, func(a, b Request) int { return cmp.Compare(a.String(), b.String()) })
		qs = slices.CompactFunc(qs, func(a, b Request) bool { return a.String() == b.String() })
		texts := make([]string, len(qs))
		for i, q := range qs {
			texts[i] = q.String()
		}
		what := strings.Join(texts, ", ")
		cs := r.ix.byName[name]
		var pick *candidate
	versions:
		for _, c := range cs {
			for _, q := range qs {
				if !satisfiesVersion(c.pkg.Version, q.Constraint) {
					continue versions
				}
			}
			pick = c
			break
		}
		if pick == nil {
			if len(cs) == 0 && len(r.ix.providers[name]) > 0 {
				return nil, fmt.Errorf("%s: is a virtual package (provided by %s): request one of them: %w",
					what, strings.Join(r.providerNames(name), ", "), ErrUnsatisfiable)
			}
			return nil, fmt.Errorf("%s: %s: %w", what, r.noCandidate(name), ErrUnsatisfiable)
		}
		r.selectPkg(pick, []string{what})
	}
	if opts.Required || opts.Essential {
		names := make([]string, 0, len(r.ix.byName))
		for n := range r.ix.byName {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			if _, ok := r.selected[n]; ok {
				continue
			}
			c := r.ix.byName[n][0]
			switch {
			case opts.Required && c.pkg.Priority == "required":
				r.selectPkg(c, []string{n + " (Priority: required)"})
			case opts.Essential && c.pkg.Essential:
				r.selectPkg(c, []string{n + " (Essential: yes)"})
			}
		}
	}
	for i := 0; i < len(r.order); i++ {
		name := r.order[i]
		c := r.selected[name]
		for _, f := range []struct {
			d   dependency.Dependency
			pre bool
		}{{c.pkg.PreDepends, true}, {c.pkg.Depends, false}} {
			for _, rel := range f.d.Relations {
				by, err := r.satisfy(c, rel)
				if err != nil {
					return nil, err
				}
				if by == name {
					continue
				}
				if f.pre {
					r.pre[name] = append(r.pre[name], by)
				} else {
					r.dep[name] = append(r.dep[name], by)
				}
			}
		}
	}
	if err := r.checkConflicts(); err != nil {
		return nil, err
	}
	order, err := r.installOrder()
	if err != nil {
		return nil, err
	}
	res := &Resolution{Packages: make([]Package, 0, len(order))}
	for _, n := range order {
		res.Packages = append(res.Packages, *r.selected[n].pkg)
	}
	return res, nil
}

func (r *resolver) selectPkg(c *candidate, chain []string) {
	r.selected[c.pkg.Name] = c
	r.chain[c.pkg.Name] = chain
	r.order = append(r.order, c.pkg.Name)
}

// satisfy finds or chooses the package that meets one relation of c and
// returns its name.
func (r *resolver) satisfy(c *candidate, rel dependency.Relation) (string, error) {
	// An alternative already met by a chosen package wins, in the order
	// the alternatives are written.
	for _, p := range rel.Possibilities {
		if by, ok := r.metBySelected(p); ok {
			return by, nil
		}
	}
	var why []string
	for _, p := range rel.Possibilities {
		pick, reason := r.choose(p)
		if pick != nil {
			if _, taken := r.selected[pick.pkg.Name]; taken {
				// Another version of the name is chosen and does not fit.
				why = append(why, fmt.Sprintf("%s: %s %s is chosen", possString(p), pick.pkg.Name, r.selected[pick.pkg.Name].pkg.Version))
				continue
			}
			if other := r.conflictsWithSelected(pick); other != "" {
				why = append(why, fmt.Sprintf("%s: %s conflicts with %s", possString(p), pick.pkg.Name, other))
				continue
			}
			r.selectPkg(pick, append(slices.Clip(r.chain[c.pkg.Name]), possString(p)))
			return pick.pkg.Name, nil
		}
		why = append(why, reason)
	}
	chain := append(slices.Clip(r.chain[c.pkg.Name]), relString(rel))
	if len(rel.Possibilities) == 1 {
		// The reason already starts with the relation; keep it once.
		return "", fmt.Errorf("%s: %s: %w", strings.Join(chain, " -> "), strings.TrimPrefix(why[0], possString(rel.Possibilities[0])+": "), ErrUnsatisfiable)
	}
	return "", fmt.Errorf("%s: no alternative installable (%s): %w", strings.Join(chain, " -> "), strings.Join(why, "; "), ErrUnsatisfiable)
}

// metBySelected reports whether a chosen package (real or providing) meets p.
func (r *resolver) metBySelected(p dependency.Possibility) (string, bool) {
	if !r.ix.archOK(p) {
		return "", false
	}
	if c, ok := r.selected[p.Name]; ok && satisfiesVersion(c.pkg.Version, p.Version) {
		return p.Name, true
	}
	for _, pv := range r.ix.providers[p.Name] {
		if r.selected[pv.c.pkg.Name] == pv.c && provSatisfies(pv, p.Version) {
			return pv.c.pkg.Name, true
		}
	}
	return "", false
}

// choose picks a candidate for p that no chosen package provides: the
// highest version of a real package of that name that fits, else the first
// fitting provider. With none it says why.
func (r *resolver) choose(p dependency.Possibility) (*candidate, string) {
	if !r.ix.archOK(p) {
		return nil, fmt.Sprintf("%s: only %s packages are resolved", possString(p), r.ix.arch)
	}
	for _, c := range r.ix.byName[p.Name] {
		if satisfiesVersion(c.pkg.Version, p.Version) {
			return c, ""
		}
	}
	for _, pv := range r.ix.providers[p.Name] {
		if provSatisfies(pv, p.Version) {
			return pv.c, ""
		}
	}
	return nil, possString(p) + ": " + r.noCandidate(p.Name)
}

func (r *resolver) noCandidate(name string) string {
	cs := r.ix.byName[name]
	if len(cs) == 0 {
		if ps := r.providerNames(name); len(ps) > 0 {
			return "no candidate (provided unversioned or at other versions by " + strings.Join(ps, ", ") + ")"
		}
		return "no candidate (no such package)"
	}
	have := make([]string, len(cs))
	for i, c := range cs {
		have[i] = c.pkg.Version.String()
	}
	return "no candidate (have " + strings.Join(have, ", ") + ")"
}

func (r *resolver) providerNames(name string) []string {
	var out []string
	for _, pv := range r.ix.providers[name] {
		if !slices.Contains(out, pv.c.pkg.Name) {
			out = append(out, pv.c.pkg.Name)
		}
	}
	slices.Sort(out)
	return out
}

func possString(p dependency.Possibility) string {
	s := p.Name
	if p.Arch != nil {
		s += ":" + p.Arch.String()
	}
	if p.Version != nil {
		s += " " + p.Version.String()
	}
	return s
}

func relString(rel dependency.Relation) string {
	parts := make([]string, len(rel.Possibilities))
	for i, p := range rel.Possibilities {
		parts[i] = possString(p)
	}
	return strings.Join(parts, " | ")
}

// hits reports whether relation field d of a names package b (by name or
// through b's Provides): what Conflicts and Breaks mean.
func hits(d dependency.Dependency, a, b *candidate) (string, bool) {
	if a == b {
		return "", false
	}
	for _, rel := range d.Relations {
		for _, p := range rel.Possibilities {
			if p.Name == b.pkg.Name && satisfiesVersion(b.pkg.Version, p.Version) {
				return possString(p), true
			}
			for _, prel := range b.pkg.Provides.Relations {
				for _, pv := range prel.Possibilities {
					if pv.Name != p.Name {
						continue
					}
					v := ""
					if pv.Version != nil && pv.Version.Operator == "=" {
						v = pv.Version.Number
					}
					if provSatisfies(provision{c: b, version: v}, p.Version) {
						return possString(p), true
					}
				}
			}
		}
	}
	return "", false
}

func conflictBetween(a, b *candidate) string {
	if rel, ok := hits(a.pkg.Conflicts, a, b); ok {
		return fmt.Sprintf("%s %s Conflicts: %s, which %s %s meets", a.pkg.Name, a.pkg.Version, rel, b.pkg.Name, b.pkg.Version)
	}
	if rel, ok := hits(a.pkg.Breaks, a, b); ok {
		return fmt.Sprintf("%s %s Breaks: %s, which %s %s meets", a.pkg.Name, a.pkg.Version, rel, b.pkg.Name, b.pkg.Version)
	}
	return ""
}

// conflictsWithSelected names a chosen package that c conflicts with, or
// that conflicts with c, so an alternative can be passed over for the next.
func (r *resolver) conflictsWithSelected(c *candidate) string {
	for _, n := range r.order {
		s := r.selected[n]
		if conflictBetween(c, s) != "" || conflictBetween(s, c) != "" {
			return n
		}
	}
	return ""
}

func (r *resolver) checkConflicts() error {
	names := slices.Sorted(maps.Keys(r.selected))
	var errs []error
	for _, a := range names {
		for _, b := range names {
			if msg := conflictBetween(r.selected[a], r.selected[b]); msg != "" {
				errs = append(errs, fmt.Errorf("%s (reached by %s) and %s (reached by %s): %s: %w",
					a, strings.Join(r.chain[a], " -> "), b, strings.Join(r.chain[b], " -> "), msg, ErrConflict))
			}
		}
	}
	return errors.Join(errs...)
}

// installOrder sorts the chosen packages so that each comes after what it
// Pre-Depends on, and after what it Depends on where no cycle forbids it.
// Strongly connected components of the whole graph are placed in
// dependency order, smallest name first among those ready; inside a
// component (a Depends cycle) only Pre-Depends bind, and a package whose
// Depends are all placed goes before one whose are not, names breaking ties.
func (r *resolver) installOrder() ([]string, error) {
	names := slices.Sorted(maps.Keys(r.selected))
	succ := func(n string) []string {
		out := append(slices.Clone(r.pre[n]), r.dep[n]...)
		slices.Sort(out)
		return slices.Compact(out)
	}
	comps := tarjan(names, succ)
	compOf := map[string]int{}
	for i, c := range comps {
		for _, n := range c {
			compOf[n] = i
		}
	}
	// Tarjan emits components in reverse topological order of the
	// "depends on" graph: dependencies first. Re-sort with Kahn so that
	// ties go by name, not by discovery order.
	indeg := make([]int, len(comps))
	users := make([][]int, len(comps))
	for _, n := range names {
		for _, d := range succ(n) {
			a, b := compOf[n], compOf[d]
			if a != b {
				users[b] = append(users[b], a)
				indeg[a]++
			}
		}
	}
	minName := func(i int) string { return slices.Min(comps[i]) }
	var ready []int
	for i := range comps {
		if indeg[i] == 0 {
			ready = append(ready, i)
		}
	}
	var out []string
	placed := map[string]bool{}
	for len(ready) > 0 {
		slices.SortFunc(ready, func(a, b int) int { return cmp.Compare(minName(a), minName(b)) })
		i := ready[0]
		ready = ready[1:]
		seq, err := r.orderComponent(comps[i], placed)
		if err != nil {
			return nil, err
		}
		out = append(out, seq...)
		for _, u := range users[i] {
			indeg[u]--
			if indeg[u] == 0 {
				ready = append(ready, u)
			}
		}
	}
	return out, nil
}

func (r *resolver) orderComponent(comp []string, placed map[string]bool) ([]string, error) {
	left := slices.Clone(comp)
	slices.Sort(left)
	var out []string
	allPlaced := func(ds []string) bool {
		for _, d := range ds {
			if !placed[d] {
				return false
			}
		}
		return true
	}
	for len(left) > 0 {
		best := -1
		for i, n := range left {
			if !allPlaced(r.pre[n]) {
				continue
			}
			if allPlaced(r.dep[n]) {
				best = i
				break
			}
			if best < 0 {
				best = i
			}
		}
		if best < 0 {
			return nil, fmt.Errorf("%s: %w", strings.Join(left, ", "), ErrPreDependsCycle)
		}
		n := left[best]
		placed[n] = true
		out = append(out, n)
		left = slices.Delete(left, best, best+1)
	}
	return out, nil
}

// tarjan returns the strongly connected components of the graph, each
// after every component it has edges to.
func tarjan(nodes []string, succ func(string) []string) [][]string {
	idx := map[string]int{}
	low := map[string]int{}
	on := map[string]bool{}
	var stack []string
	var comps [][]string
	next := 0
	var visit func(v string)
	visit = func(v string) {
		idx[v], low[v] = next, next
		next++
		stack = append(stack, v)
		on[v] = true
		for _, w := range succ(v) {
			if _, seen := idx[w]; !seen {
				visit(w)
				low[v] = min(low[v], low[w])
			} else if on[w] {
				low[v] = min(low[v], idx[w])
			}
		}
		if low[v] == idx[v] {
			var c []string
			for {
				w := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				on[w] = false
				c = append(c, w)
				if w == v {
					break
				}
			}
			comps = append(comps, c)
		}
	}
	for _, n := range nodes {
		if _, seen := idx[n]; !seen {
			visit(n)
		}
	}
	return comps
}
