package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kilnbuild/kiln/runtime/debrepo"
)

// TestDebianExamples builds examples/debian-container and
// examples/debian-rootfs from their committed locks with their build.sh, as
// the README tells a user to, twice, each time in a fresh default store: the
// outputs must be the same bytes. The container must run under podman and
// print its greeting; the root filesystem must pass dpkg --verify with every
// package installed or unpacked for first boot, and its deferred packages
// must configure with dpkg --configure -a in a chroot.
//
// The .debs come from a local file:// mirror the test lays out from a cache
// of the lock's files by sha256 (~/.cache/kiln-test/debs), filled once from
// the machine's apt mirror, so reruns are offline. A lock whose files the
// mirror no longer has (Debian deletes superseded versions) is stale: the
// test then fails and says how to refresh it.
func TestDebianExamples(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds two Debian images twice")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: podman, chroot and dpkg --root on root-owned trees")
	}
	for _, tool := range []string{"dpkg", "zstd", "tar"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (Debian packages dpkg, zstd, tar)", tool)
		}
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, ex := range []struct {
		name, output string
		check        func(t *testing.T, output string)
	}{
		{"debian-container", "debian-container.oci.tar", checkContainerRuns},
		{"debian-rootfs", "debian-rootfs.tar.zst", checkRootfs},
	} {
		t.Run(ex.name, func(t *testing.T) {
			dir := filepath.Join(root, "examples", ex.name)
			mirror := localMirror(t, filepath.Join(dir, "packages.lock.json"))
			var sums []string
			var last string
			for i := range 2 {
				out := filepath.Join(t.TempDir(), "out")
				cmd := exec.Command(filepath.Join(dir, "build.sh"), out)
				cmd.Env = append(os.Environ(),
					"KILN="+kilnBin,
					"KILN_DEBIAN_MIRROR=file://"+mirror,
					// A fresh default store (~/.cache/kiln) each time.
					"XDG_CACHE_HOME="+t.TempDir())
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				if err := cmd.Run(); err != nil {
					t.Fatalf("build %d: %v\n%s", i+1, err, stderr.String())
				}
				lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
				last = lines[len(lines)-1]
				if want := filepath.Join(out, ex.output); last != want {
					t.Fatalf("build.sh's last line is %q, want the output's path %q", last, want)
				}
				data, err := os.ReadFile(last)
				if err != nil {
					t.Fatal(err)
				}
				sum := sha256.Sum256(data)
				sums = append(sums, hex.EncodeToString(sum[:]))
			}
			if sums[0] != sums[1] {
				t.Errorf("two builds in fresh stores differ: %s and %s", sums[0], sums[1])
			}
			t.Logf("%s: sha256 %s in both fresh stores", ex.output, sums[0])
			ex.check(t, last)
		})
	}
}

// localMirror lays out the lock's .debs under their pool paths in a
// temporary directory, from the sha256 cache, downloading what the cache
// lacks from the machine's apt mirror. It skips when the network and the
// cache both lack a file.
func localMirror(t testing.TB, lockFile string) string {
	t.Helper()
	l, err := debrepo.ReadLock(lockFile)
	if err != nil {
		t.Fatal(err)
	}
	cacheRoot, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(cacheRoot, "kiln-test", "debs")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	var archive string // the apt mirror, found when a file must be fetched
	return layOutMirror(t, l, func(p debrepo.LockedPackage) string {
		cached := filepath.Join(cache, p.SHA256+".deb")
		if _, err := os.Stat(cached); err != nil {
			if archive == "" {
				if archive, err = debrepo.AptMirror(l.Source.Suite); err != nil {
					t.Skipf("%s is not cached and there is no apt mirror to fetch it from: %v", p.Filename, err)
				}
			}
			if err := download(t.Context(), archive+"/"+p.Filename, p, cached); err != nil {
				if errors.Is(err, errGone) {
					t.Fatalf("%s: the mirror no longer has %s (%v): the lock is stale; refresh it with the kiln deb resolve command in %s's build.sh",
						lockFile, p.Filename, err, filepath.Base(filepath.Dir(lockFile)))
				}
				t.Skipf("cannot download %s, and it is not cached: %v", p.Filename, err)
			}
		}
		return cached
	})
}

// layOutMirror makes a temporary file:// mirror of l: each package's pool
// path is a symlink to the file find names for it.
func layOutMirror(t testing.TB, l *debrepo.Lock, find func(debrepo.LockedPackage) string) string {
	t.Helper()
	mirror := t.TempDir()
	for _, p := range l.Packages {
		src := find(p)
		dst := filepath.Join(mirror, filepath.FromSlash(p.Filename))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(src, dst); err != nil {
			t.Fatal(err)
		}
	}
	return mirror
}

var errGone = errors.New("not on the mirror")

// download fetches one locked .deb into the cache, keeping it only when its
// size and sha256 are the lock's.
func download(ctx context.Context, url string, p debrepo.LockedPackage, dst string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return fmt.Errorf("%s: HTTP %s: %w", url, resp.Status, errGone)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("%s: HTTP %s", url, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, p.Size+1))
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	if int64(len(data)) != p.Size || hex.EncodeToString(sum[:]) != p.SHA256 {
		return fmt.Errorf("%s: %d bytes with sha256 %x, the lock says %d and %s", url, len(data), sum, p.Size, p.SHA256)
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// checkContainerRuns loads the OCI archive into podman and runs it. podman
// here needs runc (crun fails on setrlimit) and explicit --ulimit values.
func checkContainerRuns(t *testing.T, archive string) {
	for _, tool := range []string{"podman", "runc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s to run the image (Debian packages podman, runc)", tool)
		}
	}
	const image = "localhost/kiln-debian:12"
	if out, err := exec.Command("podman", "load", "-i", archive).CombinedOutput(); err != nil {
		t.Fatalf("podman load: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("podman", "rmi", "-f", image).Run() })
	out, err := exec.Command("podman", "run", "--rm", "--runtime", "runc",
		"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", image).CombinedOutput()
	if err != nil {
		t.Fatalf("podman run: %v\n%s", err, out)
	}
	for _, want := range []string{`hello from kiln in PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"`, "/etc/ssl/certs/ca-certificates.crt"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the container printed %q, want %q in it", out, want)
		}
	}
}

// checkRootfs unpacks the tarball and checks it with dpkg, then has dpkg
// configure what kiln deferred, in a chroot, as first boot would.
func checkRootfs(t *testing.T, tarball string) {
	tree := t.TempDir()
	if out, err := exec.Command("tar", "--zstd", "--numeric-owner", "-xpf", tarball, "-C", tree).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	if out, err := exec.Command("dpkg", "--root="+tree, "--verify").CombinedOutput(); err != nil || len(out) != 0 {
		t.Errorf("dpkg --verify: %v\n%s", err, out)
	}
	status := func() map[string]int {
		out, err := exec.Command("dpkg-query", "--admindir="+filepath.Join(tree, "var/lib/dpkg"), "-W", "-f", "${Status}\n").Output()
		if err != nil {
			t.Fatalf("dpkg-query: %v", err)
		}
		counts := map[string]int{}
		for _, s := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			counts[s]++
		}
		return counts
	}
	before := status()
	deferred, err := os.ReadFile(filepath.Join(tree, "var/lib/kiln/deferred-configure"))
	if err != nil {
		t.Fatal(err)
	}
	nDeferred := strings.Count(string(deferred), "\n")
	if before["install ok unpacked"] != nDeferred || len(before) > 2 {
		t.Errorf("status counts %v; want only installed and unpacked, unpacked = the %d deferred packages", before, nDeferred)
	}
	if _, err := os.Lstat(filepath.Join(tree, "etc/systemd/system/multi-user.target.wants/kiln-dpkg-configure.service")); err != nil {
		// The unit's WantedBy decides the directory; any enable link will do.
		links, _ := filepath.Glob(filepath.Join(tree, "etc/systemd/system/*.wants/kiln-dpkg-configure.service"))
		if len(links) == 0 {
			t.Errorf("kiln-dpkg-configure.service is not enabled: %v", err)
		}
	}
	cmd := exec.Command("chroot", tree, "/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "dpkg", "--configure", "-a")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dpkg --configure -a in the tree: %v\n%s", err, out)
	}
	if after := status(); after["install ok installed"] != before["install ok installed"]+before["install ok unpacked"] {
		t.Errorf("after dpkg --configure -a: %v, want every package installed", after)
	}
	t.Logf("%d packages, %d deferred to first boot; dpkg --configure -a configured them", before["install ok installed"]+nDeferred, nDeferred)
}
