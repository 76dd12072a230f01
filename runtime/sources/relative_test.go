package sources

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRelativeFileURLParse (issue 11 item 8): file:x.tar is a path
// relative to the manifest; file://work/x.tar names the host "work" and is
// refused with the two URLs its writer may have meant.
func TestRelativeFileURLParse(t *testing.T) {
	good := sum256("x")
	for _, tc := range []struct {
		name, url string
		want      string // error substring; "" means accepted
	}{
		{"relative", "file:x.tar", ""},
		{"relative in a directory", "file:work/x.tar", ""},
		{"relative up", "file:../x.tar", ""},
		{"escaped", "file:my%20x.tar", ""},
		{"absolute without authority", "file:/work/x.tar", ""},
		{"host", "file://work/x.tar",
			`host part "work": did you mean file:work/x.tar (relative to the manifest) or file:///work/x.tar?`},
		{"host, escaped path", "file://work/a%20b.tar", `did you mean file:work/a%20b.tar (relative to the manifest) or file:///work/a%20b.tar?`},
		{"absolute once decoded", "file:%2Fetc%2Fshadow", "is not relative once decoded: write file:///etc/shadow"},
		{"bad escape", "file:a%zz", "invalid URL escape"},
		{"query", "file:x.tar?y", "no user, query or fragment"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, _ := json.Marshal(map[string]any{FilesType: map[string]any{"urls": map[string]string{good: tc.url}}})
			var m map[string]json.RawMessage
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatal(err)
			}
			_, err := Parse(m)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Parse(%q) = %v", tc.url, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse(%q) error %v, want %q", tc.url, err, tc.want)
			}
		})
	}
}

// TestRelativeFileSource (issue 11 item 8): a relative file URL is read
// from beneath Fetcher.BaseDir (the manifest's directory), and is then an
// ordinary file:// source: confined by FileRoots, a FIFO refused without
// being opened, and refused when there is no manifest directory.
func TestRelativeFileSource(t *testing.T) {
	base := t.TempDir()
	for name, content := range map[string]string{"dl/x.tar": "relative content", "my x.tar": "spaced", "../outside": "outside"} {
		p := filepath.Join(base, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mkfifo(filepath.Join(base, "dl", "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(filepath.Join(base, "..", "outside")) })
	for _, tc := range []struct {
		name, url, content string
		base               string
		roots              []string
		want               error // nil: fetched with content
		msg                string
	}{
		{name: "in a directory", url: "file:dl/x.tar", content: "relative content", base: base},
		{name: "escaped", url: "file:my%20x.tar", content: "spaced", base: base},
		{name: "inside the roots", url: "file:dl/x.tar", content: "relative content", base: base, roots: []string{filepath.Join(base, "dl")}},
		{name: "up, no roots", url: "file:../outside", content: "outside", base: base},
		{name: "up, out of the roots", url: "file:../outside", content: "outside", base: base, roots: []string{base},
			want: ErrNotAllowed, msg: "outside the directories"},
		{name: "fifo", url: "file:dl/fifo", content: "", base: base, want: ErrNotRegular, msg: "(a FIFO)"},
		{name: "no manifest directory", url: "file:dl/x.tar", content: "relative content",
			want: ErrNotAllowed, msg: "relative to the manifest's directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t)
			fx.f.BaseDir, fx.f.FileRoots = tc.base, tc.roots
			file := File{sum256(tc.content), tc.url}
			err := fx.f.Fetch(t.Context(), []File{file})
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				got, err := os.ReadFile(fx.f.Path(file.Checksum))
				if err != nil || string(got) != tc.content {
					t.Errorf("stored %q, %v; want %q", got, err, tc.content)
				}
				return
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Fetch = %v, want %v with %q", err, tc.want, tc.msg)
			}
			fx.assertNoDebris(t, file.Checksum)
		})
	}
}
