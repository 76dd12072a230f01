package debrepo

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

func TestParseMirror(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"http://deb.example.invalid/debian", "http://deb.example.invalid/debian"},
		{"http://deb.example.invalid/debian/", "http://deb.example.invalid/debian"},
		{"https://deb.example.invalid:8443/", "https://deb.example.invalid:8443"},
		{"file:///srv/mirror/debian/", "file:///srv/mirror/debian"},
		{"file://localhost/srv/m", "file:///srv/m"},
		{"ftp://deb.example.invalid/debian", ""},
		{"http://user:pw@deb.example.invalid/debian", ""},
		{"http://user@deb.example.invalid/debian", ""},
		{"http://deb.example.invalid/debian?x=1", ""},
		{"http://deb.example.invalid/debian?", ""},
		{"http://deb.example.invalid/debian#f", ""},
		{"http:///debian", ""},
		{"file://host/srv", ""},
		{"file:relative", ""},
		{"/srv/mirror", ""},
		{"http://deb.example.invalid/a/../b", ""},
		{"http://deb.example.invalid/a b", ""},
		{"", ""},
	} {
		u, err := ParseMirror(tc.in)
		if tc.want == "" {
			if !errors.Is(err, ErrMirrorURL) {
				t.Errorf("ParseMirror(%q) = %v, %v; want ErrMirrorURL", tc.in, u, err)
			}
			continue
		}
		if err != nil || u.String() != tc.want {
			t.Errorf("ParseMirror(%q) = %v, %v; want %s", tc.in, u, err, tc.want)
		}
	}
}

// serve serves a fakeArchive under /debian/dists/bookworm/ on loopback and
// counts requests per path.
func serve(t *testing.T, a fakeArchive) (*url.URL, map[string]*atomic.Int32) {
	t.Helper()
	counts := map[string]*atomic.Int32{}
	for p := range a {
		counts[p] = new(atomic.Int32)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := strings.CutPrefix(r.URL.Path, "/debian/dists/bookworm/")
		b, found := a[p]
		if !ok || !found {
			http.NotFound(w, r)
			return
		}
		counts[p].Add(1)
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	u, err := ParseMirror(srv.URL + "/debian/")
	if err != nil {
		t.Fatal(err)
	}
	return u, counts
}

func TestHTTPFetcherCache(t *testing.T) {
	key := newKey(t, 0)
	a := newArchive(t, key)
	mirror, counts := serve(t, a)
	cache := t.TempDir()
	var progress bytes.Buffer
	h := &HTTPFetcher{Mirror: mirror, Suite: "bookworm", Progress: &progress}
	req := archiveRequest(t, key, a)
	req.Fetch, req.Cache = h.Fetch, cache

	first, err := ResolveArchive(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(progress.String(), "fetched main/binary-amd64/Packages") {
		t.Errorf("progress %q", progress.String())
	}
	// A re-resolve against the same InRelease reads the index from the cache.
	second, err := ResolveArchive(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if n := counts["main/binary-amd64/Packages"].Load(); n != 1 {
		t.Errorf("Packages fetched %d times, want 1 (cached)", n)
	}
	if n := counts["InRelease"].Load(); n != 2 {
		t.Errorf("InRelease fetched %d times, want 2 (never cached)", n)
	}
	b1, _ := first.Marshal()
	b2, _ := second.Marshal()
	if !bytes.Equal(b1, b2) {
		t.Error("cached resolve differs")
	}
	// A damaged cache entry is fetched again, not used.
	entry := filepath.Join(cache, "sha256", sha(a["main/binary-amd64/Packages"]))
	if err := os.WriteFile(entry, []byte("Package: evil\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ResolveArchive(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if n := counts["main/binary-amd64/Packages"].Load(); n != 2 {
		t.Errorf("Packages fetched %d times, want 2 (damaged cache refetched)", n)
	}
	if b, _ := os.ReadFile(entry); !bytes.Equal(b, a["main/binary-amd64/Packages"]) {
		t.Error("the cache entry was not repaired")
	}
}

func TestHTTPFetcherFileMirror(t *testing.T) {
	key := newKey(t, 0)
	a := newArchive(t, key)
	root := t.TempDir()
	for p, b := range a {
		name := filepath.Join(root, "dists", "bookworm", p)
		os.MkdirAll(filepath.Dir(name), 0o755)
		if err := os.WriteFile(name, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mirror, err := ParseMirror("file://" + root)
	if err != nil {
		t.Fatal(err)
	}
	h := &HTTPFetcher{Mirror: mirror, Suite: "bookworm"}
	req := archiveRequest(t, key, a)
	req.Fetch = h.Fetch
	if _, err := ResolveArchive(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Fetch(context.Background(), "main/binary-amd64/Packages.xz"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing file: %v, want ErrNotFound", err)
	}
	if _, err := h.Fetch(context.Background(), "../../../etc/passwd"); !errors.Is(err, ErrMalformed) {
		t.Errorf("path out of dists: %v, want ErrMalformed", err)
	}
}

func TestHTTPFetcherHostile(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 4096)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/big"):
			w.Write(big)
		case strings.HasSuffix(r.URL.Path, "/chunked"):
			for range 8 {
				w.Write(big)
				w.(http.Flusher).Flush()
			}
		case strings.HasSuffix(r.URL.Path, "/500"):
			http.Error(w, "no", http.StatusInternalServerError)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	mirror, err := ParseMirror(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	h := &HTTPFetcher{Mirror: mirror, Suite: "bookworm", MaxSize: 1000}
	ctx := context.Background()
	for _, p := range []string{"big", "chunked"} {
		if rc, err := h.Fetch(ctx, p); err == nil || !strings.Contains(err.Error(), "limit of 1000") {
			if rc != nil {
				b, _ := io.ReadAll(rc)
				t.Errorf("%s: read %d bytes past the limit", p, len(b))
			}
			t.Errorf("%s: err = %v, want the size limit", p, err)
		}
	}
	if _, err := h.Fetch(ctx, "500"); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("500: err = %v, want an error that is not ErrNotFound", err)
	}
	if _, err := h.Fetch(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("404: err = %v, want ErrNotFound", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := h.Fetch(cctx, "big"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v, want context.Canceled", err)
	}
}
