package debrepo

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// realArchive sets up a resolve of bookworm main amd64 against the
// machine's mirror, with indexes cached by sha256 under the test cache and
// the InRelease cached for the day, so reruns are offline. It skips when
// the keyring, the mirror or the network is missing.
func realArchive(t *testing.T) (ArchiveRequest, string, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: no network")
	}
	keyring, err := ReadKeyringFile("/usr/share/keyrings/debian-archive-keyring.gpg")
	if err != nil {
		t.Skipf("no Debian keyring (package debian-archive-keyring): %v", err)
	}
	mirror, err := AptMirror("bookworm")
	if err != nil {
		t.Skip(err)
	}
	u, err := ParseMirror(mirror)
	if err != nil {
		t.Fatal(err)
	}
	cacheRoot, err := os.UserCacheDir()
	if err != nil {
		t.Skip(err)
	}
	cache := filepath.Join(cacheRoot, "kiln-test")
	h := &HTTPFetcher{Mirror: u, Suite: "bookworm", Timeout: 5 * time.Minute}
	day := filepath.Join(cache, "InRelease-bookworm-"+time.Now().UTC().Format("20060102"))
	fetch := func(ctx context.Context, p string) (io.ReadCloser, error) {
		if p != "InRelease" {
			return h.Fetch(ctx, p)
		}
		if b, err := os.ReadFile(day); err == nil {
			return io.NopCloser(bytes.NewReader(b)), nil
		}
		rc, err := h.Fetch(ctx, p)
		if err != nil {
			// The error names the mirror's host; keep it out of the log.
			t.Skip("mirror unreachable")
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		os.MkdirAll(cache, 0o755)
		os.WriteFile(day, b, 0o644)
		return io.NopCloser(bytes.NewReader(b)), nil
	}
	return ArchiveRequest{
		Suite: "bookworm", Components: []string{"main"}, Architecture: "amd64",
		Keyring: keyring, Verify: VerifyOptions{AllowExpired: true},
		Fetch: fetch, Cache: cache,
	}, mirror, cache
}

// TestRealResolveRequiredMatchesDebootstrap resolves bookworm's required
// set plus apt (what debootstrap's minbase variant installs) and compares
// the names with debootstrap --print-debs.
func TestRealResolveRequiredMatchesDebootstrap(t *testing.T) {
	req, mirror, cache := realArchive(t)
	debootstrap, err := exec.LookPath("debootstrap")
	if err != nil {
		t.Skip("needs debootstrap (package debootstrap)")
	}
	req.Required = true
	// debootstrap itself adds usr-is-merged to the required set for
	// bookworm and excludes usrmerge (scripts/debian-common), since it
	// lays out the merged /usr by itself; init-system-helpers' "usrmerge |
	// usr-is-merged" would otherwise take usrmerge, whose postinst
	// converts the tree (and which pulls in perl). Requesting it is what a
	// kiln user does too (docs/debian.md).
	req.Packages = requests(t, "apt", "usr-is-merged")
	l, err := ResolveArchive(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	var kiln []string
	for _, p := range l.Packages {
		kiln = append(kiln, p.Name)
	}
	slices.Sort(kiln)

	// debootstrap's answer depends only on the archive state: cache it by
	// the InRelease it was computed against.
	printed := filepath.Join(cache, "debootstrap-minbase-print-debs-"+l.Source.InRelease.SHA256)
	out, err := os.ReadFile(printed)
	if err != nil {
		target := t.TempDir()
		cmd := exec.Command(debootstrap, "--variant=minbase", "--arch=amd64", "--print-debs", "bookworm", target, mirror)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err = cmd.Output()
		if err != nil {
			t.Skipf("debootstrap --print-debs failed (offline?): %v", errors.Join(err, errors.New(lastLine(stderr.String()))))
		}
		os.WriteFile(printed, out, 0o644)
	}
	deb := strings.Fields(string(out))
	slices.Sort(deb)
	var onlyKiln, onlyDeb []string
	for _, n := range kiln {
		if _, ok := slices.BinarySearch(deb, n); !ok {
			onlyKiln = append(onlyKiln, n)
		}
	}
	for _, n := range deb {
		if _, ok := slices.BinarySearch(kiln, n); !ok {
			onlyDeb = append(onlyDeb, n)
		}
	}
	t.Logf("kiln %d packages, debootstrap %d", len(kiln), len(deb))
	for _, n := range append(slices.Clone(onlyKiln), onlyDeb...) {
		t.Errorf("%s: kiln has it %v, debootstrap has it %v", n, slices.Contains(kiln, n), slices.Contains(deb, n))
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
