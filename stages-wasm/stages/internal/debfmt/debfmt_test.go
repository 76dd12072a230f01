package debfmt

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"testing"
)

func TestFnmatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{
		{"/usr/share/doc/*", "/usr/share/doc/a/b/copyright", true}, // "*" crosses "/"
		{"/usr/share/doc/*", "/usr/share/doc", false},
		{"/usr/share/doc/*/copyright", "/usr/share/doc/x/copyright", true},
		{"/usr/share/doc/*/copyright", "/usr/share/doc/x/copyright.gz", false},
		{"/usr/share/locale/*", "/usr/share/locale/de/LC_MESSAGES/x.mo", true},
		{"*.mo", "/a/.b.mo", true}, // no FNM_PERIOD
		{"/a?c", "/abc", true},
		{"/a?c", "/a/c", true}, // no FNM_PATHNAME
		{"/a?c", "/ac", false},
		{"/[ab]x", "/bx", true},
		{"/[!ab]x", "/bx", false},
		{"/[^ab]x", "/cx", true},
		{"/[a-c]x", "/cx", true},
		{"/[]]x", "/]x", true},
		{"/[x", "/[x", true}, // unterminated: a plain "["
		{"/[x", "/x", false},
		{`/\*`, "/*", true},
		{`/\*`, "/a", false},
		{"*a*a*a*a*a*a*a*a*a*b", strings.Repeat("a", 4000), false}, // must not take exponential time
		{"**", "", true},
		{"", "", true},
		{"", "/", false},
	} {
		if got := Fnmatch(tc.pattern, tc.name); got != tc.want {
			t.Errorf("Fnmatch(%q, %q) = %v, want %v", tc.pattern, tc.name, got, tc.want)
		}
	}
}

// FuzzFnmatch checks Fnmatch against path.Match where the two agree by
// definition: no "/" (path.Match's "*" stops there) and no "[" (the
// bracket dialects differ in corner cases).
func FuzzFnmatch(f *testing.F) {
	for _, s := range [][2]string{{"*a?b", "xxab"}, {`\*x`, "*x"}, {"**c", "abc"}, {"a*", ""}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		got := Fnmatch(pattern, name)
		if strings.ContainsAny(pattern+name, "/[") || strings.HasSuffix(pattern, `\`) {
			return
		}
		want, err := path.Match(pattern, name)
		if err == nil && got != want {
			t.Errorf("Fnmatch(%q, %q) = %v, path.Match says %v", pattern, name, got, want)
		}
	})
}

func TestPathFilter(t *testing.T) {
	f := NewPathFilter([]string{"/usr/share/doc/*", "/usr/share/man/*"}, []string{"/usr/share/doc/*/copyright"})
	for _, tc := range []struct {
		path      string
		dirOrLink bool
		want      bool
	}{
		{"/usr/share/doc", true, false},
		{"/usr/share/doc/pkg", true, false}, // kept: an include may match below it
		{"/usr/share/doc/pkg/README", false, true},
		{"/usr/share/doc/pkg/copyright", false, false},
		{"/usr/share/doc/pkg/link", true, false}, // dpkg keeps symlinks there too
		{"/usr/share/man/man1", true, true},
		{"/usr/share/man/man1/x.1.gz", false, true},
		{"/usr/bin/x", false, false},
	} {
		if got := f.Skip(tc.path, tc.dirOrLink); got != tc.want {
			t.Errorf("Skip(%q, %v) = %v, want %v", tc.path, tc.dirOrLink, got, tc.want)
		}
	}
}

func TestParseParagraphs(t *testing.T) {
	text := "Package: a\nDescription: short\n long\n .\n more  \n\n\n# comment\nPackage: b\nDepends: c\n"
	got, err := ParseParagraphs(text)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]Field{{{"Package", "a"}, {"Description", "short\n long\n .\n more"}}, {{"Package", "b"}, {"Depends", "c"}}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if Value(got[1], "depends") != "c" {
		t.Error("Value is not case-blind")
	}
	for _, bad := range []string{" continuation first\n", "no colon\n", "Two words: x\n", ": empty name\n"} {
		if _, err := ParseParagraphs(bad); err == nil {
			t.Errorf("ParseParagraphs(%q) accepted it", bad)
		}
	}
}

func FuzzParseParagraphs(f *testing.F) {
	f.Add("Package: a\nDescription: x\n y\n\nPackage: b\n")
	f.Add("A:\n b\n")
	f.Fuzz(func(t *testing.T, text string) {
		paras, err := ParseParagraphs(text)
		if err != nil {
			return
		}
		// Written back, the paragraphs parse to themselves.
		var b strings.Builder
		for _, p := range paras {
			for _, fl := range p {
				fmt.Fprintf(&b, "%s: %s\n", fl.Name, fl.Value)
			}
			b.WriteString("\n")
		}
		again, err := ParseParagraphs(b.String())
		if err != nil || fmt.Sprintf("%q", again) != fmt.Sprintf("%q", paras) {
			t.Errorf("round trip of %q: %q (%v), want %q", text, again, err, paras)
		}
	})
}

func TestRelations(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"libc6 (>=2.36), a|b (<<4)", "libc6 (>= 2.36), a | b (<< 4)"},
		{"x:any (< 1), y:amd64", "x:any (<= 1), y:amd64"},
		{" perl-base\n (>= 5.36) ,\n  z (= 1:2-3)", "perl-base (>= 5.36), z (= 1:2-3)"},
		{"", ""},
	} {
		deps, err := ParseRelations(tc.in)
		if err != nil {
			t.Errorf("ParseRelations(%q): %v", tc.in, err)
			continue
		}
		if got := FormatRelations(deps); got != tc.want {
			t.Errorf("FormatRelations(ParseRelations(%q)) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{"a (>= )", "a (~ 1)", "a b", "a (>= 1", "a (>= 1) x", "a, , b", "a [amd64]"} {
		if _, err := ParseRelations(bad); err == nil {
			t.Errorf("ParseRelations(%q) accepted it", bad)
		}
	}
	r := Relation{Name: "a", Op: ">=", Version: "1:1"}
	for v, want := range map[string]bool{"1:1": true, "1:0.9": false, "2.0": false, "1:1~rc1": false, "": false} {
		if got := r.SatisfiedBy(v); got != want {
			t.Errorf("%v satisfied by %q = %v, want %v", r, v, got, want)
		}
	}
}

func FuzzParseRelations(f *testing.F) {
	f.Add("libc6 (>= 2.36), a | b (<< 4)")
	f.Add("x:any")
	f.Fuzz(func(t *testing.T, s string) {
		deps, err := ParseRelations(s)
		if err != nil {
			return
		}
		out := FormatRelations(deps)
		again, err := ParseRelations(out)
		if err != nil || FormatRelations(again) != out {
			t.Errorf("%q formats as %q, which parses to %q (%v)", s, out, FormatRelations(again), err)
		}
	})
}

func arArchive(members ...string) []byte {
	var b bytes.Buffer
	b.WriteString("!<arch>\n")
	for i := 0; i < len(members); i += 2 {
		fmt.Fprintf(&b, "%-16s%-12d%-6d%-6d%-8s%-10d`\n", members[i], 0, 0, 0, "100644", len(members[i+1]))
		b.WriteString(members[i+1])
		if len(members[i+1])%2 == 1 {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

func readAll(data []byte) ([]string, error) {
	ar, err := NewArReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	var got []string
	for {
		name, r, err := ar.Next()
		if errors.Is(err, io.EOF) {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		// Read only the first member whole: the others are skipped.
		if len(got) == 0 {
			b, err := io.ReadAll(r)
			if err != nil {
				return got, err
			}
			name += "=" + string(b)
		}
		got = append(got, name)
	}
}

func TestArReader(t *testing.T) {
	got, err := readAll(arArchive("debian-binary", "2.0\n", "control.tar/", "odd", "data.tar", ""))
	if err != nil || strings.Join(got, ",") != "debian-binary=2.0\n,control.tar,data.tar" {
		t.Errorf("got %q, %v", got, err)
	}
	good := arArchive("a", "xyz")
	for name, bad := range map[string][]byte{
		"no magic":        []byte("!<arch\n"),
		"short header":    good[:30],
		"bad terminator":  bytes.Replace(good, []byte("`\n"), []byte("x\n"), 1),
		"negative size":   bytes.Replace(good, []byte("3         `"), []byte("-3        `"), 1),
		"truncated data":  good[:len(good)-3],
		"size past end":   bytes.Replace(good, []byte("3         `"), []byte("300       `"), 1),
		"not a size":      bytes.Replace(good, []byte("3         `"), []byte("0x3       `"), 1),
		"garbage trailer": append(slicesClone(good), []byte("junk")...),
	} {
		if _, err := readAll(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func slicesClone(b []byte) []byte { return append([]byte(nil), b...) }

func FuzzArReader(f *testing.F) {
	f.Add(arArchive("debian-binary", "2.0\n", "control.tar.xz", "abc"))
	f.Add([]byte("!<arch>\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = readAll(data) // must end, without panicking
	})
}
