//go:build wasip1

package main

import (
	"archive/tar"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/kilnbuild/kiln/stages-wasm/sdk"
)

type debOptions struct {
	Packages  []debPackageOption `json:"packages"`
	Exclude   []string           `json:"exclude"`
	Include   []string           `json:"include"`
	Configure *string            `json:"configure"`
}

type debPackageOption struct {
	Name         string `json:"name"`
	Version      string `json:"version"`
	Architecture string `json:"architecture"`
	Source       string `json:"source"`
}

// Errors kiln.deb's callers (and tests) tell apart.
var (
	errControlMismatch = errors.New("the package is not the one the option names")
	errPreDepends      = errors.New("pre-dependency not satisfied")
	errFileConflict    = errors.New("file in two packages")
	errMD5Mismatch     = errors.New("file does not match the package's md5sums")
)

// configureStep reproduces the effects of the packages' maintainer
// scripts; it is debConfigure (deb_configure.go), set in an init so that
// the unpacker and the configure step stay in files of their own.
var configureStep func(pkgs []*debPackage, mode string) (*debConfigureResult, error)

// debConfigureUnpack is the mode in which kiln.deb does what dpkg --unpack
// (and debootstrap --foreign) does, and no more: no effect of any script is
// reproduced, and a package is installed only if it has no script that runs
// at installation.
const debConfigureUnpack = "unpack"

// unpackOnly is the configure result of the unpack mode.
func unpackOnly(pkgs []*debPackage) *debConfigureResult {
	res := &debConfigureResult{Configured: map[string]bool{}}
	for _, p := range pkgs {
		if hasInstallScripts(p) {
			res.Deferred = append(res.Deferred, debDeferred{Package: p.Name, Reason: "maintainer scripts not run (configure: unpack)"})
			continue
		}
		res.Configured[p.Name] = true
	}
	return res
}

func hasInstallScripts(p *debPackage) bool {
	for _, s := range []string{"preinst", "postinst", "config"} {
		if _, ok := p.Scripts[s]; ok {
			return true
		}
	}
	return false
}

// kiln.deb installs Debian binary packages into the tree as `dpkg --unpack`
// would, without dpkg and without running anything: each .deb (an
// org.osbuild.files or org.osbuild.curl source named by its sha256) is
// checked against the option naming it, its Pre-Depends against what is
// already installed, its data.tar is unpacked with modes, owners, links,
// devices and xattrs, and dpkg's database (status, info/) is written so
// that dpkg and dpkg-query in or on the tree see the packages. Maintainer
// scripts are never run: configureStep decides which packages count as
// configured. See docs/stages.md for what differs from dpkg.
func init() {
	sdk.Register("kiln.deb", func(o debOptions) error {
		mode := "none"
		if o.Configure != nil {
			mode = *o.Configure
		}
		if mode != "none" && mode != "first-boot" && mode != debConfigureUnpack {
			return fmt.Errorf("option \"configure\": %q is not none, first-boot or unpack", mode)
		}
		if len(o.Packages) == 0 {
			return errors.New("option \"packages\": no packages")
		}
		for i, g := range append(slices.Clone(o.Exclude), o.Include...) {
			if !strings.HasPrefix(g, "/") {
				return fmt.Errorf("option \"exclude\"/\"include\" pattern %d: %q is not an absolute path pattern", i, g)
			}
		}
		db, err := readDB()
		if err != nil {
			return fmt.Errorf("reading the tree's dpkg database: %w", err)
		}
		in := &debInstall{db: db, filter: newPathFilter(o.Exclude, o.Include), byKey: map[string]*unpackedDeb{}}
		for i, po := range o.Packages {
			opt := fmt.Sprintf("packages[%d]", i)
			u, err := in.install(opt, po)
			if err != nil {
				return fmt.Errorf("option %q (%s): %w", opt, po.Name, err)
			}
			fmt.Printf("unpacked %s %s %s: %d paths\n", u.pkg.Name, u.pkg.Version, u.pkg.Arch, len(u.pkg.Files))
		}
		pkgs := make([]*debPackage, len(in.done))
		for i, u := range in.done {
			pkgs[i] = u.pkg
		}
		res := unpackOnly(pkgs)
		if mode != debConfigureUnpack {
			var err error
			if res, err = configureStep(pkgs, mode); err != nil {
				return fmt.Errorf("configuring: %w", err)
			}
		}
		if err := in.writeDB(res); err != nil {
			return fmt.Errorf("writing %s: %w", adminDir, err)
		}
		for _, e := range res.Effects {
			fmt.Printf("configured: %s\n", e)
		}
		for _, d := range res.Deferred {
			fmt.Printf("not configured: %s: %s\n", d.Package, d.Reason)
		}
		fmt.Printf("%d packages: %d configured, %d left unpacked\n", len(pkgs), len(res.Configured), len(pkgs)-len(res.Configured))
		return nil
	})
}

// debInstall is one kiln.deb run.
type debInstall struct {
	db     *dpkgDB
	filter *pathFilter
	done   []*unpackedDeb
	byKey  map[string]*unpackedDeb
}

// unpackedDeb is a package this run unpacked, with what the database
// needs beyond debPackage.
type unpackedDeb struct {
	pkg       *debPackage
	key       string
	members   map[string][]byte
	replaces  []relation
	provides  []relation
	md5       map[string][]byte // path -> md5 of a regular file or hard link
	regular   []string          // those paths in archive order
	md5sums   []string          // the .md5sums lines
	conffiles []string          // "path md5" for the status
}

func (in *debInstall) install(opt string, po debPackageOption) (*unpackedDeb, error) {
	src, err := sourcePath(opt+".source", po.Source)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(src)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	deb, err := openDeb(f, src)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", po.Source, err)
	}
	members, err := deb.readControl()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", po.Source, err)
	}
	paras, err := parseParagraphs(string(members["control"]))
	if err != nil || len(paras) != 1 {
		return nil, fmt.Errorf("%s: control file: want one paragraph (%v): %w", po.Source, err, errNotDeb)
	}
	control := paras[0]
	u := &unpackedDeb{
		pkg: &debPackage{
			Name: field(control, "Package"), Version: field(control, "Version"),
			Arch: field(control, "Architecture"), Control: control, Scripts: map[string][]byte{},
		},
		members: members,
		md5:     map[string][]byte{},
	}
	for _, c := range []struct{ what, got, want string }{
		{"Package", u.pkg.Name, po.Name}, {"Version", u.pkg.Version, po.Version}, {"Architecture", u.pkg.Arch, po.Architecture},
	} {
		if c.got != c.want {
			return nil, fmt.Errorf("%w: its control file says %s: %q, the option %q", errControlMismatch, c.what, c.got, c.want)
		}
	}
	u.key = infoKey(u.pkg.Name, u.pkg.Arch, field(control, "Multi-Arch"))
	if in.byKey[u.key] != nil {
		return nil, fmt.Errorf("%s is listed twice", u.key)
	}
	for name, b := range members {
		switch {
		case name == "control" || name == "md5sums" || name == "conffiles":
		case !validInfoMember(name):
			// It would land in info/ beside the files kiln writes there.
			warnf("%s: control member %q not kept", u.pkg.Name, name)
		default:
			u.pkg.Scripts[name] = b
		}
	}
	for _, fld := range []struct {
		name string
		to   *[]relation
	}{{"Replaces", &u.replaces}, {"Provides", &u.provides}} {
		deps, err := parseRelations(field(control, fld.name))
		if err != nil {
			return nil, fmt.Errorf("control field %s: %w", fld.name, err)
		}
		for _, alts := range deps {
			*fld.to = append(*fld.to, alts...)
		}
	}
	if err := in.checkPreDepends(u); err != nil {
		return nil, err
	}
	tr, err := deb.data()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", po.Source, err)
	}
	defer tr.Close()
	// A package the tree has already is being installed again (another
	// version): what only the old version had goes, as dpkg removes it.
	var previous []string
	if old := in.db.pkgs[u.key]; old != nil {
		for p, owner := range in.db.owner {
			if owner == u.key {
				previous = append(previous, p)
			}
		}
		for _, line := range strings.Split(field(old.fields, "Conffiles"), "\n") {
			// dpkg keeps a conffile the new version drops (as obsolete);
			// kiln leaves it in the tree.
			if f := strings.Fields(line); len(f) >= 2 {
				previous = slices.DeleteFunc(previous, func(p string) bool { return p == f[0] })
			}
		}
	}
	hooks := &extractHooks{
		keep: func(h *tar.Header, name string) (bool, error) { return in.keep(u, h, name) },
		done: func(h *tar.Header, name string, sum []byte, _ bool) error { return in.record(u, h, name, sum) },
	}
	if err := extract(tr, "/", hooks); err != nil {
		return nil, fmt.Errorf("%s: data.tar: %w", po.Source, err)
	}
	if err := u.checkSums(in.filter); err != nil {
		return nil, err
	}
	if err := in.removeDropped(u, previous); err != nil {
		return nil, err
	}
	if err := u.readConffiles(); err != nil {
		return nil, err
	}
	in.done = append(in.done, u)
	in.byKey[u.key] = u
	return u, nil
}

// removeDropped removes the non-directories an earlier version of u listed
// that u no longer has and no other package took. Directories stay: the
// database cannot tell which other packages share them.
func (in *debInstall) removeDropped(u *unpackedDeb, previous []string) error {
	now := make(map[string]bool, len(u.pkg.Files))
	for _, p := range u.pkg.Files {
		now[p] = true
	}
	slices.Sort(previous)
	for _, p := range previous {
		if now[p] || p == "/." || in.db.owner[p] != u.key {
			continue
		}
		fi, err := os.Lstat(p)
		if err != nil || fi.IsDir() {
			continue // gone already, or a directory
		}
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("removing %s, which %s %s no longer has: %w", p, u.pkg.Name, u.pkg.Version, err)
		}
		delete(in.db.owner, p)
	}
	return nil
}

// validInfoMember accepts the control member names dpkg keeps under info/
// as <package>.<member>: no dot, no slash, not one kiln writes itself.
func validInfoMember(name string) bool {
	if name == "" || name == "list" || name == "md5sums" || name == "conffiles" {
		return false
	}
	for _, c := range name {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// checkPreDepends: every Pre-Depends of u must be met by a package earlier
// in the option or already in the tree's status, since dpkg would unpack u
// only then.
func (in *debInstall) checkPreDepends(u *unpackedDeb) error {
	deps, err := parseRelations(field(u.pkg.Control, "Pre-Depends"))
	if err != nil {
		return fmt.Errorf("control field Pre-Depends: %w", err)
	}
	type cand struct {
		name, version string
		provides      []relation
	}
	var cands []cand
	for _, d := range in.done {
		cands = append(cands, cand{d.pkg.Name, d.pkg.Version, d.provides})
	}
	for _, p := range in.db.pkgs {
		if s := strings.Fields(p.status); len(s) == 3 && s[2] != "not-installed" && s[2] != "config-files" {
			cands = append(cands, cand{p.name, p.version, p.provides})
		}
	}
	for _, alts := range deps {
		met := false
		var near []string
		for _, r := range alts {
			for _, c := range cands {
				if c.name == r.Name {
					if r.SatisfiedBy(c.version) {
						met = true
					} else {
						near = append(near, c.name+" "+c.version)
					}
				}
				for _, pr := range c.provides {
					if pr.Name == r.Name && (r.Op == "" || r.SatisfiedBy(pr.Version)) {
						met = true
					}
				}
			}
		}
		if !met {
			msg := fmt.Sprintf("%s Pre-Depends on %s, which no package earlier in \"packages\" or in the tree's dpkg status satisfies", u.pkg.Name, formatRelations([][]relation{alts}))
			if len(near) > 0 {
				msg += " (there is " + strings.Join(near, ", ") + ")"
			}
			return fmt.Errorf("%w: %s", errPreDepends, msg)
		}
	}
	return nil
}

// keep applies the path filters and refuses a non-directory another
// package already has, unless u Replaces that package: then u takes it.
func (in *debInstall) keep(u *unpackedDeb, h *tar.Header, name string) (bool, error) {
	dirOrLink := h.Typeflag == tar.TypeDir || h.Typeflag == tar.TypeSymlink
	if in.filter.Skip(name, dirOrLink) {
		return false, nil
	}
	if h.Typeflag == tar.TypeDir {
		return true, nil
	}
	owner, ok := in.db.owner[name]
	if !ok || owner == u.key {
		return true, nil
	}
	if fi, err := os.Lstat(name); err == nil && fi.IsDir() {
		return true, nil // a directory there: the unpacker reports it
	}
	oname, oversion := owner, ""
	if o := in.byKey[owner]; o != nil {
		oname, oversion = o.pkg.Name, o.pkg.Version
	} else if o := in.db.pkgs[owner]; o != nil {
		oname, oversion = o.name, o.version
	}
	for _, r := range u.replaces {
		if r.Name == oname && r.SatisfiedBy(oversion) {
			in.db.takeOver(owner, name)
			return true, nil
		}
	}
	return false, fmt.Errorf("%w: %s is in %s %s and in %s %s, which does not Replace %s", errFileConflict, name, oname, oversion, u.pkg.Name, u.pkg.Version, oname)
}

// record adds a member unpacked to u's file list and sums.
func (in *debInstall) record(u *unpackedDeb, h *tar.Header, name string, sum []byte) error {
	if name == "/" {
		u.pkg.Files = append(u.pkg.Files, "/.")
		return nil
	}
	u.pkg.Files = append(u.pkg.Files, name)
	in.db.owner[name] = u.key
	switch h.Typeflag {
	case tar.TypeReg:
		u.md5[name] = sum
		u.regular = append(u.regular, name)
	case tar.TypeLink:
		target, err := entryPath("/", h.Linkname)
		if err != nil {
			return err
		}
		if s, ok := u.md5[target]; ok {
			u.md5[name] = s
			u.regular = append(u.regular, name)
		}
	}
	return nil
}

// checkSums makes the .md5sums lines: the package's own md5sums member,
// each line checked against the file as unpacked and the lines of excluded
// files dropped, or, when the package has none, one line per regular file
// in archive order, as dpkg makes it.
func (u *unpackedDeb) checkSums(filter *pathFilter) error {
	shipped, ok := u.members["md5sums"]
	if !ok {
		for _, p := range u.regular {
			u.md5sums = append(u.md5sums, hex.EncodeToString(u.md5[p])+"  "+p[1:])
		}
		return nil
	}
	for n, line := range strings.Split(strings.TrimSuffix(string(shipped), "\n"), "\n") {
		if line == "" {
			continue
		}
		want, rel, ok := strings.Cut(line, "  ")
		if !ok {
			return fmt.Errorf("md5sums line %d: %q is not \"<md5>  <path>\"", n+1, line)
		}
		p := path.Clean("/" + strings.TrimPrefix(rel, "./"))
		got, ok := u.md5[p]
		if !ok {
			if filter.Skip(p, false) {
				continue
			}
			return fmt.Errorf("%w: md5sums lists %s, which the package does not hold as a regular file", errMD5Mismatch, p)
		}
		if hex.EncodeToString(got) != strings.ToLower(want) {
			return fmt.Errorf("%w: %s has md5 %x, md5sums says %s", errMD5Mismatch, p, got, want)
		}
		u.md5sums = append(u.md5sums, line)
	}
	return nil
}

// readConffiles reads the conffiles member. Conffiles are unpacked in
// place and recorded with their md5, as after `dpkg --configure` (dpkg
// --unpack leaves them as <path>.dpkg-new, recorded "newconffile"; a
// later `dpkg --configure` accepts kiln's form, checked by the tests).
func (u *unpackedDeb) readConffiles() error {
	text := string(u.members["conffiles"])
	for _, line := range strings.Split(text, "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		p := fields[len(fields)-1]
		if len(fields) > 1 {
			// "remove-on-upgrade /etc/x" names a conffile the package no
			// longer ships; there is no earlier version to remove it from.
			continue
		}
		sum, ok := u.md5[p]
		if !ok {
			if slices.Contains(u.pkg.Files, p) {
				return fmt.Errorf("conffile %s is not a regular file", p)
			}
			continue // excluded by a path filter, or not shipped
		}
		u.pkg.Conffiles = append(u.pkg.Conffiles, p)
		u.conffiles = append(u.conffiles, p+" "+hex.EncodeToString(sum))
	}
	return nil
}

// writeDB writes the status entries and info files of the packages this
// run unpacked and the files every admin directory has.
func (in *debInstall) writeDB(res *debConfigureResult) error {
	if err := writeAdmin(); err != nil {
		return err
	}
	current := map[string]bool{}
	for _, u := range in.done {
		current[u.key] = true
		status := "install ok unpacked"
		if res.Configured[u.pkg.Name] {
			status = "install ok installed"
		}
		fields, err := statusEntry(u.pkg.Control, status, u.conffiles)
		if err != nil {
			return fmt.Errorf("%s: %w", u.pkg.Name, err)
		}
		if _, ok := in.db.pkgs[u.key]; ok {
			if err := removeStaleInfo(u.key); err != nil {
				return err
			}
		}
		in.db.pkgs[u.key] = &installedPkg{key: u.key, fields: fields, name: u.pkg.Name, version: u.pkg.Version, arch: u.pkg.Arch, status: status}
		gone := in.db.moved[u.key]
		var list, sums strings.Builder
		kept := u.pkg.Files[:0]
		for _, p := range u.pkg.Files {
			if !gone[p] {
				kept = append(kept, p)
				list.WriteString(p + "\n")
			}
		}
		u.pkg.Files = kept
		// As dpkg, the .md5sums keeps the lines of files a later package
		// took over; dpkg --verify goes by the .list.
		for _, l := range u.md5sums {
			sums.WriteString(l + "\n")
		}
		info := path.Join(adminDir, "info", u.key)
		if err := putFile(info+".list", []byte(list.String()), 0o644, 0, 0); err != nil {
			return err
		}
		if sums.Len() > 0 {
			if err := putFile(info+".md5sums", []byte(sums.String()), 0o644, 0, 0); err != nil {
				return err
			}
		}
		if c, ok := u.members["conffiles"]; ok {
			if err := putFile(info+".conffiles", c, 0o644, 0, 0); err != nil {
				return err
			}
		}
		names := make([]string, 0, len(u.pkg.Scripts))
		for n := range u.pkg.Scripts {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			mode := os.FileMode(0o644)
			if infoScripts[n] {
				mode = 0o755
			}
			if err := putFile(info+"."+n, u.pkg.Scripts[n], mode, 0, 0); err != nil {
				return err
			}
		}
	}
	if err := in.db.rewriteMoved(current); err != nil {
		return err
	}
	return in.db.writeStatus()
}
