package sources

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// watchOpens reports whether path was opened (for reading or writing;
// an O_PATH lookup is no open) after the call, by inotify.
func watchOpens(t *testing.T, path string) func() bool {
	t.Helper()
	in, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(in) })
	if _, err := unix.InotifyAddWatch(in, path, unix.IN_OPEN); err != nil {
		t.Fatal(err)
	}
	return func() bool {
		buf := make([]byte, 4096)
		n, _ := unix.Read(in, buf)
		// Events other than IN_OPEN come too: IN_IGNORED when the file
		// is removed.
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			if ev.Mask&unix.IN_OPEN != 0 {
				return true
			}
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
		return false
	}
}

// TestFileSourceMismatchHidesDigest (issue 10 item 3): a wrong checksum
// for a file:// source once printed the file's real digest, which a second
// run could use to import e.g. /etc/shadow.
func TestFileSourceMismatchHidesDigest(t *testing.T) {
	fx := newFixture(t)
	secret := filepath.Join(t.TempDir(), "secret")
	content := "root:$6$secret:19000:0:99999:7:::\n"
	if err := os.WriteFile(secret, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	s256 := sha256.Sum256([]byte(content))
	s384 := sha512.Sum384([]byte(content))
	s512 := sha512.Sum512([]byte(content))
	for _, want := range []string{sum256("guess"), "sha384:" + strings.Repeat("0", 96), "sha512:" + strings.Repeat("0", 128)} {
		file := File{want, "file://" + secret}
		err := fx.f.Fetch(t.Context(), []File{file})
		if !errors.Is(err, ErrChecksum) {
			t.Fatalf("Fetch = %v, want a checksum mismatch", err)
		}
		msg := err.Error()
		for _, leak := range [][]byte{s256[:], s384[:], s512[:]} {
			if h := hex.EncodeToString(leak); strings.Contains(msg, h) || strings.Contains(msg, h[:16]) {
				t.Errorf("error %q shows the file's digest", msg)
			}
		}
		for _, w := range []string{file.URL, want, "does not match the expected checksum"} {
			if !strings.Contains(msg, w) {
				t.Errorf("error %q lacks %q", msg, w)
			}
		}
		fx.assertNoDebris(t, want)
	}
}

// TestFileSourceSpecialFilesNotOpened (issue 10 item 3): the path was
// opened before its type was checked, so a device driver's open ran and a
// FIFO's open happened. The FIFO is watched with inotify: O_PATH is no
// open, a read-only open is.
func TestFileSourceSpecialFilesNotOpened(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link-to-fifo")
	if err := os.Symlink(fifo, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "subdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, path, kind string }{
		{"fifo", fifo, "a FIFO"},
		{"symlink to a fifo", link, "a FIFO"},
		{"directory", filepath.Join(dir, "subdir"), "a directory"},
		{"device", "/dev/null", "a character device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t)
			opened := watchOpens(t, fifo)
			file := File{sum256(""), "file://" + tc.path}
			err := fx.f.Fetch(t.Context(), []File{file})
			if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), tc.kind) {
				t.Fatalf("Fetch = %v, want %v naming %s", err, ErrNotRegular, tc.kind)
			}
			if opened() {
				t.Errorf("the FIFO was opened")
			}
			fx.assertNoDebris(t, file.Checksum)
		})
	}
}

// TestSourcesStoredPrivate (issue 10 item 3): a stored source was 0644 in
// 0755 directories, readable by every local user.
func TestSourcesStoredPrivate(t *testing.T) {
	fx := newFixture(t)
	local := filepath.Join(t.TempDir(), "local")
	if err := os.WriteFile(local, []byte("private"), 0o600); err != nil {
		t.Fatal(err)
	}
	// An older kiln's store: 0755 directories and a 0644 source.
	old := []byte("old")
	oldFile := File{sum256(string(old)), "file:///nonexistent"}
	if err := os.MkdirAll(filepath.Join(fx.f.Dir, FilesType), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(fx.f.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fx.f.Path(oldFile.Checksum), old, 0o644); err != nil {
		t.Fatal(err)
	}
	files := []File{{sum256("private"), "file://" + local}, oldFile, {sum256("good content"), fx.srv.URL + "/good"}}
	if err := fx.f.Fetch(t.Context(), files); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		mode os.FileMode
	}{
		{fx.f.Dir, 0o700},
		{filepath.Join(fx.f.Dir, FilesType), 0o700},
		{fx.f.Path(files[0].Checksum), 0o600},
		{fx.f.Path(files[1].Checksum), 0o600},
		{fx.f.Path(files[2].Checksum), 0o600},
	} {
		st, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != c.mode {
			t.Errorf("%s: mode %04o, want %04o", c.path, st.Mode().Perm(), c.mode)
		}
	}
}

// TestFileRoots (issue 10 item 3): FileRoots (kiln build
// --allow-file-sources) confines file:// sources to directories, against
// "..", absolute symlinks and relative symlinks leading out.
func TestFileRoots(t *testing.T) {
	root := t.TempDir()
	outside := filepath.Join(t.TempDir(), "outside")
	for _, f := range []string{filepath.Join(root, "in"), outside} {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(root, "abs-link")); err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(root, outside)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(rel, filepath.Join(root, "rel-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("in", filepath.Join(root, "inner-link")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		ok         bool
	}{
		{"inside", filepath.Join(root, "in"), true},
		{"symlink inside", filepath.Join(root, "inner-link"), true},
		{"outside", outside, false},
		{"dot-dot", root + "/../" + filepath.Base(filepath.Dir(outside)) + "/outside", false},
		{"absolute symlink out", filepath.Join(root, "abs-link"), false},
		{"relative symlink out", filepath.Join(root, "rel-link"), false},
		{"/etc/passwd", "/etc/passwd", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t)
			fx.f.FileRoots = []string{"/nonexistent/kiln-root", root}
			file := File{sum256("x"), "file://" + tc.path}
			err := fx.f.Fetch(t.Context(), []File{file})
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrNotAllowed) {
				t.Fatalf("Fetch = %v, want %v", err, ErrNotAllowed)
			}
			fx.assertNoDebris(t, file.Checksum)
		})
	}
	// The policy holds even when the store already has the checksum.
	fx := newFixture(t)
	if err := fx.f.Fetch(t.Context(), []File{{sum256("x"), "file://" + outside}}); err != nil {
		t.Fatal(err)
	}
	fx.f.FileRoots = []string{root}
	if err := fx.f.Fetch(t.Context(), []File{{sum256("x"), "file://" + outside}}); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("cached source outside the roots: Fetch = %v", err)
	}
}

// hostileServer serves the misbehaving downloads of item 13.
func hostileServer(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	big := strings.Repeat("b", 4096)
	mux.HandleFunc("/big-declared", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", "4096")
		fmt.Fprint(w, big)
	})
	mux.HandleFunc("/big-chunked", func(w http.ResponseWriter, _ *http.Request) {
		for range 4 {
			fmt.Fprint(w, big[:1024])
			w.(http.Flusher).Flush()
		}
	})
	// Sends part of the body, then nothing until the client gives up.
	mux.HandleFunc("/stall", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		fmt.Fprint(w, "partial")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	// Sends no headers until the client gives up.
	mux.HandleFunc("/no-headers", func(_ http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	// Closes the connection in the middle of the body.
	mux.HandleFunc("/hangup", func(w http.ResponseWriter, _ *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprint(buf, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nthe first bytes")
		_ = buf.Flush()
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// TestHTTPSourceLimits (issue 10 item 13): downloads had no size bound and
// no timeout on a stalled body or on headers; none of the failures may
// leave the body anywhere.
func TestHTTPSourceLimits(t *testing.T) {
	srv := hostileServer(t)
	for _, tc := range []struct {
		name, path, content string
		is                  error
	}{
		{"declared too big", "/big-declared", strings.Repeat("b", 4096), ErrTooLarge},
		{"chunked too big", "/big-chunked", strings.Repeat("b", 4096), ErrTooLarge},
		{"stalled body", "/stall", "partial", ErrStalled},
		{"no headers", "/no-headers", "", ErrFetch},
		{"server hangs up", "/hangup", "the first bytes", ErrFetch},
		{"wrong checksum", "/big-declared", "other", ErrChecksum},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t)
			fx.f.MaxSize = 1000
			fx.f.StallTimeout = 50 * time.Millisecond
			fx.f.HeaderTimeout = 50 * time.Millisecond
			fx.f.Attempts = 2
			if tc.is == ErrChecksum {
				fx.f.MaxSize = 0
			}
			file := File{sum256(tc.content), srv.URL + tc.path}
			err := fx.f.Fetch(t.Context(), []File{file})
			if !errors.Is(err, tc.is) {
				t.Fatalf("Fetch = %v, want %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), file.URL) {
				t.Errorf("error %q does not name the URL", err)
			}
			fx.assertNoDebris(t, file.Checksum)
		})
	}
}

// TestHTTPSourceLimitExact: a body of exactly MaxSize bytes passes.
func TestHTTPSourceLimitExact(t *testing.T) {
	srv := hostileServer(t)
	fx := newFixture(t)
	fx.f.MaxSize = 4096
	if err := fx.f.Fetch(t.Context(), []File{{sum256(strings.Repeat("b", 4096)), srv.URL + "/big-chunked"}}); err != nil {
		t.Fatal(err)
	}
}

// TestVerify (issue 10 item 17): fsck verifies every stored source against
// the checksum that names it, and --repair removes what is damaged.
func TestVerify(t *testing.T) {
	fx := newFixture(t)
	local := filepath.Join(t.TempDir(), "local")
	if err := os.WriteFile(local, []byte("good"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := File{sum256("good"), "file://" + local}
	if err := fx.f.Fetch(t.Context(), []File{good}); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(fx.f.Dir, FilesType)
	write := func(name, content string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(sub, name), []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(sub, name), mode); err != nil {
			t.Fatal(err)
		}
	}
	flipped := sum256("flipped")
	write(flipped, "flippeD", 0o600)
	write("not-a-checksum", "x", 0o600)
	loose := sum256("loose")
	write(loose, "loose", 0o644)
	fifo := sum256("fifo")
	if err := unix.Mkfifo(filepath.Join(sub, fifo), 0o600); err != nil {
		t.Fatal(err)
	}
	opened := watchOpens(t, filepath.Join(sub, fifo))
	dir := sum256("dir")
	if err := os.Mkdir(filepath.Join(sub, dir), 0o700); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		flipped:          "content does not match",
		"not-a-checksum": "not a checksum",
		loose:            "mode 0644",
		fifo:             "not a regular file",
		dir:              "not a regular file",
	}
	for _, repair := range []bool{false, true} {
		problems, err := Verify(t.Context(), fx.f.Dir, repair)
		if err != nil {
			t.Fatal(err)
		}
		if len(problems) != len(want) {
			t.Errorf("repair=%v: %d problems, want %d: %v", repair, len(problems), len(want), problems)
		}
		for _, p := range problems {
			if w, ok := want[p.Checksum]; !ok || !strings.Contains(p.Reason, w) {
				t.Errorf("repair=%v: %s, want %q", repair, p, w)
			}
			if p.Repaired != repair {
				t.Errorf("%s: repaired=%v", p, p.Repaired)
			}
		}
	}
	if opened() {
		t.Error("Verify opened a FIFO")
	}
	problems, err := Verify(t.Context(), fx.f.Dir, false)
	if err != nil || len(problems) != 0 {
		t.Fatalf("after repair: %v, %v", problems, err)
	}
	left, _ := os.ReadDir(sub)
	var names []string
	for _, e := range left {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != strings.Join(sortedStrings(good.Checksum, loose), " ") {
		t.Errorf("after repair the store holds %v, want the good source and the re-moded one", names)
	}
	if problems, err := Verify(t.Context(), filepath.Join(t.TempDir(), "none"), true); err != nil || problems != nil {
		t.Errorf("Verify of no sources: %v, %v", problems, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Verify(ctx, fx.f.Dir, false); !errors.Is(err, context.Canceled) {
		t.Errorf("Verify with a canceled context = %v", err)
	}
}

func sortedStrings(s ...string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}
