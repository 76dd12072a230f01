package debrepo

import (
	"context"
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
)

func TestAptMirrorFormats(t *testing.T) {
	dir := t.TempDir()
	one := filepath.Join(dir, "a.list")
	os.WriteFile(one, []byte("# deb http://wrong.invalid/debian bookworm main\ndeb-src http://src.invalid/debian bookworm main\n"+
		"deb [arch=amd64 signed-by=/k.gpg] http://one.invalid/debian/ bookworm main\n"), 0o644)
	if got, err := mirrorFromOneLine(one, "bookworm"); err != nil || got != "http://one.invalid/debian" {
		t.Errorf("one-line: %q %v", got, err)
	}
	src := filepath.Join(dir, "a.sources")
	os.WriteFile(src, []byte("Types: deb\n# URIs: http://comment.invalid/\nURIs: http://sec.invalid/debian-security\nSuites: bookworm-security\n\n"+
		"Types: deb-src deb\nURIs: https://tls.invalid/debian http://two.invalid/debian/\nSuites: bookworm bookworm-updates\nComponents: main\n"), 0o644)
	if got, err := mirrorFromDeb822(src, "bookworm"); err != nil || got != "http://two.invalid/debian" {
		t.Errorf("deb822: %q %v", got, err)
	}
}

// httpFetcher fetches dists/<suite>/<path> and caches files by the sha256
// the Release lists (under os.UserCacheDir()/kiln-test), so reruns read the
// cache and never the network. A cached file is only a hint: FetchVerified
// checks it like a download.
type httpFetcher struct {
	base  string // mirror + "/dists/" + suite
	cache string
	rel   *Release
}

var errOffline = errors.New("mirror unreachable")

func httpGet(ctx context.Context, url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		// The error text names the host; keep it out of test logs.
		return nil, errOffline
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, ErrNotFound
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP status %d", resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 512<<20))
	if err != nil {
		return nil, errOffline
	}
	return b, nil
}

func (h *httpFetcher) fetch(ctx context.Context, path string) (io.ReadCloser, error) {
	want, listed := h.rel.SHA256[path]
	cached := filepath.Join(h.cache, "sha256", want.SHA256)
	if listed {
		if f, err := os.Open(cached); err == nil {
			return f, nil
		}
	}
	b, err := httpGet(ctx, h.base+"/"+path)
	if err != nil {
		return nil, err
	}
	if listed && checkFile(path, b, want) == nil {
		os.MkdirAll(filepath.Dir(cached), 0o755)
		os.WriteFile(cached, b, 0o644)
	}
	return io.NopCloser(strings.NewReader(string(b))), nil
}

// TestRealArchiveBookworm verifies the mirror's bookworm InRelease with
// Debian's archive keyring, then main/binary-amd64/Packages.xz against it, and
// parses the index. Skipped when the mirror is unreachable.
func TestRealArchiveBookworm(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no network")
	}
	const keyringFile = "/usr/share/keyrings/debian-archive-keyring.gpg"
	keyring, err := ReadKeyringFile(keyringFile)
	if err != nil {
		t.Skipf("no Debian keyring: %v", err)
	}
	mirror, err := AptMirror("bookworm")
	if err != nil {
		t.Skip(err)
	}
	cacheRoot, err := os.UserCacheDir()
	if err != nil {
		t.Skip(err)
	}
	cache := filepath.Join(cacheRoot, "kiln-test")
	base := mirror + "/dists/bookworm"
	ctx := context.Background()

	// InRelease changes when the archive does; cache it for the day so
	// reruns the same day are offline, and refetch otherwise.
	inrelCache := filepath.Join(cache, "InRelease-bookworm-"+time.Now().UTC().Format("20060102"))
	data, err := os.ReadFile(inrelCache)
	if err != nil {
		data, err = httpGet(ctx, base+"/InRelease")
		if errors.Is(err, errOffline) {
			t.Skip("mirror unreachable")
		}
		if err != nil {
			t.Fatalf("InRelease: %v", err)
		}
		os.MkdirAll(cache, 0o755)
		os.WriteFile(inrelCache, data, 0o644)
	}
	v, err := VerifyInRelease(data, keyring, VerifyOptions{})
	if errors.Is(err, ErrReleaseExpired) {
		// The machine's mirror may be a snapshot, whose Release is old by
		// design; say so and go on.
		t.Logf("InRelease: %v; retrying with AllowExpired", err)
		v, err = VerifyInRelease(data, keyring, VerifyOptions{AllowExpired: true})
	}
	if err != nil {
		t.Fatalf("InRelease: %v", err)
	}
	if v.Release.Codename != "bookworm" {
		t.Fatalf("Codename %q", v.Release.Codename)
	}
	t.Logf("InRelease of %s signed by %s, %d files listed", v.Release.Date.Format(time.RFC3339), v.Signer, len(v.Release.SHA256))

	hf := &httpFetcher{base: base, cache: cache, rel: v.Release}
	pkgs, err := FetchPackages(ctx, v.Release, hf.fetch, "main", "amd64")
	if errors.Is(err, errOffline) {
		t.Skip("mirror unreachable")
	}
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range pkgs {
		if p.Name != "base-files" {
			continue
		}
		found = true
		if !p.Essential || p.Priority != "required" {
			t.Errorf("base-files: Essential %v, Priority %q", p.Essential, p.Priority)
		}
		if _, err := ParseVersion(p.Version.String()); err != nil {
			t.Errorf("base-files version: %v", err)
		}
		if err := dpkgValidate(p.Version.String()); err != nil {
			t.Errorf("dpkg refuses base-files version %s: %v", p.Version, err)
		}
		t.Logf("%d packages; base-files %s", len(pkgs), p.Version)
	}
	if !found {
		t.Fatalf("%d packages, no base-files", len(pkgs))
	}
}

func dpkgValidate(v string) error {
	dpkg, err := exec.LookPath("dpkg")
	if err != nil {
		return nil // without dpkg, ParseVersion alone has spoken
	}
	return exec.Command(dpkg, "--validate-version", v).Run()
}
