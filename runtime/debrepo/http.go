package debrepo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ErrMirrorURL: a mirror URL kiln will not use.
var ErrMirrorURL = errors.New("invalid mirror URL")

// ParseMirror checks a mirror URL: http, https or file only; no user or
// password (a lock or manifest must not carry credentials), no query or
// fragment (the pool path is appended to it), a host for http(s) and an
// absolute path and no host for file. The result has no trailing slash.
func ParseMirror(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%q: %w: %w", s, ErrMirrorURL, err)
	}
	bad := func(why string) (*url.URL, error) {
		return nil, fmt.Errorf("%q: %s: %w", s, why, ErrMirrorURL)
	}
	if u.User != nil {
		return bad("credentials in a mirror URL are refused")
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.ContainsAny(s, "?#") {
		return bad("a mirror URL has no query or fragment")
	}
	if u.Opaque != "" {
		return bad("not a hierarchical URL")
	}
	if strings.ContainsAny(s, " \t\r\n\\") || strings.Contains(u.Path, "/../") || strings.HasSuffix(u.Path, "/..") {
		return bad("spaces, backslashes and .. are refused")
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return bad("an http(s) mirror needs a host")
		}
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return bad("a file mirror has no host: file:///path")
		}
		if !strings.HasPrefix(u.Path, "/") {
			return bad("a file mirror needs an absolute path: file:///path")
		}
		u.Host = ""
	default:
		return bad("scheme must be http, https or file")
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// HTTPFetcher reads a suite's files from a mirror over http(s) or from a
// local copy (file://). It bounds every response (MaxSize), the wait for
// headers and the whole transfer (Timeout), and honours the context.
type HTTPFetcher struct {
	Mirror *url.URL // from ParseMirror
	Suite  string
	// Client is the HTTP client; nil means one with a 60 s header timeout.
	Client *http.Client
	// Timeout bounds one file's whole transfer; 0 means 10 minutes.
	Timeout time.Duration
	// MaxSize bounds one file; 0 means 512 MiB (the callers hold each
	// file to its listed size too).
	MaxSize int64
	// Progress, when set, is told of each file fetched.
	Progress io.Writer
}

var defaultClient = &http.Client{Transport: &http.Transport{
	Proxy:                 http.ProxyFromEnvironment,
	DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	TLSHandshakeTimeout:   15 * time.Second,
	ResponseHeaderTimeout: 60 * time.Second,
	MaxIdleConnsPerHost:   2,
}}

// URL is where path (relative to dists/<suite>/) is on the mirror.
func (h *HTTPFetcher) URL(path string) string {
	u := *h.Mirror
	u.Path = h.Mirror.Path + "/dists/" + h.Suite + "/" + path
	return u.String()
}

// Fetch is a Fetcher. The whole file is read before it is returned, so a
// transfer cut short is an error here rather than a short file later.
func (h *HTTPFetcher) Fetch(ctx context.Context, path string) (io.ReadCloser, error) {
	if !cleanRelPath(path) || !ValidSuite(h.Suite) {
		return nil, fmt.Errorf("fetch %q of suite %q: %w", path, h.Suite, ErrMalformed)
	}
	max := h.MaxSize
	if max <= 0 {
		max = 512 << 20
	}
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var body io.ReadCloser
	if h.Mirror.Scheme == "file" {
		name := filepath.Join(filepath.FromSlash(h.Mirror.Path), "dists", h.Suite, filepath.FromSlash(path))
		f, err := os.Open(name)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", name, ErrNotFound)
		}
		if err != nil {
			return nil, err
		}
		if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
			f.Close()
			return nil, fmt.Errorf("%s: not a regular file", name)
		}
		body = f
	} else {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.URL(path), nil)
		if err != nil {
			return nil, err
		}
		client := h.Client
		if client == nil {
			client = defaultClient
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		switch {
		case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
			resp.Body.Close()
			return nil, fmt.Errorf("%s: HTTP %s: %w", h.URL(path), resp.Status, ErrNotFound)
		case resp.StatusCode != http.StatusOK:
			resp.Body.Close()
			return nil, fmt.Errorf("%s: HTTP %s", h.URL(path), resp.Status)
		case resp.ContentLength > max:
			resp.Body.Close()
			return nil, fmt.Errorf("%s: %d bytes, more than the limit of %d", h.URL(path), resp.ContentLength, max)
		}
		body = resp.Body
	}
	defer body.Close()
	data, err := readAllCtx(ctx, io.LimitReader(body, max+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", h.URL(path), err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s: more than the limit of %d bytes", h.URL(path), max)
	}
	if h.Progress != nil {
		fmt.Fprintf(h.Progress, "fetched %s (%s)\n", path, humanBytes(int64(len(data))))
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
