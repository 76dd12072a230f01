package treeglob

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// mktree makes the tree of lines "path" (file), "path/" (directory) and
// "path -> target" (symlink) under a temporary directory.
func mktree(t testing.TB, lines ...string) string {
	t.Helper()
	root := t.TempDir()
	for _, l := range lines {
		p, target, link := strings.Cut(l, " -> ")
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case link:
			err = os.Symlink(target, full)
		case strings.HasSuffix(p, "/"):
			err = os.MkdirAll(full, 0o755)
		default:
			err = os.WriteFile(full, nil, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestExpand(t *testing.T) {
	tree := []string{
		"usr/share/doc/a/copyright", "usr/share/doc/b/changelog.gz", "usr/share/doc/.hidden",
		"usr/share/man/man1/ls.1.gz", "usr/share/man/de/man1/ls.1.gz",
		"usr/share/locale/de/LC_MESSAGES/x.mo", "usr/share/locale/locale.alias",
		"var/cache/apt/pkgcache.bin", "var/cache/apt/archives/partial/",
		"lib -> usr/lib", "usr/lib/x.so", "etc/escape -> /", "etc/dots -> ../..",
		"etc/a.conf", "etc/b.conf", "etc/sub/c.conf",
	}
	tests := []struct {
		pattern string
		want    []string
	}{
		{"/usr/share/doc/*", []string{"/usr/share/doc/.hidden", "/usr/share/doc/a", "/usr/share/doc/b"}},
		{"/usr/share/doc", []string{"/usr/share/doc"}},
		{"/var/cache/apt/**", []string{"/var/cache/apt/archives", "/var/cache/apt/pkgcache.bin"}},
		{"/usr/share/man/**/*.gz", []string{"/usr/share/man/de/man1/ls.1.gz", "/usr/share/man/man1/ls.1.gz"}},
		{"/**/*.conf", []string{"/etc/a.conf", "/etc/b.conf", "/etc/sub/c.conf"}},
		{"/usr/share/locale/*/LC_MESSAGES", []string{"/usr/share/locale/de/LC_MESSAGES"}},
		// A link is matched as itself and never descended, whatever it
		// points at.
		{"/lib/x.so", nil},
		{"/lib/*", nil},
		{"/lib", []string{"/lib"}},
		{"/etc/escape/*", nil},
		{"/etc/escape", []string{"/etc/escape"}},
		{"/etc/dots/**", nil},
		{"/**/x.so", []string{"/usr/lib/x.so"}},
		{"/nothing/*", nil},
		{"/etc/a.conf/x", nil},
		// An outer match swallows the inner ones.
		{"/usr/share/**", []string{"/usr/share/doc", "/usr/share/locale", "/usr/share/man"}},
		{"/etc/[ab].conf", []string{"/etc/a.conf", "/etc/b.conf"}},
	}
	root := mktree(t, tree...)
	fsys := Dir(root)
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			p, err := Parse(tt.pattern)
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.Expand(context.Background(), fsys)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	for _, p := range []string{
		"", "/", "usr/share", "/usr/../etc", "/usr/./x", "/usr//x", "/usr/", "/a**", "/x/**b", "/[", "/a\x00b", "/..",
	} {
		if _, err := Parse(p); !errors.Is(err, ErrPattern) {
			t.Errorf("Parse(%q) = %v, want ErrPattern", p, err)
		}
	}
}

func TestExpandCancelled(t *testing.T) {
	root := mktree(t, "a/b/c")
	p, _ := Parse("/**/c")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Expand(ctx, Dir(root)); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func FuzzParseExpand(f *testing.F) {
	for _, s := range []string{"/usr/share/doc/*", "/**/*.gz", "/var/**", "/a/[b-c]/**/d", "/..", "/x\\*"} {
		f.Add(s)
	}
	root := mktree(f, "usr/share/doc/a", "etc/escape -> /", "var/x/y/z")
	fsys := Dir(root)
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse(s)
		if err != nil {
			return
		}
		got, err := p.Expand(context.Background(), fsys)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range got {
			if m == "/" || strings.Contains(m, "..") || strings.HasPrefix(m, "/etc/escape/") {
				t.Fatalf("%q matched %q", s, m)
			}
		}
	})
}
