package library

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kilnbuild/kiln/runtime/engine"
	"golang.org/x/sys/unix"
)

// A testDeb is a package the test builds with dpkg-deb --build.
type testDeb struct {
	name, version string
	arch          string // amd64 when empty
	fields        string // more control lines ("Pre-Depends: a\n")
	comp          string // -Z: gzip, xz, zstd, none (xz when empty)
	files         []testFile
	conffiles     []string
	scripts       map[string]string
	md5sums       bool // ship an md5sums member as dh_md5sums does (conffiles left out)
}

type testFile struct {
	path     string // relative, "usr/bin/x"
	kind     string // "dir", "file", "symlink", "hardlink"
	mode     os.FileMode
	uid, gid int
	data     string // content, or link target
}

func dir(p string, mode os.FileMode) testFile { return testFile{path: p, kind: "dir", mode: mode} }
func file(p, data string) testFile            { return testFile{path: p, kind: "file", mode: 0o644, data: data} }
func link(p, target string) testFile          { return testFile{path: p, kind: "symlink", data: target} }

func (d testDeb) option(sum string) map[string]string {
	arch := d.arch
	if arch == "" {
		arch = "amd64"
	}
	return map[string]string{"name": d.name, "version": d.version, "architecture": arch, "source": sum}
}

// build makes the .deb under dir and returns its path.
func (d testDeb) build(t *testing.T, dir string) string {
	t.Helper()
	root := filepath.Join(dir, d.name+"_"+strings.ReplaceAll(d.version, ":", "%3a"))
	deb := root + ".deb"
	if err := os.MkdirAll(filepath.Join(root, "DEBIAN"), 0o755); err != nil {
		t.Fatal(err)
	}
	arch := d.arch
	if arch == "" {
		arch = "amd64"
	}
	control := fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: %s\nMaintainer: Kiln Tests <tests@kiln.invalid>\nInstalled-Size: 1\n%sSection: misc\nPriority: optional\nDescription: test package %s\n built by deb_test.go\n .\n second paragraph\n", d.name, d.version, arch, d.fields, d.name)
	write := func(p, s string, mode os.FileMode) {
		if err := os.WriteFile(p, []byte(s), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(root, "DEBIAN", "control"), control, 0o644)
	if len(d.conffiles) > 0 {
		write(filepath.Join(root, "DEBIAN", "conffiles"), strings.Join(d.conffiles, "\n")+"\n", 0o644)
	}
	for name, s := range d.scripts {
		write(filepath.Join(root, "DEBIAN", name), s, 0o755)
	}
	var sums strings.Builder
	for _, f := range d.files {
		p := filepath.Join(root, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		switch f.kind {
		case "dir":
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case "file":
			write(p, f.data, 0o644)
			if d.md5sums && !slices.Contains(d.conffiles, "/"+f.path) {
				fmt.Fprintf(&sums, "%x  %s\n", md5sum(f.data), f.path)
			}
		case "symlink":
			if err := os.Symlink(f.data, p); err != nil {
				t.Fatal(err)
			}
		case "hardlink":
			if err := os.Link(filepath.Join(root, f.data), p); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Lchown(p, f.uid, f.gid); err != nil {
			t.Fatal(err)
		}
		if f.kind == "dir" || f.kind == "file" {
			if err := os.Chmod(p, f.mode); err != nil {
				t.Fatal(err)
			}
		}
	}
	if d.md5sums {
		write(filepath.Join(root, "DEBIAN", "md5sums"), sums.String(), 0o644)
	}
	comp := d.comp
	if comp == "" {
		comp = "xz"
	}
	if out, err := exec.Command("dpkg-deb", "-Z"+comp, "--build", root, deb).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb --build %s: %v\n%s", d.name, err, out)
	}
	return deb
}

// debSetup is what the kiln.deb tests share: the built library, an engine
// and the tools.
type debSetup struct {
	st   ModuleStage
	e    *engine.Engine
	last time.Duration // how long the last install's stage ran
}

func newDebSetup(t *testing.T) *debSetup {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root: the test packages hold files of several owners")
	}
	for _, tool := range []string{"dpkg-deb", "dpkg", "dpkg-query"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (package dpkg): %v", tool, err)
		}
	}
	stages, _ := builtLibrary(t)
	st, ok := stages["kiln.deb"]
	if !ok {
		t.Fatal("the library has no kiln.deb")
	}
	return &debSetup{st: st, e: newEngine(t)}
}

// install runs kiln.deb on tree with the .debs as sources, in the unpack
// mode unless extra (the options besides "packages") says otherwise.
func (s *debSetup) install(t *testing.T, tree string, debs []string, opts []map[string]string, extra map[string]any) (string, error) {
	t.Helper()
	sources := filepath.Join(t.TempDir(), "sources")
	files := filepath.Join(sources, "org.osbuild.files")
	if err := os.MkdirAll(files, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, deb := range debs {
		data, err := os.ReadFile(deb)
		if err != nil {
			t.Fatal(err)
		}
		sum := fmt.Sprintf("sha256:%x", sha256.Sum256(data))
		if opts[i]["source"] == "" {
			opts[i]["source"] = sum
		}
		if err := os.WriteFile(filepath.Join(files, sum), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The tests compare kiln.deb with dpkg --unpack and debootstrap
	// --foreign, which run no script: so does the unpack mode.
	o := map[string]any{"packages": opts, "configure": "unpack"}
	for k, v := range extra {
		o[k] = v
	}
	raw, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate(s.st, raw); err != nil {
		return "", err
	}
	res, err := s.e.Run(context.Background(), engine.Invocation{
		Name: s.st.Name, ID: strings.Repeat("cd", 32), Module: engine.NewModule(s.st.Module),
		Options: raw, Tree: tree, Sources: sources, Epoch: goldenEpoch,
	})
	s.last = res.Duration
	if err != nil {
		return string(res.Log), fmt.Errorf("%w\nlog:\n%s", err, res.Log)
	}
	return string(res.Log), nil
}

// dpkgReference installs the .debs with dpkg itself into a fresh root.
// configure, if not empty, are packages to configure after unpacking.
func dpkgReference(t *testing.T, action string, filters, configure []string, batches ...[]string) string {
	t.Helper()
	ref := t.TempDir()
	if err := os.MkdirAll(filepath.Join(ref, "var/lib/dpkg"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ref, "var/lib/dpkg/status"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, debs := range batches {
		args := append([]string{"--root=" + ref, "--force-depends", "--force-script-chrootless"}, filters...)
		args = append(append(args, action), debs...)
		if out, err := exec.Command("dpkg", args...).CombinedOutput(); err != nil {
			t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if len(configure) > 0 {
		args := append([]string{"--root=" + ref, "--force-depends", "--configure"}, configure...)
		if out, err := exec.Command("dpkg", args...).CombinedOutput(); err != nil {
			t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return ref
}

// dpkgOnly are the files of dpkg's own locking and bookkeeping that a
// kiln tree lacks, and kiln's additions dpkg makes on demand.
var dpkgOnly = []string{
	"/var/lib/dpkg/lock", "/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/status-old",
	"/var/lib/dpkg/triggers/Lock", "/var/lib/dpkg/available", "/var/lib/dpkg/alternatives",
}

func describeDeb(t *testing.T, root string) map[string]string {
	t.Helper()
	d, err := describeTree(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range dpkgOnly {
		delete(d, p)
	}
	return d
}

// checkDpkgAgrees runs dpkg's own checks on tree: --verify prints nothing,
// --audit and dpkg-query print what they print for the reference.
func checkDpkgAgrees(t *testing.T, tree, ref string) {
	t.Helper()
	run := func(args ...string) string {
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			t.Errorf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out := run("dpkg", "--root="+tree, "--verify"); out != "" {
		t.Errorf("dpkg --verify on the kiln tree:\n%s", out)
	}
	query := func(root string) string {
		return run("dpkg-query", "--admindir="+filepath.Join(root, "var/lib/dpkg"), "-W", "-f=${Package} ${Version} ${Architecture} ${Status} ${Conffiles}\n")
	}
	if got, want := query(tree), query(ref); got != want {
		t.Errorf("dpkg-query -W on kiln's tree:\n%s\non dpkg's:\n%s", got, want)
	}
	if got, want := run("dpkg", "--root="+tree, "--audit"), run("dpkg", "--root="+ref, "--audit"); got != want {
		t.Errorf("dpkg --audit on kiln's tree:\n%s\non dpkg's:\n%s", got, want)
	}
}

func compareTrees(t *testing.T, tree, ref string) {
	t.Helper()
	if diff := diffTrees(describeDeb(t, ref), describeDeb(t, tree)); diff != "" {
		t.Errorf("kiln's tree differs from dpkg's (- dpkg only, + kiln only, ~ kiln's differs):\n%s", diff)
	}
	got, _ := os.ReadFile(filepath.Join(tree, "var/lib/dpkg/status"))
	want, _ := os.ReadFile(filepath.Join(ref, "var/lib/dpkg/status"))
	if !bytes.Equal(got, want) {
		t.Errorf("status:\n%s\ndpkg's:\n%s", got, want)
	}
}

func md5sum(s string) [16]byte { return md5.Sum([]byte(s)) }

func setXattr(p, name, value string) error { return unix.Lsetxattr(p, name, []byte(value), 0) }

// TestDebLikeDpkg builds packages with dpkg-deb, installs them with
// kiln.deb and with dpkg itself (--install: unpack and configure, since
// kiln counts packages without maintainer scripts as configured, or
// --unpack for packages with scripts) and wants the same tree, the same
// status byte for byte, and dpkg's checks clean on kiln's tree.
func TestDebLikeDpkg(t *testing.T) {
	s := newDebSetup(t)
	owned := testFile{path: "srv/owned", kind: "file", mode: 0o640, uid: 1000, gid: 1001, data: "mine\n"}
	suid := testFile{path: "usr/bin/su-like", kind: "file", mode: 0o4755, data: "#!/bin/true\n"}
	sgidDir := testFile{path: "var/mail", kind: "dir", mode: 0o2775, gid: 8}
	base := testDeb{name: "kiln-base", version: "1:2.0-1", md5sums: true,
		fields:    "Multi-Arch: foreign\nProvides: kiln-virtual (= 3)\nDepends: libc6 (>=2.36), kiln-x|kiln-y (<<4)\nHomepage: https://kiln.invalid/\n",
		conffiles: []string{"/etc/kiln/base.conf"},
		files: []testFile{dir("etc", 0o755), dir("etc/kiln", 0o755), file("etc/kiln/base.conf", "key=value\n"),
			dir("usr", 0o755), dir("usr/bin", 0o755), file("usr/bin/kiln-a", "a\n"), suid,
			{path: "usr/bin/kiln-b", kind: "hardlink", data: "usr/bin/kiln-a"},
			link("usr/bin/kiln-rel", "kiln-a"), link("usr/bin/kiln-abs", "/usr/bin/kiln-a"),
			dir("srv", 0o755), owned, dir("var", 0o755), sgidDir, dir("usr/share", 0o755), dir("usr/share/doc", 0o755),
			dir("usr/share/doc/kiln-base", 0o755), file("usr/share/doc/kiln-base/copyright", "c\n"), file("usr/share/doc/kiln-base/README", "r\n")}}
	// Shares /usr/bin with another mode: the first package's stays.
	second := testDeb{name: "kiln-second", version: "0.1", arch: "all", comp: "gzip",
		fields: "Pre-Depends: kiln-base (>= 1:1), kiln-virtual (>= 2)\nEssential: yes\n",
		files:  []testFile{dir("usr", 0o755), dir("usr/bin", 0o700), file("usr/bin/kiln-c", "c\n")}}
	same := testDeb{name: "libkiln1", version: "3-1", comp: "zstd", fields: "Multi-Arch: same\n",
		files: []testFile{dir("usr", 0o755), dir("usr/lib", 0o755), file("usr/lib/libkiln.so.1", "elf\n")}}
	plain := testDeb{name: "kiln-plain", version: "1", comp: "none", files: []testFile{dir("opt", 0o755), file("opt/p", "p\n")}}
	scripted := testDeb{name: "kiln-scripted", version: "1", scripts: map[string]string{"postinst": "#!/bin/sh\nexit 0\n", "prerm": "#!/bin/sh\nexit 0\n"},
		files: []testFile{dir("opt", 0o755), file("opt/s", "s\n")}}
	// Another version of kiln-plain: /opt/p goes, /opt/q comes.
	plain2 := testDeb{name: "kiln-plain", version: "2", files: []testFile{dir("opt", 0o755), file("opt/q", "q\n")}}
	takeOver := testDeb{name: "kiln-takeover", version: "2", fields: "Replaces: kiln-base (<< 1:3)\n",
		files: []testFile{dir("usr", 0o755), dir("usr/bin", 0o755), file("usr/bin/kiln-a", "new a\n")}}

	for _, tc := range []struct {
		name   string
		debs   [][]testDeb // one kiln.deb stage (and dpkg run) each
		action string
		// configure: dpkg configures these after --unpack, as kiln does
		// the packages without maintainer scripts.
		configure []string
	}{
		{"owners, modes, links, conffiles, md5sums, Multi-Arch, each compression", [][]testDeb{{base, second, same, plain}}, "--install", nil},
		{"maintainer scripts leave the package unpacked", [][]testDeb{{plain, scripted}}, "--unpack", []string{"kiln-plain"}},
		{"Replaces moves the file", [][]testDeb{{base, takeOver}}, "--install", nil},
		{"a second stage adds packages and takes files over", [][]testDeb{{base}, {takeOver, plain}}, "--install", nil},
		{"a second stage installs another version", [][]testDeb{{plain}, {plain2}}, "--install", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tree := t.TempDir()
			var batches [][]string
			for _, stage := range tc.debs {
				var debs []string
				var opts []map[string]string
				for _, d := range stage {
					debs = append(debs, d.build(t, dir))
					opts = append(opts, d.option(""))
				}
				if log, err := s.install(t, tree, debs, opts, nil); err != nil {
					t.Fatal(err)
				} else {
					t.Logf("kiln.deb log:\n%s", log)
				}
				batches = append(batches, debs)
			}
			ref := dpkgReference(t, tc.action, nil, tc.configure, batches...)
			compareTrees(t, tree, ref)
			checkDpkgAgrees(t, tree, ref)
		})
	}
}

// TestDebErrors: what kiln.deb refuses, and that the error names what is
// at fault.
func TestDebErrors(t *testing.T) {
	s := newDebSetup(t)
	a := testDeb{name: "kiln-a", version: "1.0", files: []testFile{dir("usr", 0o755), dir("usr/bin", 0o755), file("usr/bin/tool", "a\n")}}
	b := testDeb{name: "kiln-b", version: "2.0", files: []testFile{dir("usr", 0o755), dir("usr/bin", 0o755), file("usr/bin/tool", "b\n")}}
	bOldReplaces := b
	bOldReplaces.fields = "Replaces: kiln-a (<< 1.0)\n"
	pre := testDeb{name: "kiln-pre", version: "1", fields: "Pre-Depends: kiln-a (>= 1.1) | kiln-c\n", files: []testFile{dir("opt", 0o755)}}
	for _, tc := range []struct {
		name   string
		debs   []testDeb
		mangle func(opts []map[string]string)
		want   []string
	}{
		{"file conflict", []testDeb{a, b}, nil, []string{`packages[1]`, "/usr/bin/tool is in kiln-a 1.0 and in kiln-b 2.0", "does not Replace kiln-a"}},
		{"Replaces of an older version only", []testDeb{a, bOldReplaces}, nil, []string{"/usr/bin/tool is in kiln-a 1.0 and in kiln-b 2.0"}},
		{"Pre-Depends after", []testDeb{pre, a}, nil, []string{`packages[0]`, "kiln-pre Pre-Depends on kiln-a (>= 1.1) | kiln-c"}},
		{"Pre-Depends too old", []testDeb{a, pre}, nil, []string{`packages[1]`, "kiln-a (>= 1.1) | kiln-c", "there is kiln-a 1.0"}},
		{"control mismatch", []testDeb{a}, func(o []map[string]string) { o[0]["version"] = "1.1" }, []string{`packages[0]`, "kiln-a", `Version: "1.0", the option "1.1"`}},
		{"architecture mismatch", []testDeb{a}, func(o []map[string]string) { o[0]["architecture"] = "arm64" }, []string{`Architecture: "amd64", the option "arm64"`}},
		{"name outside the schema", []testDeb{a}, func(o []map[string]string) { o[0]["name"] = "../etc" }, []string{"schema", "name"}},
		{"unknown source", []testDeb{a}, func(o []map[string]string) { o[0]["source"] = "sha256:" + strings.Repeat("0", 64) }, []string{"not among the manifest's"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var debs []string
			var opts []map[string]string
			for _, d := range tc.debs {
				debs = append(debs, d.build(t, dir))
				opts = append(opts, d.option(""))
			}
			if tc.mangle != nil {
				// The sources are named by the built .debs' sums first.
				for i, deb := range debs {
					data, _ := os.ReadFile(deb)
					opts[i]["source"] = fmt.Sprintf("sha256:%x", sha256.Sum256(data))
				}
				tc.mangle(opts)
			}
			_, err := s.install(t, t.TempDir(), debs, opts, nil)
			if err == nil {
				t.Fatal("kiln.deb succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestDebPathFilters: exclude and include act as dpkg's --path-exclude
// and --path-include, except that kiln leaves filtered files out of the
// .list and .md5sums (dpkg 1.21 lists them, so its --verify calls them
// missing); everything else matches dpkg's tree.
func TestDebPathFilters(t *testing.T) {
	s := newDebSetup(t)
	d := testDeb{name: "kiln-docs", version: "1", md5sums: true, files: []testFile{
		dir("usr", 0o755), dir("usr/bin", 0o755), file("usr/bin/x", "x\n"),
		dir("usr/share", 0o755), dir("usr/share/doc", 0o755), dir("usr/share/doc/kiln-docs", 0o755),
		file("usr/share/doc/kiln-docs/copyright", "c\n"), file("usr/share/doc/kiln-docs/changelog.gz", "z\n"),
		dir("usr/share/man", 0o755), dir("usr/share/man/man1", 0o755), file("usr/share/man/man1/x.1", "m\n"),
	}}
	exclude := []string{"/usr/share/doc/*", "/usr/share/man/*"}
	include := []string{"/usr/share/doc/*/copyright"}
	dir := t.TempDir()
	deb := d.build(t, dir)
	tree := t.TempDir()
	if _, err := s.install(t, tree, []string{deb}, []map[string]string{d.option("")}, map[string]any{"exclude": exclude, "include": include}); err != nil {
		t.Fatal(err)
	}
	ref := dpkgReference(t, "--install", []string{"--path-exclude=" + exclude[0], "--path-exclude=" + exclude[1], "--path-include=" + include[0]}, nil, []string{deb})
	got, want := describeDeb(t, tree), describeDeb(t, ref)
	for _, m := range []map[string]string{got, want} {
		delete(m, "/var/lib/dpkg/info/kiln-docs.list")
		delete(m, "/var/lib/dpkg/info/kiln-docs.md5sums")
	}
	if diff := diffTrees(want, got); diff != "" {
		t.Errorf("kiln's tree differs from dpkg's:\n%s", diff)
	}
	list, _ := os.ReadFile(filepath.Join(tree, "var/lib/dpkg/info/kiln-docs.list"))
	wantList := "/.\n/usr\n/usr/bin\n/usr/bin/x\n/usr/share\n/usr/share/doc\n/usr/share/doc/kiln-docs\n/usr/share/doc/kiln-docs/copyright\n/usr/share/man\n"
	if string(list) != wantList {
		t.Errorf(".list:\n%s\nwant:\n%s", list, wantList)
	}
	sums, _ := os.ReadFile(filepath.Join(tree, "var/lib/dpkg/info/kiln-docs.md5sums"))
	if wantSums := fmt.Sprintf("%x  usr/bin/x\n%x  usr/share/doc/kiln-docs/copyright\n", md5sum("x\n"), md5sum("c\n")); string(sums) != wantSums {
		t.Errorf(".md5sums:\n%s\nwant:\n%s", sums, wantSums)
	}
	if out, err := exec.Command("dpkg", "--root="+tree, "--verify").CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("dpkg --verify: %v\n%s", err, out)
	}
}

// TestDebXattrs: dpkg-deb does not archive extended attributes, so this
// package's data.tar is written here, with a PAX SCHILY.xattr record as
// GNU tar --xattrs writes it.
func TestDebXattrs(t *testing.T) {
	s := newDebSetup(t)
	probe := filepath.Join(t.TempDir(), "probe")
	if err := os.WriteFile(probe, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := setXattr(probe, "user.kiln", "x"); err != nil {
		t.Skipf("the test file system takes no user xattrs: %v", err)
	}
	var data bytes.Buffer
	tw := tar.NewWriter(&data)
	mtime := time.Unix(1700000000, 0)
	for _, h := range []*tar.Header{
		{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime},
		{Name: "./usr/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime},
		{Name: "./usr/bin/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime},
		{Name: "./usr/bin/ping", Typeflag: tar.TypeReg, Mode: 0o755, Size: 5, ModTime: mtime, Format: tar.FormatPAX,
			PAXRecords: map[string]string{"SCHILY.xattr.user.kiln": "cap-like value"}},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte("ping\n"))
		}
	}
	tw.Close()
	control := "Package: kiln-xattr\nVersion: 1\nArchitecture: amd64\nMaintainer: Kiln Tests <tests@kiln.invalid>\nDescription: xattrs\n"
	var ctl bytes.Buffer
	cw := tar.NewWriter(&ctl)
	cw.WriteHeader(&tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime})
	cw.WriteHeader(&tar.Header{Name: "./control", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(control)), ModTime: mtime})
	cw.Write([]byte(control))
	cw.Close()
	deb := filepath.Join(t.TempDir(), "kiln-xattr.deb")
	if err := os.WriteFile(deb, arArchive([]string{"debian-binary", "control.tar", "data.tar"},
		[][]byte{[]byte("2.0\n"), ctl.Bytes(), data.Bytes()}), 0o644); err != nil {
		t.Fatal(err)
	}
	tree := t.TempDir()
	if _, err := s.install(t, tree, []string{deb}, []map[string]string{{"name": "kiln-xattr", "version": "1", "architecture": "amd64"}}, nil); err != nil {
		t.Fatal(err)
	}
	d := describeDeb(t, tree)
	if got := d["/usr/bin/ping"]; !strings.Contains(got, `xattr:user.kiln="cap-like value"`) {
		t.Errorf("/usr/bin/ping: %s", got)
	}
	if out, err := exec.Command("dpkg", "--root="+tree, "--verify").CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("dpkg --verify: %v\n%s", err, out)
	}
	if _, err := exec.Command("dpkg-deb", "--fsys-tarfile", deb).Output(); err != nil {
		t.Errorf("dpkg-deb does not read the test's .deb: %v", err)
	}
}

// arArchive writes an ar archive as dpkg-deb does.
func arArchive(names []string, data [][]byte) []byte {
	var b bytes.Buffer
	b.WriteString("!<arch>\n")
	for i, n := range names {
		fmt.Fprintf(&b, "%-16s%-12d%-6d%-6d%-8s%-10d`\n", n, 0, 0, 0, "100644", len(data[i]))
		b.Write(data[i])
		if len(data[i])%2 == 1 {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// TestDebReproducible: two installs of the same packages into fresh trees
// give the same tree, mtimes included (the archive's, and the epoch for
// what kiln writes).
func TestDebReproducible(t *testing.T) {
	s := newDebSetup(t)
	d := testDeb{name: "kiln-repro", version: "1", conffiles: []string{"/etc/r.conf"}, scripts: map[string]string{"postinst": "#!/bin/sh\n"},
		files: []testFile{dir("etc", 0o755), file("etc/r.conf", "r\n"), dir("usr", 0o755), dir("usr/bin", 0o755), file("usr/bin/r", "r\n"), link("usr/bin/rr", "/usr/bin/r")}}
	deb := d.build(t, t.TempDir())
	var trees []map[string]string
	for range 2 {
		tree := t.TempDir()
		if _, err := s.install(t, tree, []string{deb}, []map[string]string{d.option("")}, nil); err != nil {
			t.Fatal(err)
		}
		desc := describeDeb(t, tree)
		for p := range desc {
			fi, err := os.Lstat(filepath.Join(tree, p))
			if err != nil {
				t.Fatal(err)
			}
			desc[p] += " mtime=" + fi.ModTime().UTC().Format(time.RFC3339Nano)
		}
		trees = append(trees, desc)
	}
	if diff := diffTrees(trees[0], trees[1]); diff != "" {
		t.Errorf("second install differs:\n%s", diff)
	}
	if got := trees[0]["/var/lib/dpkg/status"]; !strings.Contains(got, "mtime="+time.Unix(goldenEpoch, 0).UTC().Format(time.RFC3339Nano)) {
		t.Errorf("status not stamped with SOURCE_DATE_EPOCH: %s", got)
	}
}
