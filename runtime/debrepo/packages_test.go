package debrepo

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/ulikunitz/xz"
)

func readFixture(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/Packages")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFetchPackagesVerified(t *testing.T) {
	plain := readFixture(t)
	for _, ext := range []string{".xz", ".gz", ""} {
		t.Run("Packages"+ext, func(t *testing.T) {
			comp := map[string][]byte{".xz": xzBytes(t, plain), ".gz": gzBytes(t, plain), "": plain}[ext]
			listed := map[string][]byte{"main/binary-amd64/Packages": plain, "main/binary-amd64/Packages" + ext: comp}
			rel, err := ParseRelease([]byte(releaseText("", listed)))
			if err != nil {
				t.Fatal(err)
			}
			mf := &mapFetcher{files: map[string][]byte{"main/binary-amd64/Packages" + ext: comp}}
			pkgs, err := FetchPackages(context.Background(), rel, mf.fetch, "main", "amd64")
			if err != nil {
				t.Fatal(err)
			}
			checkFixturePackages(t, pkgs)
		})
	}
}

func checkFixturePackages(t *testing.T, pkgs []Package) {
	t.Helper()
	if len(pkgs) != 5 {
		t.Fatalf("%d packages, want 5", len(pkgs))
	}
	bf := pkgs[0]
	if bf.Name != "base-files" || bf.Version.String() != "12.4+deb12u5" || !bf.Essential || bf.Priority != "required" ||
		bf.Size != 70652 || bf.Filename != "pool/main/b/base-files/base-files_12.4+deb12u5_amd64.deb" || bf.Architecture != "amd64" {
		t.Errorf("base-files: %+v", bf)
	}
	if got := bf.Replaces.String(); got != "base, dpkg (<= 1.15.0), miscutils" {
		t.Errorf("Replaces = %q", got)
	}
	if got := bf.PreDepends.String(); got != "awk" {
		t.Errorf("Pre-Depends = %q", got)
	}
	if len(bf.Breaks.Relations) != 3 || bf.Breaks.Relations[2].Possibilities[0].Version.Number != "2.1b.20080616-5.2~" {
		t.Errorf("Breaks = %v", bf.Breaks)
	}
	if got := pkgs[1].Provides.String(); got != "awk" {
		t.Errorf("mawk Provides = %q", got)
	}
	if got := pkgs[2].Conflicts.String(); got != "libc6-dev (<< 2.36)" {
		t.Errorf("libc6 Conflicts = %q", got)
	}
	if got := pkgs[3].PreDepends.String(); got != "libc6" {
		t.Errorf("folded Pre-Depends = %q", got)
	}
	alt := pkgs[4]
	if alt.Version.Epoch != 1 || len(alt.Depends.Relations) != 2 || len(alt.Depends.Relations[0].Possibilities) != 2 ||
		alt.Depends.Relations[1].Possibilities[0].Arch == nil {
		t.Errorf("default-mta-alt Depends = %#v", alt.Depends)
	}
}

func TestFetchPackagesRefused(t *testing.T) {
	plain := readFixture(t)
	xzd := xzBytes(t, plain)
	name := "main/binary-amd64/Packages.xz"
	flipped := append([]byte{}, xzd...)
	flipped[len(flipped)/2] ^= 1
	truncated := xzd[:len(xzd)-8]

	relFor := func(listed map[string][]byte) *Release {
		rel, err := ParseRelease([]byte(releaseText("", listed)))
		if err != nil {
			t.Fatal(err)
		}
		return rel
	}
	cases := []struct {
		name   string
		listed map[string][]byte // what the Release lists
		served []byte            // what the mirror serves for Packages.xz
		want   error
	}{
		{"wrong digest", map[string][]byte{name: xzd}, flipped, ErrDigestMismatch},
		{"wrong size", map[string][]byte{name: xzd}, append(append([]byte{}, xzd...), 0), ErrSizeMismatch},
		{"short", map[string][]byte{name: xzd}, truncated, ErrSizeMismatch},
		// A Release that itself lists a truncated xz (so the digest checks
		// out) must still be refused at decompression.
		{"truncated xz", map[string][]byte{name: truncated}, truncated, io.ErrUnexpectedEOF},
		{"decompressed differs", map[string][]byte{name: xzd, "main/binary-amd64/Packages": append([]byte("#"), plain...)}, xzd, ErrSizeMismatch},
		{"decompressed digest differs", map[string][]byte{name: xzd, "main/binary-amd64/Packages": append([]byte("p"), plain[1:]...)}, xzd, ErrDigestMismatch},
		{"not listed", map[string][]byte{"main/binary-arm64/Packages.xz": xzd}, xzd, ErrNotListed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mf := &mapFetcher{files: map[string][]byte{name: c.served}}
			pkgs, err := FetchPackages(context.Background(), relFor(c.listed), mf.fetch, "main", "amd64")
			if err == nil {
				t.Fatalf("accepted (%d packages)", len(pkgs))
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

// A form the mirror lacks is skipped for the next; one that fails
// verification is not.
func TestFetchPackagesFallsBackOnlyOnNotFound(t *testing.T) {
	plain := readFixture(t)
	gzd := gzBytes(t, plain)
	listed := map[string][]byte{"main/binary-amd64/Packages.xz": xzBytes(t, plain), "main/binary-amd64/Packages.gz": gzd}
	rel, err := ParseRelease([]byte(releaseText("", listed)))
	if err != nil {
		t.Fatal(err)
	}
	mf := &mapFetcher{files: map[string][]byte{"main/binary-amd64/Packages.gz": gzd}}
	if _, err := FetchPackages(context.Background(), rel, mf.fetch, "main", "amd64"); err != nil {
		t.Fatal(err)
	}
	if strings.Join(mf.asked, " ") != "main/binary-amd64/Packages.xz main/binary-amd64/Packages.gz" {
		t.Errorf("asked %v", mf.asked)
	}
	mf = &mapFetcher{files: map[string][]byte{"main/binary-amd64/Packages.xz": []byte("bad"), "main/binary-amd64/Packages.gz": gzd}}
	if _, err := FetchPackages(context.Background(), rel, mf.fetch, "main", "amd64"); !errors.Is(err, ErrSizeMismatch) {
		t.Fatalf("got %v, want ErrSizeMismatch", err)
	}
}

func TestParsePackagesRefusesUnverifiable(t *testing.T) {
	ok := "Package: foo\nVersion: 1.0\nArchitecture: amd64\nFilename: pool/f/foo.deb\nSize: 1\nSHA256: " + strings.Repeat("a", 64) + "\n"
	cases := map[string]string{
		"no SHA256":       strings.Replace(ok, "SHA256: ", "MD5sum: ", 1),
		"bad version":     strings.Replace(ok, "1.0", "a1.0", 1),
		"escaping file":   strings.Replace(ok, "pool/f/foo.deb", "../foo.deb", 1),
		"bad size":        strings.Replace(ok, "Size: 1", "Size: x", 1),
		"bad depends":     ok + "Depends: foo (>> \n",
		"bad essential":   ok + "Essential: maybe\n",
		"duplicate field": ok + "Filename: pool/other.deb\n",
		"bad name":        strings.Replace(ok, "Package: foo", "Package: Foo_", 1),
		"NUL in depends":  ok + "Depends: libfoo\x00, libbar\n",
	}
	if _, err := ParsePackages(strings.NewReader(ok)); err != nil {
		t.Fatalf("base stanza: %v", err)
	}
	for name, s := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := ParsePackages(strings.NewReader(s)); !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
}

// Versions chosen for the corners of dpkg's algorithm; every pair is checked
// against the real dpkg --compare-versions.
var trickyVersions = []string{
	"1.0", "1.0-1", "1.0-0", "1.0~rc1", "1.0~rc1-1", "1.0~~", "1.0~", "1.0+", "1.0.0",
	"1:0.9", "0:1.0", "2:0", "1.0a", "1.0-1+deb12u1", "1.0-1~bpo12+1", "10.0", "9.99",
	"1.2.3-4.5", "1.2.3-4.5.1", "a", "1.0-1ubuntu1", "1.01", "1.001", "0", "1.0+dfsg-1", "1.0.",
}

func TestCompareVersionsMatchesDpkg(t *testing.T) {
	dpkg, err := exec.LookPath("dpkg")
	if err != nil {
		t.Skip("dpkg not installed")
	}
	var valid []string
	for _, v := range trickyVersions {
		_, err := ParseVersion(v)
		// dpkg --validate-version is the reference for what parses.
		dpkgOK := exec.Command(dpkg, "--validate-version", v).Run() == nil
		if (err == nil) != dpkgOK {
			t.Errorf("ParseVersion(%q) err=%v, dpkg accepts=%v", v, err, dpkgOK)
		}
		if err == nil {
			valid = append(valid, v)
		}
	}
	for _, a := range valid {
		for _, b := range valid {
			got, err := CompareVersions(a, b)
			if err != nil {
				t.Fatal(err)
			}
			if exec.Command(dpkg, "--compare-versions", a, "lt", b).Run() == nil {
				if got >= 0 {
					t.Errorf("%s < %s by dpkg, Compare = %d", a, b, got)
				}
			} else if exec.Command(dpkg, "--compare-versions", a, "eq", b).Run() == nil {
				if got != 0 {
					t.Errorf("%s = %s by dpkg, Compare = %d", a, b, got)
				}
			} else if got <= 0 {
				t.Errorf("%s > %s by dpkg, Compare = %d", a, b, got)
			}
		}
	}
}

func FuzzParsePackages(f *testing.F) {
	f.Add([]byte("Package: foo\nVersion: 1.0\nArchitecture: amd64\nFilename: pool/f.deb\nSize: 1\nSHA256: " + strings.Repeat("a", 64) + "\nDepends: a | b (>= 1), c:any\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pkgs, err := ParsePackages(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, p := range pkgs {
			if !cleanRelPath(p.Filename) || len(p.SHA256) != 64 || p.Size < 0 {
				t.Fatalf("accepted unverifiable %+v", p)
			}
		}
	})
}

// The relation parser is a third-party one fed mirror data: it must return
// errors, never panic, and what it accepts must name valid packages.
func FuzzParseRelations(f *testing.F) {
	for _, s := range []string{"a | b (>= 1:2~x), c:any [amd64] <!nocheck>", "libc6 (>> 2.3", "x (= ${binary:Version})", "a,,b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseRelations(s)
		if err != nil {
			return
		}
		for _, r := range d.Relations {
			for _, p := range r.Possibilities {
				if !validPackageName(p.Name) || strings.ContainsRune(s, 0) {
					t.Fatalf("accepted name %q", p.Name)
				}
			}
		}
	})
}

func xzBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := xz.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// mapFetcher serves files from memory and counts requests.
type mapFetcher struct {
	files map[string][]byte
	asked []string
}

func (m *mapFetcher) fetch(ctx context.Context, path string) (io.ReadCloser, error) {
	m.asked = append(m.asked, path)
	b, ok := m.files[path]
	if !ok {
		return nil, fmt.Errorf("%s: %w", path, ErrNotFound)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}
