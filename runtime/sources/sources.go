// Package sources fetches a manifest's sources into the store before any
// stage runs. kiln supports osbuild's org.osbuild.files: files named by
// their checksum and fetched from file://, http:// or https:// URLs. Each
// file is downloaded into a locked directory under the store's tmp/,
// verified while it streams, and only then renamed to
// <store>/sources/org.osbuild.files/<checksum>, so a wrong checksum, a
// failed or interrupted download never leaves a file under a valid name.
// Files already there are reused, so fully cached builds work offline.
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
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kilnbuild/kiln/store/crashpoint"
)

// FilesType is the one source type kiln fetches.
const FilesType = "org.osbuild.files"

// Sentinel errors, for errors.Is.
var (
	ErrChecksum    = errors.New("checksum mismatch")
	ErrFetch       = errors.New("fetch failed")
	ErrUnsupported = errors.New("unsupported source")
)

// File is one file to fetch.
type File struct {
	Checksum string // "sha256:<hex>", "sha384:<hex>" or "sha512:<hex>"
	URL      string
}

var checksumRE = regexp.MustCompile(`^(sha256:[0-9a-f]{64}|sha384:[0-9a-f]{96}|sha512:[0-9a-f]{128})$`)

// Parse reads a manifest's sources section. It rejects source types kiln
// does not know, malformed checksums and URLs of other schemes.
func Parse(sources map[string]json.RawMessage) ([]File, error) {
	var files []File
	for typ, raw := range sources {
		path := "$.sources[" + fmt.Sprintf("%q", typ) + "]"
		if typ != FilesType {
			return nil, fmt.Errorf("%s: %w %q (kiln fetches %s)", path, ErrUnsupported, typ, FilesType)
		}
		var spec struct {
			URLs map[string]json.RawMessage `json:"urls"`
		}
		if err := json.Unmarshal(raw, &spec); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		for sum, u := range spec.URLs {
			at := fmt.Sprintf("%s.urls[%q]", path, sum)
			if !checksumRE.MatchString(sum) {
				return nil, fmt.Errorf("%s: checksum must be sha256:, sha384: or sha512: and lowercase hex of the right length", at)
			}
			var s string
			if err := json.Unmarshal(u, &s); err != nil {
				var obj struct {
					URL string `json:"url"`
				}
				if err := json.Unmarshal(u, &obj); err != nil || obj.URL == "" {
					return nil, fmt.Errorf("%s: expected a URL string or {\"url\": ...}", at)
				}
				s = obj.URL
			}
			pu, err := url.Parse(s)
			if err != nil || !slices.Contains([]string{"file", "http", "https"}, pu.Scheme) {
				return nil, fmt.Errorf("%s: %q is not a file://, http:// or https:// URL", at, s)
			}
			files = append(files, File{Checksum: sum, URL: s})
		}
	}
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Checksum, b.Checksum) })
	return files, nil
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
	Dir      string                          // <store>/sources
	Temp     func() (TempDir, error)         // a locked directory on the same filesystem as Dir
	Client   *http.Client                    // nil: a client with sane timeouts
	Attempts int                             // per file for transient failures; 0 means 3
	Jobs     int                             // parallel downloads; 0 means 4
	Progress Progress                        // may be nil
	backoff  func(attempt int) time.Duration // tests shorten it
}

// Path returns where the file with checksum sum is stored.
func (f *Fetcher) Path(sum string) string { return filepath.Join(f.Dir, FilesType, sum) }

// Fetch makes every file available, downloading what is missing in
// parallel. The first failure cancels the rest.
func (f *Fetcher) Fetch(ctx context.Context, files []File) error {
	if err := os.MkdirAll(filepath.Join(f.Dir, FilesType), 0o755); err != nil {
		return fmt.Errorf("sources: %w", err)
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

func (f *Fetcher) fetchOne(ctx context.Context, file File) error {
	final := f.Path(file.Checksum)
	if st, err := os.Stat(final); err == nil && st.Mode().IsRegular() {
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

// download fetches once into a temporary directory, verifies, and renames
// into place. retry reports whether another attempt could succeed.
func (f *Fetcher) download(ctx context.Context, file File, final string) (retry bool, err error) {
	fail := func(retry bool, format string, args ...any) (bool, error) {
		return retry, fmt.Errorf("source %s from %s: %w: %s", file.Checksum, file.URL, ErrFetch, fmt.Sprintf(format, args...))
	}
	body, size, retry, err := f.open(ctx, file.URL)
	if err != nil {
		return fail(retry, "%v", err)
	}
	defer body.Close()
	tmp, err := f.Temp()
	if err != nil {
		return false, err
	}
	defer tmp.Remove()
	out, err := os.OpenFile(filepath.Join(tmp.Path(), "data"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return false, fmt.Errorf("sources: %w", err)
	}
	defer out.Close()
	algo, want, _ := strings.Cut(file.Checksum, ":")
	h := newHash(algo)
	var src io.Reader = ctxReader{ctx, body}
	if f.Progress != nil {
		src = &progressReader{r: src, f: file, total: size, p: f.Progress}
	}
	if _, err := io.Copy(io.MultiWriter(out, h), src); err != nil {
		if ctx.Err() != nil {
			return false, fmt.Errorf("source %s from %s: %w", file.Checksum, file.URL, ctx.Err())
		}
		return fail(true, "download interrupted: %v", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return false, fmt.Errorf("source %s from %s: %w: the download has %s:%s", file.Checksum, file.URL, ErrChecksum, algo, got)
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
		// Only regular files: reading a FIFO or a device could block
		// forever or never end.
		fh, err := os.OpenFile(u.Path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			return nil, 0, false, err
		}
		st, err := fh.Stat()
		if err == nil && !st.Mode().IsRegular() {
			err = fmt.Errorf("%s is not a regular file", u.Path)
		}
		if err != nil {
			fh.Close()
			return nil, 0, false, err
		}
		return fh, st.Size(), false, nil
	}
	client := f.Client
	if client == nil {
		client = defaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, 0, false, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0, ctx.Err() == nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		retry := resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests
		return nil, 0, retry, fmt.Errorf("HTTP %s", resp.Status)
	}
	return resp.Body, resp.ContentLength, false, nil
}

var defaultClient = &http.Client{
	Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		MaxIdleConnsPerHost:   4,
	},
}

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
func (f *Fetcher) View(dir string, files []File) error {
	sub := filepath.Join(dir, FilesType)
	if err := os.MkdirAll(sub, 0o755); err != nil {
		return fmt.Errorf("sources: %w", err)
	}
	for _, file := range files {
		if err := os.Link(f.Path(file.Checksum), filepath.Join(sub, file.Checksum)); err != nil {
			return fmt.Errorf("sources: %s: %w", file.Checksum, err)
		}
	}
	return nil
}
