package sources

import (
	"encoding/json"
	"net/url"
	"path/filepath"
	"slices"
	"testing"
)

// FuzzSources: Parse reads the untrusted sources section of a manifest.
// It must never panic; what it accepts is sorted by checksum, each
// checksum well formed and once, each URL of a fetchable scheme (a file://
// URL an absolute path on this machine, a file: URL a relative one); and the files it returns, written
// back as a sources section, parse to the same files.
func FuzzSources(f *testing.F) {
	good := sum256("x")
	for _, s := range []string{
		`{"org.osbuild.files": {"urls": {"` + good + `": "https://example.org/x"}}}`,
		`{"org.osbuild.files": {"urls": {"` + good + `": {"url": "file:///x"}}}}`,
		`{"org.osbuild.files": {"urls": {"` + good + `": "file://host/etc/shadow"}}}`,
		`{"org.osbuild.files": {"urls": {"` + good + `": "file:relative"}}}`,
		`{"org.osbuild.files": {"urls": {"` + good + `": "file:%2Fetc/passwd"}}}`,
		`{"org.osbuild.files": {"urls": {"` + good + `": "file:../a%20b"}}}`,
		`{"org.osbuild.files": {"urls": {"` + good + `": "http:///nohost"}}}`,
		`{"org.osbuild.files": {"urls": {"sha256:abc": "file:///x"}}}`,
		`{"org.osbuild.files": {"urls": {}}}`,
		`{"org.osbuild.curl": {}}`,
		`{"org.osbuild.curl": {"items": {"` + good + `": "https://example.org/x"}}, "org.osbuild.files": {"urls": {"` + good + `": "file:///x"}}}`,
		`{"org.osbuild.curl": {"urls": {"` + good + `": {"url": "https://example.org/x", "insecure": false}}}}`,
		`{"org.osbuild.curl": {"items": {"` + good + `": {"url": "https://example.org/x", "secrets": {"name": "org.osbuild.rhsm"}}}}}`,
		`{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var m map[string]json.RawMessage
		if json.Unmarshal(data, &m) != nil {
			return
		}
		files, err := Parse(m)
		if err != nil {
			return
		}
		if !slices.IsSortedFunc(files, func(a, b File) int {
			if a.Checksum < b.Checksum {
				return -1
			}
			if a.Checksum > b.Checksum {
				return 1
			}
			t.Fatalf("checksum %s twice", a.Checksum)
			return 0
		}) {
			t.Fatalf("files not sorted: %v", files)
		}
		urls := map[string]string{}
		for _, file := range files {
			if !IsChecksum(file.Checksum) {
				t.Fatalf("accepted checksum %q", file.Checksum)
			}
			u, err := url.Parse(file.URL)
			if err != nil {
				t.Fatalf("accepted URL %q: %v", file.URL, err)
			}
			switch u.Scheme {
			case "file":
				if u.Opaque != "" {
					// Relative to the manifest: a path that stays one.
					if p, err := url.PathUnescape(u.Opaque); err != nil || p == "" || filepath.IsAbs(p) || u.Host != "" {
						t.Fatalf("accepted relative file URL %q", file.URL)
					}
				} else if (u.Host != "" && u.Host != "localhost") || !filepath.IsAbs(u.Path) {
					t.Fatalf("accepted file URL %q", file.URL)
				}
			case "http", "https":
				if u.Host == "" {
					t.Fatalf("accepted URL without a host %q", file.URL)
				}
			default:
				t.Fatalf("accepted scheme %q", u.Scheme)
			}
			urls[file.Checksum] = file.URL
		}
		raw, err := json.Marshal(map[string]any{FilesType: map[string]any{"urls": urls}})
		if err != nil {
			t.Fatal(err)
		}
		var again map[string]json.RawMessage
		if err := json.Unmarshal(raw, &again); err != nil {
			t.Fatal(err)
		}
		files2, err := Parse(again)
		if err != nil {
			t.Fatalf("re-encoded sources %s refused: %v", raw, err)
		}
		if !slices.Equal(files, files2) {
			t.Fatalf("re-encoded sources parse to %v, first %v", files2, files)
		}
	})
}
