package debrepo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
)

// fakeArchive serves a signed InRelease and a Packages index from memory,
// as a mirror's dists/<suite>/ would.
type fakeArchive map[string][]byte

func (a fakeArchive) fetch(_ context.Context, path string) (io.ReadCloser, error) {
	b, ok := a[path]
	if !ok {
		return nil, ErrNotFound
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func newArchive(t *testing.T, key *openpgp.Entity) fakeArchive {
	t.Helper()
	pkgs, err := os.ReadFile("testdata/resolve/Packages")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"main/binary-amd64/Packages": pkgs}
	return fakeArchive{
		"InRelease":                  clearsignText(t, key, releaseText("", files)),
		"main/binary-amd64/Packages": pkgs,
	}
}

func archiveRequest(t *testing.T, key *openpgp.Entity, a fakeArchive) ArchiveRequest {
	return ArchiveRequest{
		Suite: "bookworm", Components: []string{"main"}, Architecture: "amd64",
		Packages: requests(t, "base-files", "app-alt"),
		Keyring:  openpgp.EntityList{key},
		Verify:   VerifyOptions{Now: testNow},
		Fetch:    a.fetch,
	}
}

// TestResolveArchiveTampered goes through the entry point the lock command
// uses: a good archive gives a lock; one changed byte in the InRelease or
// the Packages index is refused before anything is resolved.
func TestResolveArchiveTampered(t *testing.T) {
	key := newKey(t, 0)
	other := newKey(t, 0)
	tests := []struct {
		name    string
		mutate  func(a fakeArchive)
		keyring openpgp.EntityList
		want    error
	}{
		{name: "good"},
		{name: "InRelease text changed", want: ErrBadSignature, mutate: func(a fakeArchive) {
			a["InRelease"] = bytes.Replace(a["InRelease"], []byte("Codename: bookworm"), []byte("Codename: bookwork"), 1)
		}},
		{name: "InRelease digest of Packages changed", want: ErrBadSignature, mutate: func(a fakeArchive) {
			i := bytes.Index(a["InRelease"], []byte("SHA256:\n ")) + len("SHA256:\n ")
			b := a["InRelease"]
			b[i] ^= 1
		}},
		{name: "unsigned field appended", want: ErrOutsideSignature, mutate: func(a fakeArchive) {
			a["InRelease"] = append(a["InRelease"], []byte("SHA256:\n 00 1 x\n")...)
		}},
		{name: "Packages changed, same size", want: ErrDigestMismatch, mutate: func(a fakeArchive) {
			p := bytes.Clone(a["main/binary-amd64/Packages"])
			i := bytes.Index(p, []byte("Version: 12.4+deb12u5"))
			p[i+len("Version: 12.4+deb12u")] = '9'
			a["main/binary-amd64/Packages"] = p
		}},
		{name: "Packages grown", want: ErrSizeMismatch, mutate: func(a fakeArchive) {
			a["main/binary-amd64/Packages"] = append(bytes.Clone(a["main/binary-amd64/Packages"]), "\nPackage: evil\n"...)
		}},
		{name: "signed by another key", want: ErrUnknownSigner, keyring: openpgp.EntityList{other}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newArchive(t, key)
			if tc.mutate != nil {
				tc.mutate(a)
			}
			req := archiveRequest(t, key, a)
			if tc.keyring != nil {
				req.Keyring = tc.keyring
			}
			l, err := ResolveArchive(context.Background(), req)
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
				if l != nil {
					t.Fatal("a lock came with the error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range l.Packages {
				got = append(got, p.Name)
			}
			if strings.Join(got, " ") != "gcc-12-base libc6 libgcc-s1 mawk base-files postfix-x app-alt" {
				t.Errorf("packages %v", got)
			}
			if l.Source.InRelease.SHA256 != sha(a["InRelease"]) {
				t.Errorf("inRelease.sha256 %s, want %s", l.Source.InRelease.SHA256, sha(a["InRelease"]))
			}
			if l.Source.InRelease.Signers[0] != strings.ToUpper(fingerprint(key)) {
				t.Errorf("signers %v", l.Source.InRelease.Signers)
			}
			if l.Source.InRelease.Date != "2024-08-10T09:27:16Z" || l.Source.Codename != "bookworm" {
				t.Errorf("source %+v", l.Source)
			}
		})
	}
}

func fingerprint(e *openpgp.Entity) string {
	const digits = "0123456789abcdef"
	var b strings.Builder
	for _, c := range e.PrimaryKey.Fingerprint {
		b.WriteByte(digits[c>>4])
		b.WriteByte(digits[c&15])
	}
	return b.String()
}

// TestLockGolden checks the lock's bytes for a fixed resolution, and that
// what is written reads back the same.
func TestLockGolden(t *testing.T) {
	key := newKey(t, 0)
	a := newArchive(t, key)
	l, err := ResolveArchive(context.Background(), archiveRequest(t, key, a))
	if err != nil {
		t.Fatal(err)
	}
	// The key is made per run; pin what depends on it for the golden file.
	l.Source.InRelease.SHA256 = strings.Repeat("ab", 32)
	l.Source.InRelease.Signers = []string{strings.Repeat("0123456789ABCDEF", 2) + "01234567"}
	out := filepath.Join(t.TempDir(), "packages.lock.json")
	if err := WriteLock(out, l); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	golden := "testdata/resolve/packages.lock.json"
	if os.Getenv("KILN_UPDATE_GOLDEN") != "" {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("lock differs from %s (KILN_UPDATE_GOLDEN=1 rewrites it):\n%s", golden, got)
	}
	back, err := ReadLock(out)
	if err != nil {
		t.Fatal(err)
	}
	again, err := back.Marshal()
	if err != nil || !bytes.Equal(again, got) {
		t.Errorf("read back and marshalled again differs: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(out)); len(entries) != 1 {
		t.Errorf("WriteLock left %d entries, want the lock alone", len(entries))
	}
}

func TestWriteLockInvalidLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "packages.lock.json")
	if err := os.WriteFile(out, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteLock(out, &Lock{LockVersion: 1}); !errors.Is(err, ErrLock) {
		t.Fatalf("err = %v, want ErrLock", err)
	}
	if b, _ := os.ReadFile(out); string(b) != "old\n" {
		t.Errorf("the old lock was replaced: %q", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d entries left, want 1", len(entries))
	}
}

// TestParseLockHostile changes one field at a time of a valid lock.
func TestParseLockHostile(t *testing.T) {
	good, err := os.ReadFile("testdata/resolve/packages.lock.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseLock(good); err != nil {
		t.Fatalf("golden lock: %v", err)
	}
	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	src := func(m map[string]any) map[string]any { return m["source"].(map[string]any) }
	pkg0 := func(m map[string]any) map[string]any { return m["packages"].([]any)[0].(map[string]any) }
	tests := []struct {
		name string
		data []byte
	}{
		{"unknown top field", edit(func(m map[string]any) { m["mirror"] = "http://x.invalid/" })},
		{"unknown package field", edit(func(m map[string]any) { pkg0(m)["url"] = "http://x.invalid/a.deb" })},
		{"trailing data", append(bytes.Clone(good), "{}"...)},
		{"version 2", edit(func(m map[string]any) { m["lockVersion"] = 2 })},
		{"no packages", edit(func(m map[string]any) { m["packages"] = []any{} })},
		{"filename ..", edit(func(m map[string]any) { pkg0(m)["filename"] = "pool/../../etc/passwd.deb" })},
		{"filename absolute", edit(func(m map[string]any) { pkg0(m)["filename"] = "/pool/a.deb" })},
		{"filename query", edit(func(m map[string]any) { pkg0(m)["filename"] = "pool/a.deb?x=1.deb" })},
		{"filename percent", edit(func(m map[string]any) { pkg0(m)["filename"] = "pool/%2e%2e/a.deb" })},
		{"filename not .deb", edit(func(m map[string]any) { pkg0(m)["filename"] = "pool/a.tar" })},
		{"filename space", edit(func(m map[string]any) { pkg0(m)["filename"] = "pool/a b.deb" })},
		{"sha256 upper", edit(func(m map[string]any) { pkg0(m)["sha256"] = strings.Repeat("AB", 32) })},
		{"sha256 short", edit(func(m map[string]any) { pkg0(m)["sha256"] = "abc" })},
		{"name bad", edit(func(m map[string]any) { pkg0(m)["name"] = "../x" })},
		{"version bad", edit(func(m map[string]any) { pkg0(m)["version"] = "1.0 /x" })},
		{"version empty", edit(func(m map[string]any) { pkg0(m)["version"] = "" })},
		{"arch other", edit(func(m map[string]any) { pkg0(m)["architecture"] = "arm64" })},
		{"size zero", edit(func(m map[string]any) { pkg0(m)["size"] = 0 })},
		{"duplicate package", edit(func(m map[string]any) {
			m["packages"] = append(m["packages"].([]any), m["packages"].([]any)[0])
		})},
		{"suite slash", edit(func(m map[string]any) { src(m)["suite"] = "../bookworm" })},
		{"component bad", edit(func(m map[string]any) { src(m)["components"] = []any{"main/../x"} })},
		{"arch all", edit(func(m map[string]any) { src(m)["architecture"] = "all" })},
		{"request unsorted", edit(func(m map[string]any) { src(m)["request"] = []any{"b-pkg", "a-pkg"} })},
		{"request bad", edit(func(m map[string]any) { src(m)["request"] = []any{"a | b"} })},
		{"request not canonical", edit(func(m map[string]any) { src(m)["request"] = []any{"a-pkg(>=1)"} })},
		{"inRelease sha", edit(func(m map[string]any) { src(m)["inRelease"].(map[string]any)["sha256"] = "x" })},
		{"inRelease date", edit(func(m map[string]any) { src(m)["inRelease"].(map[string]any)["date"] = "yesterday" })},
		{"signer bad", edit(func(m map[string]any) { src(m)["inRelease"].(map[string]any)["signers"] = []any{"abc"} })},
		{"no signer", edit(func(m map[string]any) { src(m)["inRelease"].(map[string]any)["signers"] = []any{} })},
		{"not json", []byte("packages: []")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseLock(tc.data); !errors.Is(err, ErrLock) {
				t.Errorf("err = %v, want ErrLock", err)
			}
		})
	}
}

func FuzzParseLock(f *testing.F) {
	good, err := os.ReadFile("testdata/resolve/packages.lock.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"lockVersion":1}`))
	f.Add([]byte(`{"lockVersion":1,"packages":[{"filename":"../x.deb"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ParseLock(data)
		if err != nil {
			if !errors.Is(err, ErrLock) {
				t.Fatalf("error %v does not wrap ErrLock", err)
			}
			return
		}
		// What is accepted is safe to join to a mirror URL and re-writes
		// to a lock that reads back the same.
		for _, p := range l.Packages {
			if !cleanRelPath(p.Filename) || strings.ContainsAny(p.Filename, "?#%\\ ") {
				t.Fatalf("accepted filename %q", p.Filename)
			}
		}
		b, err := l.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseLock(b); err != nil {
			t.Fatalf("re-marshalled lock refused: %v", err)
		}
	})
}
