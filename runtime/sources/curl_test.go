package sources

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func parseDoc(t *testing.T, doc string) ([]File, error) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatal(err)
	}
	return Parse(m)
}

// TestParseCurl follows osbuild's schema for org.osbuild.curl: "items" or
// "urls" (one of them), each a URL string or a closed {"url", "insecure",
// "secrets"} object; kiln refuses what it cannot honour.
func TestParseCurl(t *testing.T) {
	a, b := sum256("a"), sum256("b")
	for _, tc := range []struct {
		name, doc string
		want      []File
		err       string
		sentinel  error
	}{
		{name: "items, short form", doc: `{"org.osbuild.curl": {"items": {"` + a + `": "https://example.org/a"}}}`,
			want: []File{{a, "https://example.org/a"}}},
		{name: "items, object form", doc: `{"org.osbuild.curl": {"items": {"` + a + `": {"url": "https://example.org/a"}}}}`,
			want: []File{{a, "https://example.org/a"}}},
		{name: "urls, as osbuild also accepts", doc: `{"org.osbuild.curl": {"urls": {"` + a + `": {"url": "file:///a", "insecure": false}}}}`,
			want: []File{{a, "file:///a"}}},
		{name: "both types, shared checksum fetched once, sorted", doc: `{"org.osbuild.files": {"urls": {"` + a + `": "file:///fa", "` + b + `": "file:///fb"}},
			"org.osbuild.curl": {"items": {"` + a + `": "https://example.org/a"}}}`,
			want: slices.SortedFunc(slices.Values([]File{{a, "https://example.org/a"}, {b, "file:///fb"}}), func(x, y File) int { return strings.Compare(x.Checksum, y.Checksum) })},
		{name: "empty", doc: `{"org.osbuild.curl": {"items": {}}}`},
		{name: "neither items nor urls", doc: `{"org.osbuild.curl": {}}`, err: `needs "items"`},
		{name: "both items and urls", doc: `{"org.osbuild.curl": {"items": {}, "urls": {}}}`, err: `both "items" and "urls"`},
		{name: "unknown property", doc: `{"org.osbuild.curl": {"items": {}, "mirror": "x"}}`, err: `unknown property "mirror"`},
		{name: "unknown item property", doc: `{"org.osbuild.curl": {"items": {"` + a + `": {"url": "file:///a", "mode": 4095}}}}`, err: `unknown property "mode"`},
		{name: "secrets", doc: `{"org.osbuild.curl": {"items": {"` + a + `": {"url": "https://example.org/a", "secrets": {"name": "org.osbuild.rhsm"}}}}}`,
			sentinel: ErrUnsupported, err: `"secrets"`},
		{name: "insecure", doc: `{"org.osbuild.curl": {"items": {"` + a + `": {"url": "https://example.org/a", "insecure": true}}}}`,
			sentinel: ErrUnsupported, err: `"insecure": true`},
		{name: "insecure not bool", doc: `{"org.osbuild.curl": {"items": {"` + a + `": {"url": "https://example.org/a", "insecure": "no"}}}}`, err: "boolean"},
		{name: "md5, which osbuild admits", doc: `{"org.osbuild.curl": {"items": {"md5:d41d8cd98f00b204e9800998ecf8427e": "https://example.org/a"}}}`,
			err: `$.sources["org.osbuild.curl"].items["md5:d41d8cd98f00b204e9800998ecf8427e"]: checksum`},
		{name: "no url", doc: `{"org.osbuild.curl": {"items": {"` + a + `": {}}}}`, err: "expected a URL"},
		{name: "url not a string", doc: `{"org.osbuild.curl": {"items": {"` + a + `": {"url": 1}}}}`, err: "expected a URL"},
		{name: "ftp", doc: `{"org.osbuild.curl": {"items": {"` + a + `": "ftp://example.org/a"}}}`, err: "not a file://"},
		{name: "file host", doc: `{"org.osbuild.curl": {"items": {"` + a + `": "file://host/etc/shadow"}}}`, err: "host part"},
		{name: "a bad url in the second type still refuses", doc: `{"org.osbuild.curl": {"items": {"` + a + `": "https://example.org/a"}},
			"org.osbuild.files": {"urls": {"` + a + `": "ftp://example.org/a"}}}`, err: `$.sources["org.osbuild.files"].urls`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files, err := parseDoc(t, tc.doc)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				if tc.sentinel != nil && !errors.Is(err, tc.sentinel) {
					t.Errorf("err = %v, want %v", err, tc.sentinel)
				}
				var pe *ParseError
				if !errors.As(err, &pe) {
					t.Errorf("err %T is not a *ParseError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(files, tc.want) {
				t.Errorf("files = %v, want %v", files, tc.want)
			}
		})
	}
}

// TestCurlSharesFilesStore fetches one file through org.osbuild.curl and
// another through org.osbuild.files, and a checksum named by both, then
// checks they land in, and are viewed from, the one content directory, and
// that the store check covers them.
func TestCurlSharesFilesStore(t *testing.T) {
	fx := newFixture(t)
	local := filepath.Join(t.TempDir(), "local")
	if err := os.WriteFile(local, []byte("local content"), 0o644); err != nil {
		t.Fatal(err)
	}
	good, loc := sum256("good content"), sum256("local content")
	files, err := parseDoc(t, `{
		"org.osbuild.curl": {"items": {"`+good+`": {"url": "`+fx.srv.URL+`/good"}, "`+loc+`": "`+fx.srv.URL+`/missing"}},
		"org.osbuild.files": {"urls": {"`+loc+`": "file://`+local+`"}}}`)
	if err != nil {
		t.Fatal(err)
	}
	// The curl URL of the shared checksum (sorted first) is the one kept;
	// it 404s, so fetching must fail for it, and the files URL is not
	// silently substituted.
	if len(files) != 2 {
		t.Fatalf("files %v", files)
	}
	if err := fx.f.Fetch(t.Context(), files); !errors.Is(err, ErrFetch) {
		t.Fatalf("fetch with the 404 curl URL: %v, want ErrFetch", err)
	}
	files, err = parseDoc(t, `{
		"org.osbuild.curl": {"items": {"`+good+`": {"url": "`+fx.srv.URL+`/good"}, "`+loc+`": "file://`+local+`"}},
		"org.osbuild.files": {"urls": {"`+loc+`": "`+fx.srv.URL+`/missing"}}}`)
	if err != nil {
		t.Fatal(err)
	}
	if err := fx.f.Fetch(t.Context(), files); err != nil {
		t.Fatal(err)
	}
	for _, sum := range []string{good, loc} {
		if _, err := os.Stat(filepath.Join(fx.st.Root(), "sources", FilesType, sum)); err != nil {
			t.Errorf("%s not under %s: %v", sum, FilesType, err)
		}
	}
	view := t.TempDir()
	if err := fx.f.View(t.Context(), view, files); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(view, FilesType, good)); err != nil || string(b) != "good content" {
		t.Errorf("view: %q, %v", b, err)
	}
	// Damage the curl-fetched file: the store check finds it.
	if err := os.WriteFile(fx.f.Path(good), []byte("evil"), 0o600); err != nil {
		t.Fatal(err)
	}
	problems, err := Verify(t.Context(), fx.f.Dir, false)
	if err != nil || len(problems) != 1 || problems[0].Checksum != good {
		t.Errorf("Verify = %v, %v; want the damaged %s", problems, err, good)
	}
	fx.assertNoDebris(t)
}
