package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kilnbuild/kiln/runtime/debrepo"
)

// BenchmarkDebInstall times installing examples/debian-rootfs's locked set
// (Priority: required + systemd, about 100 packages) three ways in one run:
//
//   - kiln/dpkg-x: a kiln build whose kiln.deb stage installs the set, with
//     its sources already in the store (a new SOURCE_DATE_EPOCH per run makes
//     the stage run again), against `dpkg -x` of the same .debs, one after
//     another, which unpacks and writes no database;
//   - kiln/debootstrap: the same build against `debootstrap --foreign
//     --variant=minbase --include=systemd,systemd-sysv` (unpacks without
//     running scripts), its .debs served from a local cache (--cache-dir), the
//     archive's indexes still read from the apt mirror.
//
// The debootstrap figure is left out, with a note, when debootstrap or the
// mirror is missing.
func BenchmarkDebInstall(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: dpkg -x and debootstrap make root-owned trees")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		b.Fatal(err)
	}
	lockFile := filepath.Join(root, "examples", "debian-rootfs", "packages.lock.json")
	l, err := debrepo.ReadLock(lockFile)
	if err != nil {
		b.Fatal(err)
	}
	mirror := localMirror(b, lockFile)
	template := filepath.Join(b.TempDir(), "deb.json.in")
	if err := os.WriteFile(template, []byte(`{"pipeline": {"stages": [
	  {"name": "org.osbuild.mkdir", "options": {"paths": [{"path": "/usr/bin", "parents": true}, {"path": "/usr/sbin"}, {"path": "/usr/lib"}, {"path": "/usr/lib64"}]}},
	  {"name": "org.osbuild.ln", "options": {"paths": [{"target": "usr/bin", "link_name": "/bin", "symbolic": true}, {"target": "usr/sbin", "link_name": "/sbin", "symbolic": true}, {"target": "usr/lib", "link_name": "/lib", "symbolic": true}, {"target": "usr/lib64", "link_name": "/lib64", "symbolic": true}]}},
	  {"name": "kiln.deb", "options": {}}]}}`), 0o644); err != nil {
		b.Fatal(err)
	}
	manifest := filepath.Join(b.TempDir(), "deb.json")
	if out, err := exec.Command(kilnBin, "deb", "manifest", "--lock", lockFile, "--mirror", "file://"+mirror, "-o", manifest, template).CombinedOutput(); err != nil {
		b.Fatalf("kiln deb manifest: %v\n%s", err, out)
	}
	store := filepath.Join(b.TempDir(), "store")
	build := func(epoch int) time.Duration {
		start := time.Now()
		out, err := exec.Command(kilnBin, "build", "--store", store, "--source-date-epoch", fmt.Sprint(epoch), manifest).CombinedOutput()
		if err != nil {
			b.Fatalf("kiln build: %v\n%s", err, out)
		}
		return time.Since(start)
	}
	build(1) // fetches the sources and compiles the stage module once

	var debs []string
	for _, p := range l.Packages {
		debs = append(debs, filepath.Join(mirror, filepath.FromSlash(p.Filename)))
	}
	dpkgX := func() time.Duration {
		dir := b.TempDir()
		start := time.Now()
		for _, deb := range debs {
			if out, err := exec.Command("dpkg", "-x", deb, dir).CombinedOutput(); err != nil {
				b.Fatalf("dpkg -x %s: %v\n%s", deb, err, out)
			}
		}
		return time.Since(start)
	}

	var debootstrap func() time.Duration
	archive, aptErr := debrepo.AptMirror(l.Source.Suite)
	if _, err := exec.LookPath("debootstrap"); err != nil || aptErr != nil {
		b.Logf("no debootstrap figure: debootstrap %v, apt mirror %v", err, aptErr)
	} else {
		cache := b.TempDir()
		for i, p := range l.Packages {
			// debootstrap's cache names a .deb as its pool file is named.
			if err := os.Symlink(debs[i], filepath.Join(cache, filepath.Base(p.Filename))); err != nil {
				b.Fatal(err)
			}
		}
		debootstrap = func() time.Duration {
			dir := filepath.Join(b.TempDir(), "target")
			start := time.Now()
			out, err := exec.Command("debootstrap", "--foreign", "--variant=minbase", "--include=systemd,systemd-sysv",
				"--cache-dir="+cache, l.Source.Suite, dir, archive).CombinedOutput()
			if err != nil {
				b.Fatalf("debootstrap: %v\n%s", err, lastLines(string(out), 20))
			}
			return time.Since(start)
		}
	}

	var kilnT, dpkgT, dbsT time.Duration
	b.ResetTimer()
	for i := range b.N {
		kilnT += build(2 + i)
		dpkgT += dpkgX()
		if debootstrap != nil {
			dbsT += debootstrap()
		}
	}
	b.StopTimer()
	n := time.Duration(b.N)
	b.ReportMetric((kilnT / n).Seconds(), "kiln-deb-s")
	b.ReportMetric((dpkgT / n).Seconds(), "dpkg-x-s")
	b.ReportMetric(kilnT.Seconds()/dpkgT.Seconds(), "kiln/dpkg-x")
	if debootstrap != nil {
		b.ReportMetric((dbsT / n).Seconds(), "debootstrap-foreign-s")
		b.ReportMetric(kilnT.Seconds()/dbsT.Seconds(), "kiln/debootstrap")
	}
	b.Logf("%d packages: kiln build %v, dpkg -x loop %v, debootstrap --foreign %v (per run)", len(debs), kilnT/n, dpkgT/n, dbsT/n)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
