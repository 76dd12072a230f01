// Package sources fetches a manifest's sources into the store before any
// stage runs. kiln supports osbuild's org.osbuild.files and
// org.osbuild.curl: files named by their checksum and fetched from
// file://, http:// or https:// URLs, both kept in one content directory. Each
// file is downloaded into a locked directory under the store's tmp/,
// verified while it streams, and only then renamed to
// <store>/sources/org.osbuild.files/<checksum>, so a wrong checksum, a
// failed or interrupted download never leaves a file under a valid name,
// and the bytes of a failed download are removed with their temporary
// directory. Files already there are reused, so fully cached builds work
// offline. Stored sources are 0600 in 0700 directories: a source may be a
// copy of a file only the invoking user can read.
//
// A file:// source reads whatever the user running kiln can read: the
// manifest's author chooses the path, so building someone else's manifest
// lets it copy any such file into the build (with a checksum it must know
// in advance: a mismatch never says what the file's checksum is).
// A file URL without "//" and with a path that does not start with "/",
// such as file:x.tar or file:dl/x.tar (RFC 3986's path-rootless form),
// names a file relative to the manifest's directory (Fetcher.BaseDir), as
// the relative reference x.tar would resolve against the manifest's own
// URL file:///dir/manifest.json. file://work/x.tar is refused: "work" is
// the URL's host, not a directory.
//
// Fetcher.FileRoots (kiln build --allow-file-sources) confines file://
// sources to given directories, symlinks included. The path is opened
// with O_PATH and its type checked on that descriptor before the file is
// opened for reading, so a FIFO, a device or a socket is refused without
// its open ever running (a device driver's open can have effects, a FIFO's
// blocks).
//
// http(s) downloads are bounded: in size (Fetcher.MaxSize, 16 GiB unless
// set; osbuild's manifest format has no size per file), in the wait for
// response headers (HeaderTimeout) and in how long a body may send
// nothing (StallTimeout).
package sources

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/internal/fsmeta"
	"github.com/kilnbuild/kiln/store/crashpoint"
)

// FilesType is osbuild's URL+checksum source type, and the directory
// under the store's sources/ that holds the files of both types.
const FilesType = "org.osbuild.files"

// CurlType is osbuild's newer name for the same files (osbuild v2
// manifests and kiln deb manifest write it); they are stored and read as
// FilesType's.
const CurlType = "org.osbuild.curl"

// Defaults of the Fetcher's limits.
const (
	DefaultMaxSize       = 16 << 30
	DefaultHeaderTimeout = 60 * time.Second
	DefaultStallTimeout  = 60 * time.Second
)

// Sentinel errors, for errors.Is.
var (
	ErrChecksum    = errors.New("checksum mismatch")
	ErrFetch       = errors.New("fetch failed")
	ErrUnsupported = errors.New("unsupported source")
	// ErrTooLarge: a source is larger than Fetcher.MaxSize.
	ErrTooLarge = errors.New("source too large")
	// ErrStalled: a download sent nothing for Fetcher.StallTimeout.
	ErrStalled = errors.New("download stalled")
	// ErrNotAllowed: a file:// source outside Fetcher.FileRoots.
	ErrNotAllowed = errors.New("file source not allowed")
	// ErrNotRegular: a file:// source that is not a regular file.
	ErrNotRegular = fsmeta.ErrNotRegular
	// ErrGone: the server answered 404 or 410. A mirror that deletes
	// superseded files (Debian's archive does, within weeks of a point
	// release) answers this for a lock that has gone stale.
	ErrGone = errors.New("the server no longer has this file")
)

// File is one file to fetch.
type File struct {
	Checksum string // "sha256:<hex>", "sha384:<hex>" or "sha512:<hex>"
	URL      string
}

var checksumRE = regexp.MustCompile(`^(sha256:[0-9a-f]{64}|sha384:[0-9a-f]{96}|sha512:[0-9a-f]{128})$`)

// IsChecksum reports whether s is a checksum as sources are named by:
// sha256:, sha384: or sha512: and lowercase hex of the right length.
func IsChecksum(s string) bool { return checksumRE.MatchString(s) }

var checksumLikeRE = regexp.MustCompile(`sha(256|384|512):[0-9a-f]+`)

// Checksums returns the checksums s contains, e.g. the one in
// "/run/kiln/sources/org.osbuild.files/sha256:<hex>": runs of
// sha256:/sha384:/sha512: and lowercase hex of exactly the right length.
func Checksums(s string) []string {
	var out []string
	for _, m := range checksumLikeRE.FindAllString(s, -1) {
		if checksumRE.MatchString(m) {
			out = append(out, m)
		}
	}
	return out
}

// Parse reads a manifest's sources section: org.osbuild.files
// ({"urls": {checksum: url}}) and org.osbuild.curl, osbuild's name for
// the same URL+checksum files ({"items": {...}}, or "urls" as osbuild's
// schema also allows), each URL a string or {"url": ...}. Both types
// store into one content directory, org.osbuild.files/<checksum>, as in
// osbuild, so a stage reads either the same way; a checksum both name is
// fetched once. It rejects source types kiln does not know, malformed
// checksums (md5 and sha1, which osbuild's curl schema admits, included)
// and URLs of other schemes, file:// URLs naming a host, and http(s) URLs
// without a host. A relative file: URL is accepted; Fetcher.BaseDir
// resolves it. The result is sorted by checksum.
func Parse(sources map[string]json.RawMessage) ([]File, error) {
	var files []File
	seen := map[string]bool{}
	for _, typ := range sortedKeys(sources) {
		raw := sources[typ]
		path := "$.sources[" + strconv.Quote(typ) + "]"
		var items map[string]json.RawMessage
		var key string
		switch typ {
		case FilesType:
			var spec struct {
				URLs map[string]json.RawMessage `json:"urls"`
			}
			if err := json.Unmarshal(raw, &spec); err != nil {
				return nil, &ParseError{path, err}
			}
			items, key = spec.URLs, "urls"
		case CurlType:
			var err error
			if items, key, err = parseCurl(raw); err != nil {
				return nil, &ParseError{path, err}
			}
		default:
			return nil, &ParseError{path, fmt.Errorf("%w %q (kiln fetches %s and %s)", ErrUnsupported, typ, CurlType, FilesType)}
		}
		for _, sum := range sortedKeys(items) {
			u := items[sum]
			at := fmt.Sprintf("%s.%s[%q]", path, key, sum)
			if !checksumRE.MatchString(sum) {
				return nil, &ParseError{at, errors.New("checksum must be sha256:, sha384: or sha512: and lowercase hex of the right length")}
			}
			s, err := itemURL(u, typ == CurlType)
			if err != nil {
				return nil, &ParseError{at, err}
			}
			if err := checkURL(s); err != nil {
				return nil, &ParseError{at, fmt.Errorf("%q: %w", s, err)}
			}
			if seen[sum] {
				// The content is what the checksum names; either URL
				// gives it, and the first type's (sorted) is tried.
				continue
			}
			seen[sum] = true
			files = append(files, File{Checksum: sum, URL: s})
		}
	}
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Checksum, b.Checksum) })
	return files, nil
}

// parseCurl reads an org.osbuild.curl section: exactly one of "items" and
// "urls" (osbuild's schema: oneOf), nothing else.
func parseCurl(raw json.RawMessage) (map[string]json.RawMessage, string, error) {
	var spec map[string]json.RawMessage
	if err := json.Unmarshal(raw, &spec); err != nil {
		return nil, "", err
	}
	for _, k := range sortedKeys(spec) {
		if k != "items" && k != "urls" {
			return nil, "", fmt.Errorf("unknown property %q (%s has items or urls)", k, CurlType)
		}
	}
	key := "items"
	if _, ok := spec["urls"]; ok {
		if _, both := spec["items"]; both {
			return nil, "", errors.New(`both "items" and "urls": give one`)
		}
		key = "urls"
	}
	body, ok := spec[key]
	if !ok {
		return nil, "", errors.New(`needs "items": {checksum: url}`)
	}
	var items map[string]json.RawMessage
	if err := json.Unmarshal(body, &items); err != nil {
		return nil, "", fmt.Errorf("%s: %w", key, err)
	}
	return items, key, nil
}

// itemURL reads one item: a URL string or {"url": ...}. For
// org.osbuild.curl the object is closed as in osbuild's schema; its
// "secrets" (subscription or client-certificate downloads) and "insecure"
// (TLS without verification) are refused, since kiln has neither a
// secrets provider nor a reason to skip TLS checks.
func itemURL(raw json.RawMessage, curl bool) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	if !curl {
		var obj struct {
			URL string `json:"url"`
		}
		if err := json.Unmarshal(raw, &obj); err != nil || obj.URL == "" {
			return "", errors.New(`expected a URL string or {"url": ...}`)
		}
		return obj.URL, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return "", errors.New(`expected a URL string or {"url": ...}`)
	}
	for _, k := range sortedKeys(obj) {
		v := obj[k]
		switch k {
		case "url":
		case "insecure":
			var b bool
			if err := json.Unmarshal(v, &b); err != nil {
				return "", errors.New(`"insecure" must be a boolean`)
			}
			if b {
				return "", fmt.Errorf(`%w: "insecure": true (kiln always verifies TLS)`, ErrUnsupported)
			}
		case "secrets":
			return "", fmt.Errorf(`%w: "secrets" (kiln has no secrets provider)`, ErrUnsupported)
		default:
			return "", fmt.Errorf("unknown property %q (an item has url, insecure, secrets)", k)
		}
	}
	var u string
	if err := json.Unmarshal(obj["url"], &u); err != nil || u == "" {
		return "", errors.New(`expected a URL string or {"url": ...}`)
	}
	return u, nil
}

// ParseError is a problem in the sources section, at a JSON path such as
// $.sources["org.osbuild.files"].urls["sha256:..."].
type ParseError struct {
	Path string
	Err  error
}

func (e *ParseError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *ParseError) Unwrap() error { return e.Err }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a file://, http:// or https:// URL")
	}
	switch u.Scheme {
	case "file":
		if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return errors.New("a file URL has no user, query or fragment")
		}
		if u.Opaque != "" {
			if _, err := relativePath(u); err != nil {
				return err
			}
			return nil
		}
		if u.Host != "" && u.Host != "localhost" {
			// file://work/x.tar: the writer most likely meant a path.
			return fmt.Errorf("host part %q: did you mean file:%s%s (relative to the manifest) or file:///%s%s?",
				u.Host, u.Host, u.EscapedPath(), u.Host, u.EscapedPath())
		}
		if !filepath.IsAbs(u.Path) {
			return errors.New("a file:// URL needs an absolute path: file:///path (or file:path, relative to the manifest)")
		}
		return nil
	case "http", "https":
		if u.Host == "" {
			return errors.New("an http(s) URL needs a host")
		}
		return nil
	}
	return errors.New("not a file://, http:// or https:// URL")
}

// relativePath is the path of a relative file URL (file:x.tar, whose
// path Go's url package leaves in Opaque), percent-decoded.
func relativePath(u *url.URL) (string, error) {
	p, err := url.PathUnescape(u.Opaque)
	if err != nil {
		return "", fmt.Errorf("a relative file URL with a bad escape: %w", err)
	}
	if p == "" || strings.ContainsRune(p, 0) {
		return "", errors.New("a relative file URL needs a path: file:x.tar (relative to the manifest)")
	}
	if strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("file:%s is not relative once decoded: write file://%s", u.Opaque, p)
	}
	return p, nil
}

// filePath is the host path a file URL names: its path, or for a relative
// one (file:x.tar) that path beneath BaseDir.
func (f *Fetcher) filePath(u *url.URL) (string, error) {
	if u.Opaque == "" {
		return u.Path, nil
	}
	rel, err := relativePath(u)
	if err != nil {
		return "", err
	}
	if f.BaseDir == "" {
		return "", fmt.Errorf("%w: a relative file URL (%s) is relative to the manifest's directory, and this manifest has none (read from standard input?): use file:///path", ErrNotAllowed, u)
	}
	base, err := filepath.Abs(f.BaseDir)
	if err != nil {
		return "", err
	}
	return filepath.Join(base, rel), nil
}

// TempDir is a locked temporary directory; *store.TempDir is one.
type TempDir interface {
	Path() string
	Remove() error
}

// Progress is told about each file's download, from several goroutines
// at once.
type Progress func(f File, done, total int64, cached bool)

// Fetcher downloads files into Dir/org.osbuild.files/.
type Fetcher struct {
	Dir      string                  // <store>/sources
	Temp     func() (TempDir, error) // a locked directory on the same filesystem as Dir
	Client   *http.Client            // nil: a client with HeaderTimeout
	Attempts int                     // per file for transient failures; 0 means 3
	Jobs     int                     // parallel downloads; 0 means 4
	Progress Progress                // may be nil

	// MaxSize bounds each source in bytes; 0 means DefaultMaxSize. A
	// larger Content-Length is refused before the body is read, a body
	// that grows past it is cut off, and a file:// source is sized first.
	MaxSize int64
	// HeaderTimeout bounds the wait for a response's headers when Client
	// is nil; 0 means DefaultHeaderTimeout.
	HeaderTimeout time.Duration
	// StallTimeout fails a download whose body sends nothing for this
	// long (the attempt is then retried); 0 means DefaultStallTimeout.
	StallTimeout time.Duration
	// FileRoots, when not empty, are the only directories file:// sources
	// may be read from: the path is resolved beneath one of them (openat2
	// RESOLVE_BENEATH), so neither ".." nor a symlink leads out. Empty,
	// file:// reads anything the invoking user can read.
	FileRoots []string
	// BaseDir is what a relative file URL (file:x.tar) is relative to:
	// the manifest's directory. Empty (a manifest from standard input),
	// such sources are refused. The resolved path is then confined by
	// FileRoots and opened like any file:// source.
	BaseDir string

	backoff func(attempt int) time.Duration // tests shorten it
}

// Path returns where the file with checksum sum is stored.
func (f *Fetcher) Path(sum string) string { return filepath.Join(f.Dir, FilesType, sum) }

// Fetch makes every file available, downloading what is missing in
// parallel. The first failure cancels the rest. A file:// source outside
// FileRoots is refused before anything is fetched, even when the store
// holds its checksum.
func (f *Fetcher) Fetch(ctx context.Context, files []File) error {
	for _, file := range files {
		if err := f.allowed(file); err != nil {
			return err
		}
	}
	if err := privateDir(f.Dir); err != nil {
		return err
	}
	if err := privateDir(filepath.Join(f.Dir, FilesType)); err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	jobs := f.Jobs
	if jobs <= 0 {
		jobs = 4
	}
	g.SetLimit(jobs)
	for _, file := range files {
		g.Go(func() error { return f.fetchOne(ctx, file) })
	}
	return g.Wait()
}

// privateDir makes dir, 0700 also when an older kiln made it 0755.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("sources: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("sources: %w", err)
	}
	return nil
}

// allowed checks a file:// URL against FileRoots by its path alone; open
// checks it again while resolving, against symlinks.
func (f *Fetcher) allowed(file File) error {
	u, err := url.Parse(file.URL)
	if err != nil || u.Scheme != "file" {
		return nil
	}
	path, err := f.filePath(u)
	if err != nil {
		return fmt.Errorf("source %s from %s: %w", file.Checksum, file.URL, err)
	}
	if len(f.FileRoots) == 0 {
		return nil
	}
	if _, _, err := f.root(path); err != nil {
		return fmt.Errorf("source %s from %s: %w", file.Checksum, file.URL, err)
	}
	return nil
}

// root finds the FileRoots directory that holds path and returns it with
// path relative to it.
func (f *Fetcher) root(path string) (string, string, error) {
	path = filepath.Clean(path)
	for _, r := range f.FileRoots {
		abs, err := filepath.Abs(r)
		if err != nil {
			continue
		}
		if rel, err := filepath.Rel(abs, path); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
			return abs, rel, nil
		}
	}
	return "", "", fmt.Errorf("%w: %s is outside the directories file:// sources may be read from (%s)",
		ErrNotAllowed, path, strings.Join(f.FileRoots, ", "))
}

func (f *Fetcher) fetchOne(ctx context.Context, file File) error {
	final := f.Path(file.Checksum)
	if st, err := os.Lstat(final); err == nil && st.Mode().IsRegular() {
		// Stored by a kiln that made sources 0644.
		if st.Mode().Perm() != 0o600 {
			if err := os.Chmod(final, 0o600); err != nil {
				return fmt.Errorf("sources: %w", err)
			}
		}
		if f.Progress != nil {
			f.Progress(file, st.Size(), st.Size(), true)
		}
		return nil
	}
	attempts := f.Attempts
	if attempts <= 0 {
		attempts = 3
	}
	var err error
	for attempt := 1; attempt <= attempts; attempt++ {
		var retry bool
		retry, err = f.download(ctx, file, final)
		if err == nil || !retry || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(f.wait(attempt)):
		}
	}
	return err
}

func (f *Fetcher) wait(attempt int) time.Duration {
	if f.backoff != nil {
		return f.backoff(attempt)
	}
	return time.Duration(attempt*attempt) * 500 * time.Millisecond
}

func (f *Fetcher) maxSize() int64 {
	if f.MaxSize > 0 {
		return f.MaxSize
	}
	return DefaultMaxSize
}

func (f *Fetcher) stallTimeout() time.Duration {
	if f.StallTimeout > 0 {
		return f.StallTimeout
	}
	return DefaultStallTimeout
}

// download fetches once into a temporary directory, verifies, and renames
// into place. retry reports whether another attempt could succeed. Every
// failure removes the temporary directory, and with it what was read.
func (f *Fetcher) download(ctx context.Context, file File, final string) (retry bool, err error) {
	fail := func(retry bool, err error) (bool, error) {
		return retry, fmt.Errorf("source %s from %s: %w: %w", file.Checksum, file.URL, ErrFetch, err)
	}
	// Cancelled with ErrStalled when the body sends nothing for too long.
	dctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	body, size, retry, err := f.open(dctx, file.URL)
	if err != nil {
		return fail(retry, err)
	}
	defer body.Close()
	max := f.maxSize()
	if size > max {
		return fail(false, fmt.Errorf("%w: %d bytes, more than the limit of %d", ErrTooLarge, size, max))
	}
	tmp, err := f.Temp()
	if err != nil {
		return false, err
	}
	defer tmp.Remove()
	out, err := os.OpenFile(filepath.Join(tmp.Path(), "data"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return false, fmt.Errorf("sources: %w", err)
	}
	defer out.Close()
	algo, want, _ := strings.Cut(file.Checksum, ":")
	h := newHash(algo)
	stall := f.stallTimeout()
	timer := time.AfterFunc(stall, func() { cancel(ErrStalled) })
	defer timer.Stop()
	var src io.Reader = &stallReader{r: ctxReader{dctx, body}, timer: timer, d: stall}
	src = &limitReader{r: src, left: max}
	if f.Progress != nil {
		src = &progressReader{r: src, f: file, total: size, p: f.Progress}
	}
	dst := &storeWriter{w: out}
	if _, err := io.Copy(io.MultiWriter(dst, h), src); err != nil {
		switch {
		case dst.err != nil:
			// The store's disk, not the download, failed (ENOSPC, EIO):
			// another attempt would download it all again to fail the same.
			return fail(false, fmt.Errorf("writing it into the store (%s): %w", tmp.Path(), dst.err))
		case ctx.Err() != nil:
			return false, fmt.Errorf("source %s from %s: %w", file.Checksum, file.URL, ctx.Err())
		case errors.Is(context.Cause(dctx), ErrStalled):
			return fail(true, fmt.Errorf("%w: nothing received for %s", ErrStalled, stall))
		case errors.Is(err, ErrTooLarge):
			return fail(false, fmt.Errorf("%w: more than the limit of %d bytes", ErrTooLarge, max))
		}
		return fail(true, fmt.Errorf("download interrupted: %w", err))
	}
	// The actual digest is never shown: for a file:// source it would
	// let a manifest learn the checksum of a file it cannot read, and a
	// second build would then import it.
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return false, fmt.Errorf("source %s from %s: %w: its content does not match the expected checksum %s", file.Checksum, file.URL, ErrChecksum, file.Checksum)
	}
	if err := out.Sync(); err != nil {
		return false, fmt.Errorf("sources: %w", err)
	}
	if err := out.Close(); err != nil {
		return false, fmt.Errorf("sources: %w", err)
	}
	// Renaming over a concurrent download of the same file is harmless:
	// both were verified against the same checksum.
	crashpoint.Hit("sources.fetch.before-rename")
	if err := os.Rename(filepath.Join(tmp.Path(), "data"), final); err != nil {
		return false, fmt.Errorf("sources: %w", err)
	}
	return false, nil
}

// storeWriter remembers a failed write, to tell it from a failed read.
type storeWriter struct {
	w   io.Writer
	err error
}

func (s *storeWriter) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	if err != nil {
		s.err = err
	}
	return n, err
}

func newHash(algo string) hash.Hash {
	switch algo {
	case "sha384":
		return sha512.New384()
	case "sha512":
		return sha512.New()
	}
	return sha256.New()
}

// open starts reading url. retry is true for failures that may pass:
// connection errors, HTTP 5xx and 429.
func (f *Fetcher) open(ctx context.Context, rawURL string) (io.ReadCloser, int64, bool, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, 0, false, err
	}
	if u.Scheme == "file" {
		path, err := f.filePath(u)
		if err != nil {
			return nil, 0, false, err
		}
		fh, err := f.openFile(path)
		if err != nil {
			return nil, 0, false, err
		}
		st, err := fh.Stat()
		if err != nil {
			fh.Close()
			return nil, 0, false, err
		}
		return fh, st.Size(), false, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, 0, false, err
	}
	resp, err := f.httpClient().Do(req)
	if err != nil {
		return nil, 0, ctx.Err() == nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone {
			return nil, 0, false, fmt.Errorf("HTTP %s: %w (if a lock file gave this URL, the archive has moved on since it was made: re-run kiln deb resolve, or build from a store that still caches the file)", resp.Status, ErrGone)
		}
		retry := resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests
		return nil, 0, retry, fmt.Errorf("HTTP %s", resp.Status)
	}
	return resp.Body, resp.ContentLength, false, nil
}

// openFile opens a file:// source for reading only once it is known to be
// a regular file: the path is resolved with O_PATH, which runs no open of
// a device driver and does not block on a FIFO, the type is checked on
// that descriptor, and the same inode is then opened through
// /proc/self/fd, so a rename between the check and the open cannot swap
// in another file. Symlinks are followed (beneath the FileRoots directory
// when there are roots); what counts is the type of the file they lead to.
func (f *Fetcher) openFile(path string) (*os.File, error) {
	var pfd int
	if len(f.FileRoots) == 0 {
		fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		pfd = fd
	} else {
		root, rel, err := f.root(path)
		if err != nil {
			return nil, err
		}
		dfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: root, Err: err}
		}
		fd, err := unix.Openat2(dfd, rel, &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
		})
		unix.Close(dfd)
		switch {
		case errors.Is(err, unix.EXDEV):
			return nil, fmt.Errorf("%w: %s leads out of %s", ErrNotAllowed, path, root)
		case errors.Is(err, unix.ENOSYS):
			return nil, fmt.Errorf("%w: %s: this kernel has no openat2, which confining file:// sources needs", ErrNotAllowed, path)
		case err != nil:
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		pfd = fd
	}
	defer unix.Close(pfd)
	return fsmeta.OpenRegular(pfd, path, nil)
}

func (f *Fetcher) httpClient() *http.Client {
	if f.Client != nil {
		return f.Client
	}
	header := f.HeaderTimeout
	if header <= 0 {
		header = DefaultHeaderTimeout
	}
	// One client per timeout, shared, so that connections are reused and
	// a Fetcher stays a plain value callers may copy.
	if c, ok := clients.Load(header); ok {
		return c.(*http.Client)
	}
	c, _ := clients.LoadOrStore(header, &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: header,
		MaxIdleConnsPerHost:   4,
	}})
	return c.(*http.Client)
}

var clients sync.Map // time.Duration -> *http.Client

// ctxReader ends a copy when ctx is done: a local file read never
// checks a context by itself.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	crashpoint.Hit("sources.fetch.read")
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// stallReader pushes back the stall timer whenever data arrives; the
// timer cancels the download's context, which ends a blocked read.
type stallReader struct {
	r     io.Reader
	timer *time.Timer
	d     time.Duration
}

func (s *stallReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 {
		s.timer.Reset(s.d)
	}
	return n, err
}

// limitReader fails with ErrTooLarge once more than left bytes come.
type limitReader struct {
	r    io.Reader
	left int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	if int64(n) > l.left {
		return int(l.left), ErrTooLarge
	}
	l.left -= int64(n)
	return n, err
}

type progressReader struct {
	r     io.Reader
	f     File
	done  int64
	total int64
	p     Progress
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	p.p(p.f, p.done, p.total, false)
	return n, err
}

// View fills dir with the files given, as dir/org.osbuild.files/<checksum>,
// so that a stage sees the sources it names and no others the store holds
// (which would make a stage that lists the directory depend on the store's
// history). Files are hardlinked from the store: a view costs no copy.
//
// Each file is checked against its checksum first: a stage reads a source
// only when it runs, so that is when damage in the store would reach an
// image. A damaged file is removed and fetched again.
func (f *Fetcher) View(ctx context.Context, dir string, files []File) error {
	sub := filepath.Join(dir, FilesType)
	if err := os.MkdirAll(sub, 0o700); err != nil {
		return fmt.Errorf("sources: %w", err)
	}
	for _, file := range files {
		stored := f.Path(file.Checksum)
		reason, modeOnly, err := check(ctx, stored, file.Checksum)
		if err != nil {
			return err
		}
		switch {
		case modeOnly:
			if err := os.Chmod(stored, 0o600); err != nil {
				return fmt.Errorf("sources: %w", err)
			}
		case reason != "":
			if err := os.Remove(stored); err != nil {
				return fmt.Errorf("sources: removing the damaged %s (%s): %w", stored, reason, err)
			}
			if err := f.fetchOne(ctx, file); err != nil {
				return fmt.Errorf("sources: %s in the store was damaged (%s); fetching it again: %w", file.Checksum, reason, err)
			}
		}
		if err := os.Link(stored, filepath.Join(sub, file.Checksum)); err != nil {
			return fmt.Errorf("sources: %s: %w", file.Checksum, err)
		}
	}
	return nil
}
