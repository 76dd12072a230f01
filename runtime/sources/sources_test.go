package sources

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/store"
	"github.com/kilnbuild/kiln/store/mountns"
)

func TestMain(m *testing.M) {
	mountns.MustEnter()
	os.Exit(m.Run())
}

func sum256(b string) string {
	h := sha256.Sum256([]byte(b))
	return "sha256:" + hex.EncodeToString(h[:])
}

// fixture is a store, a fetcher into it, and a loopback HTTP server with
// a few behaviours.
type fixture struct {
	st    *store.Store
	f     *Fetcher
	srv   *httptest.Server
	flaky atomic.Int32 // requests to /flaky answered 503 so far
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, err := store.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	fx := &fixture{st: st}
	mux := http.NewServeMux()
	mux.HandleFunc("/good", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "good content") })
	mux.HandleFunc("/flaky", func(w http.ResponseWriter, _ *http.Request) {
		if fx.flaky.Add(1) <= 2 {
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "flaky content")
	})
	mux.HandleFunc("/truncated", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", "100")
		fmt.Fprint(w, "short")
	})
	fx.srv = httptest.NewServer(mux) // 127.0.0.1 only
	t.Cleanup(fx.srv.Close)
	fx.f = &Fetcher{
		Dir:     filepath.Join(st.Root(), "sources"),
		Temp:    func() (TempDir, error) { return st.NewTempDir("src") },
		backoff: func(int) time.Duration { return time.Millisecond },
	}
	return fx
}

// assertNoDebris checks that nothing half-written is left in tmp/ or under
// the file's final name.
func (fx *fixture) assertNoDebris(t *testing.T, sums ...string) {
	t.Helper()
	tmp, _ := os.ReadDir(filepath.Join(fx.st.Root(), "tmp"))
	if len(tmp) != 0 {
		t.Errorf("tmp/ holds %d entries after the fetch", len(tmp))
	}
	for _, s := range sums {
		if _, err := os.Lstat(fx.f.Path(s)); err == nil {
			t.Errorf("%s stored although its fetch failed", s)
		}
	}
}

func TestFetch(t *testing.T) {
	fx := newFixture(t)
	local := filepath.Join(t.TempDir(), "local")
	if err := os.WriteFile(local, []byte("local content"), 0o644); err != nil {
		t.Fatal(err)
	}
	h512 := sha512.Sum512([]byte("good content"))
	files := []File{
		{sum256("good content"), fx.srv.URL + "/good"},
		{"sha512:" + hex.EncodeToString(h512[:]), fx.srv.URL + "/good"},
		{sum256("flaky content"), fx.srv.URL + "/flaky"},
		{sum256("local content"), "file://" + local},
	}
	var events atomic.Int32
	fx.f.Progress = func(File, int64, int64, bool) { events.Add(1) }
	if err := fx.f.Fetch(t.Context(), files); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(fx.f.Path(f.Checksum))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(string(b), "content") {
			t.Errorf("%s holds %q", f.Checksum, b)
		}
	}
	if n := fx.flaky.Load(); n != 3 {
		t.Errorf("flaky URL asked %d times, want 3 (two 503s, then success)", n)
	}
	if events.Load() == 0 {
		t.Error("no progress reported")
	}
	fx.assertNoDebris(t)

	// Offline: with the server gone, everything comes from the store.
	fx.srv.Close()
	var cached atomic.Int32
	fx.f.Progress = func(_ File, _, _ int64, c bool) {
		if c {
			cached.Add(1)
		}
	}
	if err := fx.f.Fetch(t.Context(), files); err != nil {
		t.Fatalf("offline fetch of cached files: %v", err)
	}
	if int(cached.Load()) != len(files) {
		t.Errorf("%d of %d files reported cached", cached.Load(), len(files))
	}
}

func TestFetchFailures(t *testing.T) {
	// A port that was listening and is closed now: connection refused.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	for _, tc := range []struct {
		name string
		file func(fx *fixture) File
		is   error
		want []string
	}{
		{"wrong checksum", func(fx *fixture) File { return File{sum256("other"), fx.srv.URL + "/good"} }, ErrChecksum, []string{"/good", "does not match the expected checksum"}},
		{"404", func(fx *fixture) File { return File{sum256("x"), fx.srv.URL + "/missing"} }, ErrFetch, []string{"HTTP 404"}},
		// A stale lock's URL: the error says so and how to refresh it.
		{"404 is gone", func(fx *fixture) File { return File{sum256("x"), fx.srv.URL + "/missing"} }, ErrGone, []string{"HTTP 404", "re-run kiln deb resolve"}},
		{"unreachable", func(*fixture) File { return File{sum256("x"), "http://" + closed + "/f"} }, ErrFetch, []string{"refused"}},
		{"truncated", func(fx *fixture) File { return File{sum256("short"), fx.srv.URL + "/truncated"} }, ErrFetch, []string{"interrupted"}},
		{"missing file", func(*fixture) File { return File{sum256("x"), "file:///nonexistent/kiln"} }, ErrFetch, []string{"no such file"}},
		{"device", func(*fixture) File { return File{sum256("x"), "file:///dev/zero"} }, ErrFetch, []string{"not a regular file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t)
			file := tc.file(fx)
			err := fx.f.Fetch(t.Context(), []File{file})
			if !errors.Is(err, tc.is) {
				t.Fatalf("Fetch = %v, want %v", err, tc.is)
			}
			for _, w := range append(tc.want, file.Checksum, file.URL) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			fx.assertNoDebris(t, file.Checksum)
		})
	}
}

func TestParse(t *testing.T) {
	good := sum256("x")
	for _, tc := range []struct {
		name, doc string
		want      string // error substring; "" means valid
	}{
		{"string url", `{"org.osbuild.files": {"urls": {"` + good + `": "https://example.org/x"}}}`, ""},
		{"object url", `{"org.osbuild.files": {"urls": {"` + good + `": {"url": "file:///x"}}}}`, ""},
		{"unknown type", `{"org.osbuild.ostree": {}}`, `$.sources["org.osbuild.ostree"]: unsupported source`},
		{"bad checksum", `{"org.osbuild.files": {"urls": {"md5:abc": "file:///x"}}}`, `urls["md5:abc"]: checksum`},
		{"short hex", `{"org.osbuild.files": {"urls": {"sha256:abc": "file:///x"}}}`, "checksum"},
		{"ftp", `{"org.osbuild.files": {"urls": {"` + good + `": "ftp://x/y"}}}`, "not a file://"},
		{"no url", `{"org.osbuild.files": {"urls": {"` + good + `": {"mirror": "x"}}}}`, "expected a URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m map[string]json.RawMessage
			if err := json.Unmarshal([]byte(tc.doc), &m); err != nil {
				t.Fatal(err)
			}
			files, err := Parse(m)
			if tc.want == "" {
				if err != nil || len(files) != 1 {
					t.Fatalf("Parse = %v, %v", files, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestFetchCanceled(t *testing.T) {
	fx := newFixture(t)
	local := filepath.Join(t.TempDir(), "local")
	if err := os.WriteFile(local, []byte(strings.Repeat("x", 1<<20)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	file := File{sum256(strings.Repeat("x", 1<<20)), "file://" + local}
	if err := fx.f.Fetch(ctx, []File{file}); !errors.Is(err, context.Canceled) {
		t.Errorf("Fetch with a canceled context = %v", err)
	}
	fx.assertNoDebris(t, file.Checksum)
}

// TestFetchStoreFullNotRetried: a download that fails because the store's
// disk is full says so, with ENOSPC, and is not downloaded again (each
// attempt would fail the same, after fetching it all).
func TestFetchStoreFullNotRetried(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	st, err := store.Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	big := strings.Repeat("x", 2<<20)
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		requests.Add(1)
		fmt.Fprint(w, big)
	}))
	defer srv.Close()
	f := &Fetcher{
		Dir:     filepath.Join(st.Root(), "sources"),
		Temp:    func() (TempDir, error) { return st.NewTempDir("src") },
		backoff: func(int) time.Duration { return time.Millisecond },
	}
	err = f.Fetch(t.Context(), []File{{Checksum: sum256(big), URL: srv.URL + "/big"}})
	if !errors.Is(err, unix.ENOSPC) || !strings.Contains(err.Error(), "no space left on device") {
		t.Errorf("fetch into a full store: %v, want ENOSPC", err)
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("%d requests, want 1: a full store is not worth another attempt", n)
	}
	if tmp, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(tmp) != 0 {
		t.Errorf("tmp/ holds %d entries after the failed fetch", len(tmp))
	}
}

// TestViewChecksStoredSources (trust issue, item 17): a stage sees a
// source only through a view, so that is where damage in the store must
// stop: the damaged file is fetched again, or the build fails saying so.
func TestViewChecksStoredSources(t *testing.T) {
	fx := newFixture(t)
	good := File{Checksum: sum256("good content"), URL: fx.srv.URL + "/good"}
	if err := fx.f.Fetch(t.Context(), []File{good}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fx.f.Path(good.Checksum), []byte("evil content"), 0o600); err != nil {
		t.Fatal(err)
	}
	view := t.TempDir()
	if err := fx.f.View(t.Context(), view, []File{good}); err != nil {
		t.Fatalf("View of a damaged source: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(view, FilesType, good.Checksum))
	if err != nil || string(got) != "good content" {
		t.Errorf("the view holds %q, %v; want the source fetched again", got, err)
	}

	// Damaged, and no longer to be had: the build fails, naming the damage.
	gone := File{Checksum: good.Checksum, URL: fx.srv.URL + "/no-such-file"}
	if err := os.WriteFile(fx.f.Path(good.Checksum), []byte("evil content"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = fx.f.View(t.Context(), t.TempDir(), []File{gone})
	if err == nil || !strings.Contains(err.Error(), "was damaged") {
		t.Errorf("View of a damaged source that cannot be fetched: %v, want an error saying it was damaged", err)
	}
}
