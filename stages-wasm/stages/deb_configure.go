//go:build wasip1

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/kilnbuild/kiln/stages-wasm/sdk"
	"github.com/kilnbuild/kiln/stages-wasm/stages/internal/alternatives"
	"github.com/kilnbuild/kiln/stages-wasm/stages/internal/cacerts"
	"github.com/kilnbuild/kiln/stages-wasm/stages/internal/debcfg"
	"github.com/kilnbuild/kiln/stages-wasm/stages/internal/ldcache"
	"github.com/kilnbuild/kiln/stages-wasm/stages/internal/maintscript"
)

// Configure modes kiln.deb takes.
const (
	debConfigureFirstBoot = "first-boot"
	debConfigureNone      = "none"
)

// errDebConfigureMode is returned for a mode other than the two above.
var errDebConfigureMode = errors.New("unknown configure mode")

// debBuiltin reproduces, for one package kiln knows by name, the effect of
// maintainer scripts too involved for internal/maintscript to judge; it
// returns the effect lines, or a reason to defer the package.
type debBuiltin struct {
	scripts []string // the members it stands for
	run     func(c *debConfigurer) (effects []string, deferReason string, err error)
}

// debBuiltins are the packages whose scripts kiln reproduces by knowing
// them, documented in docs/maintainer-scripts.md. Each does exactly what the
// package's scripts do on a fresh install, and defers when the tree is not
// the fresh one that assumes.
var debBuiltins = map[string]debBuiltin{
	"base-passwd": {scripts: []string{"preinst", "postinst"}, run: (*debConfigurer).basePasswd},
	"passwd":      {scripts: []string{"postinst"}, run: (*debConfigurer).shadowConfig},
	// ca-certificates' config, triggers and postinst: the debconf default
	// (every certificate), update-ca-certificates and the trigger it sets
	// for the hooks, which kiln runs only when there are none.
	// libc-bin's postinst: nsswitch.conf from its default, and ldconfig,
	// whose cache debConfigure writes at the end; its trigger is ldconfig's.
	"libc-bin": {scripts: []string{"postinst", "triggers"}, run: (*debConfigurer).libcBin},
	// tzdata's config and postinst with debconf's default answer, Etc/UTC.
	"tzdata":          {scripts: []string{"config", "postinst"}, run: (*debConfigurer).tzdata},
	"ca-certificates": {scripts: []string{"config", "triggers", "postinst"}, run: (*debConfigurer).caCertificates},
}

type debConfigurer struct {
	alts *alternatives.Set
	// arch is the architecture ld.so.cache is written for ("" when no
	// package names one kiln knows); ldconfig is set once a configured
	// package asked for it.
	arch     string
	ldconfig bool
}

// debConfigure is kiln.deb's configure step: it runs once every package
// of the stage is unpacked and reproduces what their preinst and postinst
// would have done on a fresh install, as far as kiln can do that
// declaratively (docs/maintainer-scripts.md). A package is Configured only
// when every script that would run is understood; the others are deferred
// with the reason, listed in /var/lib/kiln/deferred-configure and, in
// first-boot mode, left to a unit that runs dpkg --configure -a.
func debConfigure(pkgs []*debPackage, mode string) (*debConfigureResult, error) {
	if mode != debConfigureFirstBoot && mode != debConfigureNone {
		return nil, fmt.Errorf("%w %q (want %q or %q)", errDebConfigureMode, mode, debConfigureFirstBoot, debConfigureNone)
	}
	res := &debConfigureResult{Configured: map[string]bool{}}
	c := &debConfigurer{alts: alternatives.NewSet(), arch: cacheArch(pkgs)}
	altOwner := map[string]string{}
	// base-passwd goes first whatever the unpack order, as dpkg configures
	// it first (it is Essential and passwd's scripts need its files).
	ordered := slices.Clone(pkgs)
	slices.SortStableFunc(ordered, func(a, b *debPackage) int {
		switch {
		case a.Name == b.Name:
			return 0
		case a.Name == "base-passwd":
			return -1
		case b.Name == "base-passwd":
			return 1
		}
		return 0
	})
	for _, p := range ordered {
		effects, reason, err := c.judge(p, altOwner)
		if err != nil {
			return nil, fmt.Errorf("configuring %s: %w", p.Name, err)
		}
		if reason != "" {
			res.Deferred = append(res.Deferred, debDeferred{Package: p.Name, Reason: reason})
			continue
		}
		res.Configured[p.Name] = true
		res.Effects = append(res.Effects, effects...)
	}
	effects, err := c.writeLdCache()
	if err != nil {
		return nil, err
	}
	res.Effects = append(res.Effects, effects...)
	effects, err = c.writeAlternatives(altOwner)
	if err != nil {
		return nil, err
	}
	res.Effects = append(res.Effects, effects...)
	effects, err = writeDeferred(res.Deferred, mode)
	if err != nil {
		return nil, err
	}
	res.Effects = append(res.Effects, effects...)
	return res, nil
}

// judge decides one package and, when it is configured, applies its
// builtin effects and records its alternatives.
func (c *debConfigurer) judge(p *debPackage, altOwner map[string]string) ([]string, string, error) {
	b, builtin := debBuiltins[p.Name]
	handled := map[string]bool{}
	for _, s := range b.scripts {
		handled[s] = true
	}
	if _, ok := p.Scripts["config"]; ok && !handled["config"] {
		return nil, "config script (debconf questions)", nil
	}
	if ts := debcfg.Interests(p.Scripts["triggers"]); len(ts) > 0 && !handled["triggers"] {
		return nil, fmt.Sprintf("trigger interest in %s is not processed", ts[0]), nil
	}
	var installs []maintscript.Alternative
	runsLdconfig := false
	for _, script := range []string{"preinst", "postinst"} {
		body, ok := p.Scripts[script]
		if !ok || handled[script] {
			continue
		}
		args := []string{"configure", ""}
		if script == "preinst" {
			args = []string{"install"}
		}
		r := maintscript.Analyze(body, maintscript.Env{Package: p.Name, Script: script, Args: args, Stat: treeStat})
		if r.Unknown != "" {
			return nil, script + ": " + r.Unknown, nil
		}
		if r.Ldconfig && c.arch == "" {
			return nil, script + ": runs ldconfig, and kiln writes no ld.so.cache for this architecture", nil
		}
		runsLdconfig = runsLdconfig || r.Ldconfig
		installs = append(installs, r.Alternatives...)
	}
	// A package's alternatives are tried together on a copy, and its
	// builtin effects run only then, so that a deferred package leaves
	// nothing behind.
	trial := c.alts.Clone()
	for _, in := range installs {
		if err := trial.Add(alternatives.Install{Link: in.Link, Name: in.Name, Path: in.Path, Priority: in.Priority, Slaves: slaves(in.Slaves)}); err != nil {
			return nil, "postinst: update-alternatives: " + err.Error(), nil
		}
	}
	var effects []string
	if builtin {
		e, reason, err := b.run(c)
		if err != nil || reason != "" {
			return nil, reason, err
		}
		effects = e
	}
	c.alts = trial
	c.ldconfig = c.ldconfig || runsLdconfig
	for _, in := range installs {
		altOwner[in.Name+"\x00"+in.Path] = p.Name
	}
	return effects, "", nil
}

func slaves(ss []maintscript.Slave) []alternatives.Slave {
	var out []alternatives.Slave
	for _, s := range ss {
		out = append(out, alternatives.Slave{Link: s.Link, Name: s.Name, Path: s.Path})
	}
	return out
}

// treeStat answers internal/maintscript's file tests from the tree.
func treeStat(p string) (maintscript.FileInfo, bool) {
	st, err := sdk.Lstat(p)
	if err != nil {
		return maintscript.FileInfo{}, false
	}
	fi := maintscript.FileInfo{
		Dir:     st.Mode.IsDir(),
		Regular: st.Mode.IsRegular(),
		Symlink: st.Mode&fs.ModeSymlink != 0,
		Exec:    st.Mode&0o111 != 0,
		Size:    st.Size,
	}
	if fi.Symlink {
		fi.Target, _ = os.Readlink(p)
	}
	return fi, true
}

// basePasswd is base-passwd's preinst and postinst on a fresh install:
// /etc/passwd and /etc/group, when absent, are copies of the masters.
func (c *debConfigurer) basePasswd() ([]string, string, error) {
	var effects []string
	for _, f := range []string{"passwd", "group"} {
		dst := "/etc/" + f
		had, err := exists(dst)
		if err != nil {
			return nil, "", err
		}
		if had {
			continue
		}
		b, err := os.ReadFile("/usr/share/base-passwd/" + f + ".master")
		if err != nil {
			return nil, "", err
		}
		if err := mkdirAll("/etc", 0o755, 0, 0); err != nil {
			return nil, "", err
		}
		if err := putFile(dst, b, 0o644, 0, 0); err != nil {
			return nil, "", err
		}
		effects = append(effects, "base-passwd: "+dst+" from "+f+".master")
	}
	return effects, "", nil
}

// shadowGID is the shadow group's id, fixed by Debian policy; passwd's
// postinst checks /etc/group has it.
const shadowGID = 42

// shadowConfig is passwd's postinst on a fresh install: `shadowconfig on`
// on files still equal to base-passwd's masters (its chrootless branch,
// bit for bit the pwconv/grpconv result). Edited files would need pwconv's
// merge, so the package is deferred then.
func (c *debConfigurer) shadowConfig() ([]string, string, error) {
	read := func(p string) ([]byte, bool, error) {
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, false, nil
		}
		return b, err == nil, err
	}
	pw, ok1, err := read("/etc/passwd")
	if err != nil {
		return nil, "", err
	}
	gr, ok2, err := read("/etc/group")
	if err != nil {
		return nil, "", err
	}
	pm, ok3, err := read("/usr/share/base-passwd/passwd.master")
	if err != nil {
		return nil, "", err
	}
	gm, ok4, err := read("/usr/share/base-passwd/group.master")
	if err != nil {
		return nil, "", err
	}
	if !ok1 || !ok2 || !ok3 || !ok4 || !bytes.Equal(pw, pm) || !bytes.Equal(gr, gm) {
		return nil, "postinst: shadowconfig on a passwd or group that is not base-passwd's master", nil
	}
	if !bytes.Contains(gr, []byte(fmt.Sprintf("\nshadow:*:%d:", shadowGID))) {
		return nil, "postinst: no shadow group with gid 42", nil
	}
	for _, p := range []string{"/etc/shadow", "/etc/gshadow"} {
		if had, err := exists(p); err != nil || had {
			if err != nil {
				return nil, "", err
			}
			return nil, "postinst: shadowconfig with an existing " + p, nil
		}
	}
	s, err := debcfg.ShadowConfigOn(pw, gr, time.Now().Unix())
	if err != nil {
		return nil, "", err
	}
	for _, f := range []struct {
		path string
		data []byte
		mode fs.FileMode
		gid  int
	}{
		// cp -a keeps the original's mode; shadowconfig then chmods
		// passwd- to 0600.
		{"/etc/passwd-", s.PasswdBackup, 0o600, 0},
		{"/etc/group-", s.GroupBackup, 0o644, 0},
		{"/etc/passwd", s.Passwd, 0o644, 0},
		{"/etc/group", s.Group, 0o644, 0},
		{"/etc/shadow", s.Shadow, 0o640, shadowGID},
		{"/etc/gshadow", s.Gshadow, 0o640, shadowGID},
		{"/etc/.pwd.lock", nil, 0o600, 0},
	} {
		if err := putFile(f.path, f.data, f.mode, 0, f.gid); err != nil {
			return nil, "", err
		}
	}
	return []string{"passwd: shadowconfig on: /etc/shadow and /etc/gshadow"}, "", nil
}

// cacheArch is the architecture of the first package that has one kiln
// writes ld.so.cache for.
func cacheArch(pkgs []*debPackage) string {
	for _, p := range pkgs {
		if _, ok := ldcache.Arches[p.Arch]; ok {
			return p.Arch
		}
	}
	return ""
}

// libcBin is libc-bin's postinst on a fresh install.
func (c *debConfigurer) libcBin() ([]string, string, error) {
	if c.arch == "" {
		return nil, "postinst: runs ldconfig, and kiln writes no ld.so.cache for this architecture", nil
	}
	c.ldconfig = true
	const def, dst = "/usr/share/libc-bin/nsswitch.conf", "/etc/nsswitch.conf"
	// install_from_default: cp -p when the target is not a regular file.
	if st, err := os.Stat(dst); err == nil && st.Mode().IsRegular() {
		return nil, "", nil
	}
	b, err := os.ReadFile(def)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	st, err := sdk.Lstat(def)
	if err != nil {
		return nil, "", err
	}
	if err := mkdirAll("/etc", 0o755, 0, 0); err != nil {
		return nil, "", err
	}
	if err := removeInTheWay(dst); err != nil {
		return nil, "", err
	}
	if err := putFile(dst, b, st.Mode&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky), int(st.Uid), int(st.Gid)); err != nil {
		return nil, "", err
	}
	if err := sdk.Utimens(dst, st.Atime, st.Mtime); err != nil {
		return nil, "", err
	}
	return []string{"libc-bin: " + dst + " from " + def}, "", nil
}

// writeLdCache is ldconfig (internal/ldcache) when a configured package
// ran it: the SONAME links it makes, then /etc/ld.so.cache.
func (c *debConfigurer) writeLdCache() ([]string, error) {
	if !c.ldconfig {
		return nil, nil
	}
	entries, links, err := ldcache.Scan(ldcache.Dir("/"), c.arch)
	if err != nil {
		return nil, fmt.Errorf("ldconfig: %w", err)
	}
	for _, l := range links {
		if err := os.Symlink(l.Target, l.Path); err != nil {
			return nil, fmt.Errorf("ldconfig: %w", err)
		}
	}
	if err := mkdirAll("/etc", 0o755, 0, 0); err != nil {
		return nil, err
	}
	if err := putFile("/etc/ld.so.cache", ldcache.Encode(entries), 0o644, 0, 0); err != nil {
		return nil, fmt.Errorf("ldconfig: %w", err)
	}
	return []string{fmt.Sprintf("ld.so.cache: %d libraries, %d SONAME links made", len(entries), len(links))}, nil
}

// tzdata is tzdata's postinst on a fresh install with no time zone set:
// debconf's default Etc/UTC as /etc/localtime (an absolute link, as its
// ln -nsf) and /etc/timezone. A zone already configured is what its config
// script would read and offer, so kiln defers then; org.osbuild.timezone
// after kiln.deb sets another zone.
func (c *debConfigurer) tzdata() ([]string, string, error) {
	const zone = "Etc/UTC"
	for _, p := range []string{"/etc/localtime", "/etc/timezone"} {
		if had, err := exists(p); err != nil || had {
			if err != nil {
				return nil, "", err
			}
			return nil, "config: " + p + " exists, and tzdata's config script would read it", nil
		}
	}
	if err := mkdirAll("/etc", 0o755, 0, 0); err != nil {
		return nil, "", err
	}
	if err := os.Symlink("/usr/share/zoneinfo/"+zone, "/etc/localtime"); err != nil {
		return nil, "", err
	}
	if err := putFile("/etc/timezone", []byte(zone+"\n"), 0o644, 0, 0); err != nil {
		return nil, "", err
	}
	return []string{"tzdata: /etc/localtime -> /usr/share/zoneinfo/" + zone}, "", nil
}

// caCertificates is ca-certificates' postinst on a fresh install
// (internal/cacerts): /usr/local/share/ca-certificates with /usr/local's
// mode and group, a new /etc/ca-certificates.conf enabling every
// certificate, then update-ca-certificates: NAME.pem links, the bundle and
// the hash links of everything in /etc/ssl/certs.
func (c *debConfigurer) caCertificates() ([]string, string, error) {
	const share, local, conf, certs = "/usr/share/ca-certificates", "/usr/local/share/ca-certificates", "/etc/ca-certificates.conf", "/etc/ssl/certs"
	if hooks, err := os.ReadDir("/etc/ca-certificates/update.d"); err == nil && len(hooks) > 0 {
		return nil, "postinst: update-ca-certificates hooks in /etc/ca-certificates/update.d are not run", nil
	}
	if had, err := exists(conf); err != nil || had {
		if err != nil {
			return nil, "", err
		}
		return nil, "postinst: merging an existing " + conf, nil
	}
	if had, err := exists(local); err != nil {
		return nil, "", err
	} else if !had {
		// mkdir without -p, errors ignored, as the postinst.
		if st, err := sdk.Lstat("/usr/local"); err == nil && st.Mode.IsDir() {
			if _, err := os.Stat("/usr/local/share"); err == nil {
				if err := os.Mkdir(local, 0o700); err != nil {
					return nil, "", err
				}
				if err := setOwnerMode(local, 0, int(st.Gid), st.Mode&(fs.ModePerm|fs.ModeSetgid|fs.ModeSetuid|fs.ModeSticky)); err != nil {
					return nil, "", err
				}
			}
		}
	}
	available, err := findCrt(share)
	if err != nil {
		return nil, "", err
	}
	var rel []string
	for _, a := range available {
		rel = append(rel, strings.TrimPrefix(a, share+"/"))
	}
	if err := mkdirAll("/etc", 0o755, 0, 0); err != nil {
		return nil, "", err
	}
	confData := cacerts.Conf(rel)
	if err := putFile(conf, confData, 0o644, 0, 0); err != nil {
		return nil, "", err
	}
	locals, err := findCrt(local)
	if err != nil {
		return nil, "", err
	}
	if err := mkdirAll(certs, 0o755, 0, 0); err != nil {
		return nil, "", err
	}
	var bundle [][]byte
	// The conf is sorted, so its order is rel's, sorted.
	slices.Sort(rel)
	for _, crt := range append(prefixAll(share+"/", slices.Compact(rel)), locals...) {
		b, err := os.ReadFile(crt)
		if err != nil {
			return nil, "", err
		}
		bundle = append(bundle, b)
		pemPath := path.Join(certs, cacerts.PEMName(crt))
		if err := removeInTheWay(pemPath); err != nil {
			return nil, "", err
		}
		if err := os.Symlink(crt, pemPath); err != nil {
			return nil, "", err
		}
	}
	// openssl rehash reads every file of the directory, the links just
	// made included; the bundle is not there yet, as update-ca-certificates
	// moves it in after rehashing.
	ents, err := os.ReadDir(certs)
	if err != nil {
		return nil, "", err
	}
	var files []cacerts.File
	for _, e := range ents {
		p := path.Join(certs, e.Name())
		if st, err := os.Stat(p); err != nil || !st.Mode().IsRegular() {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, "", err
		}
		files = append(files, cacerts.File{Name: e.Name(), Data: b})
	}
	links, err := cacerts.HashLinks(files)
	if err != nil {
		return nil, "", fmt.Errorf("openssl rehash: %w", err)
	}
	for _, l := range links {
		p := path.Join(certs, l.Name)
		if err := removeInTheWay(p); err != nil {
			return nil, "", err
		}
		if err := os.Symlink(l.Target, p); err != nil {
			return nil, "", err
		}
	}
	if err := putFile(path.Join(certs, "ca-certificates.crt"), cacerts.Bundle(bundle), 0o644, 0, 0); err != nil {
		return nil, "", err
	}
	return []string{fmt.Sprintf("ca-certificates: %d certificates in /etc/ssl/certs/ca-certificates.crt, %d hash links", len(bundle), len(links))}, "", nil
}

// findCrt is find -L DIR -type f -name '*.crt' | sort.
func findCrt(dir string) ([]string, error) {
	var out []string
	var walk func(d string, depth int) error
	walk = func(d string, depth int) error {
		if depth > 40 {
			return fmt.Errorf("%s: too deep", d)
		}
		ents, err := os.ReadDir(d)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, e := range ents {
			p := path.Join(d, e.Name())
			st, err := os.Stat(p)
			if err != nil {
				continue // a dangling link: find -L reports it, and skips it
			}
			switch {
			case st.IsDir():
				if err := walk(p, depth+1); err != nil {
					return err
				}
			case st.Mode().IsRegular() && strings.HasSuffix(e.Name(), ".crt"):
				out = append(out, p)
			}
		}
		return nil
	}
	if err := walk(dir, 0); err != nil {
		return nil, err
	}
	slices.Sort(out)
	return out, nil
}

func prefixAll(prefix string, ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = prefix + s
	}
	return out
}

// writeAlternatives makes the links and admin files of every group the
// configured packages installed. A generic link that exists and is not a
// symlink is left alone, as update-alternatives does without --force.
func (c *debConfigurer) writeAlternatives(owner map[string]string) ([]string, error) {
	const altdir, admindir = "/etc/alternatives", "/var/lib/dpkg/alternatives"
	names := c.alts.Names()
	if len(names) == 0 {
		return nil, nil
	}
	for _, d := range []string{altdir, admindir} {
		if err := mkdirAll(d, 0o755, 0, 0); err != nil {
			return nil, err
		}
	}
	var effects []string
	existsFollow := func(p string) bool { _, err := os.Stat(p); return err == nil }
	for _, n := range names {
		g := c.alts.Groups[n]
		if !existsFollow(g.Selected) {
			return nil, fmt.Errorf("alternative %s: %s (from %s) is not in the tree", n, g.Selected, owner[n+"\x00"+g.Selected])
		}
		for _, l := range g.Links(altdir, existsFollow) {
			st, err := sdk.Lstat(l.Path)
			switch {
			case err == nil && st.Mode&fs.ModeSymlink == 0:
				warnf("alternatives: not replacing %s with a link", l.Path)
				continue
			case err == nil:
				if err := os.Remove(l.Path); err != nil {
					return nil, fmt.Errorf("alternative %s: %w", n, err)
				}
			case !errors.Is(err, fs.ErrNotExist):
				return nil, fmt.Errorf("alternative %s: %w", n, err)
			}
			if err := os.Symlink(l.Target, l.Path); err != nil {
				return nil, fmt.Errorf("alternative %s: %w", n, err)
			}
		}
		if err := putFile(path.Join(admindir, n), g.AdminFile(), 0o644, 0, 0); err != nil {
			return nil, fmt.Errorf("alternative %s: %w", n, err)
		}
		effects = append(effects, fmt.Sprintf("alternatives: %s -> %s", g.Link, g.Selected))
	}
	return effects, nil
}

// writeDeferred writes the deferred list and, in first-boot mode with
// anything deferred, the unit, its enablement link and its stamp.
func writeDeferred(ds []debDeferred, mode string) ([]string, error) {
	if err := mkdirAll("/var/lib/kiln", 0o755, 0, 0); err != nil {
		return nil, err
	}
	var list []debcfg.Deferred
	for _, d := range ds {
		list = append(list, debcfg.Deferred{Package: d.Package, Reason: d.Reason})
	}
	if err := putFile(debcfg.ListPath, debcfg.DeferredList(list), 0o644, 0, 0); err != nil {
		return nil, err
	}
	if len(ds) == 0 {
		return nil, nil
	}
	effects := []string{fmt.Sprintf("deferred: %d packages not configured, listed in %s", len(ds), debcfg.ListPath)}
	if mode != debConfigureFirstBoot {
		return effects, nil
	}
	for _, d := range []string{path.Dir(debcfg.UnitPath), path.Dir(debcfg.WantsLink)} {
		if err := mkdirAll(d, 0o755, 0, 0); err != nil {
			return nil, err
		}
	}
	if err := putFile(debcfg.UnitPath, []byte(debcfg.Unit), 0o644, 0, 0); err != nil {
		return nil, err
	}
	if err := removeInTheWay(debcfg.WantsLink); err != nil {
		return nil, err
	}
	if err := os.Symlink(debcfg.UnitPath, debcfg.WantsLink); err != nil {
		return nil, err
	}
	if err := putFile(debcfg.Stamp, nil, 0o644, 0, 0); err != nil {
		return nil, err
	}
	return append(effects, "first boot: "+debcfg.UnitName+" runs dpkg --configure -a"), nil
}
