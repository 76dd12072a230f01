package cli

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/kilnbuild/kiln/runtime/debrepo"
	"github.com/kilnbuild/kiln/runtime/manifest"
	"github.com/kilnbuild/kiln/runtime/sources"
)

// TestDebManifestExampleLocks checks that each committed example lock
// parses, and that kiln deb manifest of it against a placeholder mirror
// gives the output recorded under testdata/deb (KILN_UPDATE_GOLDEN=1
// rewrites it): a change of the lock, the resolver's output format or the
// manifest writer shows up here.
func TestDebManifestExampleLocks(t *testing.T) {
	for _, ex := range []string{"debian-container", "debian-rootfs"} {
		t.Run(ex, func(t *testing.T) {
			lockFile := filepath.Join("..", "..", "..", "..", "examples", ex, "packages.lock.json")
			l, err := debrepo.ReadLock(lockFile)
			if err != nil {
				t.Fatal(err)
			}
			if l.Source.Suite != "bookworm" || l.Source.Architecture != "amd64" {
				t.Errorf("lock made for %s %s", l.Source.Suite, l.Source.Architecture)
			}
			code, out, errOut := run(t, "deb", "manifest", "--lock", lockFile, "--mirror", "file:///nonexistent/debian", "testdata/deb/template.json")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			golden := filepath.Join("testdata", "deb", ex+".manifest.json")
			if os.Getenv("KILN_UPDATE_GOLDEN") != "" {
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if out != string(want) {
				t.Errorf("kiln deb manifest output differs from %s", golden)
			}
			// The output is a manifest kiln accepts, whose sources name
			// every package of the lock under the placeholder mirror.
			m, err := manifest.Parse("out.json", []byte(out))
			if err != nil {
				t.Fatal(err)
			}
			files, err := sources.Parse(m.Sources)
			if err != nil {
				t.Fatal(err)
			}
			if len(files) != len(l.Packages) {
				t.Errorf("%d sources for %d packages", len(files), len(l.Packages))
			}
			for _, f := range files {
				if !strings.HasPrefix(f.URL, "file:///nonexistent/debian/pool/main/") {
					t.Errorf("source URL %s", f.URL)
				}
			}
		})
	}
}

func TestDebManifestRefusals(t *testing.T) {
	dir := t.TempDir()
	lockFile := filepath.Join("..", "..", "..", "..", "examples", "debian-container", "packages.lock.json")
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	noDeb := write("nodeb.json", `{"pipeline": {"stages": [{"name": "kiln.write", "options": {}}]}}`)
	two := write("two.json", `{"pipeline": {"stages": [{"name": "kiln.deb"}, {"name": "kiln.deb"}]}}`)
	filled := write("filled.json", `{"pipeline": {"stages": [{"name": "kiln.deb", "options": {"packages": []}}]}}`)
	notManifest := write("bad.json", `{"pipeline": {"stages": [{"name": "kiln.deb"}]}, "extra": 1}`)
	badLock := write("bad.lock.json", `{"lockVersion": 1, "mirror": "x"}`)
	// The committed lock, for a suite no apt configuration names.
	lockData, err := os.ReadFile(lockFile)
	if err != nil {
		t.Fatal(err)
	}
	noSuchSuite := write("nosuch.lock.json", strings.Replace(string(lockData), `"suite": "bookworm"`, `"suite": "kiln-no-such-suite"`, 1))
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no kiln.deb", []string{"--lock", lockFile, "--mirror", "http://m.invalid/debian", noDeb}, "no kiln.deb stage"},
		{"two kiln.deb", []string{"--lock", lockFile, "--mirror", "http://m.invalid/debian", two}, "$.pipeline.stages[1]: a second kiln.deb"},
		{"packages set", []string{"--lock", lockFile, "--mirror", "http://m.invalid/debian", filled}, "options.packages: already set"},
		{"not a manifest", []string{"--lock", lockFile, "--mirror", "http://m.invalid/debian", notManifest}, "bad.json"},
		{"bad lock", []string{"--lock", badLock, "--mirror", "http://m.invalid/debian", noDeb}, "bad.lock.json"},
		{"credentials", []string{"--lock", lockFile, "--mirror", "http://u:p@m.invalid/debian", noDeb}, "credentials"},
		{"query", []string{"--lock", lockFile, "--mirror", "http://m.invalid/debian?x", noDeb}, "no query"},
		{"ftp", []string{"--lock", lockFile, "--mirror", "ftp://m.invalid/debian", noDeb}, "scheme"},
		{"no mirror", []string{"--lock", noSuchSuite, noDeb}, "no --mirror, and no http mirror for kiln-no-such-suite"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := run(t, append([]string{"deb", "manifest"}, tc.args...)...)
			if code != exitUsage || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, errOut, exitUsage, tc.want)
			}
		})
	}
}

// testArchive serves a one-package archive signed by a throwaway key on
// loopback and returns the mirror URL and the keyring file.
func testArchive(t *testing.T, tamper bool) (string, string) {
	t.Helper()
	now := time.Now()
	key, err := openpgp.NewEntity("kiln test", "", "test@example.invalid", &packet.Config{
		Algorithm: packet.PubKeyAlgoEdDSA, Time: func() time.Time { return now.Add(-time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	pkgs := "Package: hello-kiln\nVersion: 1.0-1\nArchitecture: amd64\nPriority: optional\n" +
		"Filename: pool/main/h/hello-kiln/hello-kiln_1.0-1_amd64.deb\nSize: 1234\nSHA256: " + strings.Repeat("ab", 32) + "\n"
	sum := sha256.Sum256([]byte(pkgs))
	rel := fmt.Sprintf("Origin: Test\nSuite: stable\nCodename: bookworm\nDate: %s\nArchitectures: amd64\nComponents: main\nSHA256:\n %s %d main/binary-amd64/Packages\n",
		now.UTC().Format("Mon, 02 Jan 2006 15:04:05 UTC"), hex.EncodeToString(sum[:]), len(pkgs))
	var inrel bytes.Buffer
	w, err := clearsign.Encode(&inrel, key.PrivateKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, rel)
	w.Close()
	if tamper {
		pkgs = strings.Replace(pkgs, "1.0-1", "6.6-6", 1)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/debian/dists/bookworm/InRelease":
			w.Write(inrel.Bytes())
		case "/debian/dists/bookworm/main/binary-amd64/Packages":
			io.WriteString(w, pkgs)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	var kr bytes.Buffer
	if err := key.Serialize(&kr); err != nil {
		t.Fatal(err)
	}
	keyring := filepath.Join(t.TempDir(), "keyring.gpg")
	if err := os.WriteFile(keyring, kr.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return srv.URL + "/debian", keyring
}

func TestDebResolveCommand(t *testing.T) {
	mirror, keyring := testArchive(t, false)
	dir := t.TempDir()
	out := filepath.Join(dir, "packages.lock.json")
	code, _, errOut := run(t, "deb", "resolve", "--mirror", mirror, "--suite", "bookworm", "--arch", "amd64",
		"--keyring", keyring, "--cache-dir", filepath.Join(dir, "cache"), "-o", out, "hello-kiln")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	l, err := debrepo.ReadLock(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Packages) != 1 || l.Packages[0].Name != "hello-kiln" || l.Packages[0].Version != "1.0-1" {
		t.Errorf("lock packages %+v", l.Packages)
	}
	if data, _ := os.ReadFile(out); bytes.Contains(data, []byte("127.0.0.1")) {
		t.Error("the lock names the mirror")
	}
	if !strings.Contains(errOut, "fetched main/binary-amd64/Packages") {
		t.Errorf("no progress on stderr: %q", errOut)
	}

	// A failed resolve leaves the previous lock as it was, and no debris.
	before, _ := os.ReadFile(out)
	code, _, errOut = run(t, "deb", "resolve", "--mirror", mirror, "--suite", "bookworm", "--arch", "amd64",
		"--keyring", keyring, "--cache-dir", "", "-o", out, "no-such-package")
	if code != exitFailure || !strings.Contains(errOut, "no-such-package: no candidate") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	if after, _ := os.ReadFile(out); !bytes.Equal(before, after) {
		t.Error("a failed resolve changed the lock")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 { // the lock and the cache
		t.Errorf("%d entries in the output directory, want 2", len(entries))
	}

	// A tampered index is refused.
	badMirror, badKeyring := testArchive(t, true)
	code, _, errOut = run(t, "deb", "resolve", "--mirror", badMirror, "--suite", "bookworm", "--arch", "amd64",
		"--keyring", badKeyring, "--cache-dir", "", "-o", filepath.Join(dir, "bad.lock.json"), "hello-kiln")
	if code != exitFailure || !strings.Contains(errOut, "sha256 differs from Release") {
		t.Errorf("tampered: exit %d, stderr %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "bad.lock.json")); err == nil {
		t.Error("a lock was written from a tampered index")
	}
}

func TestDebResolveUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--suite", "bookworm"}, "name at least one PACKAGE"},
		{[]string{"busybox"}, "--suite is required"},
		{[]string{"--suite", "../x", "busybox"}, "--suite"},
		{[]string{"--suite", "bookworm", "--arch", "all", "busybox"}, "--arch"},
		{[]string{"--suite", "bookworm", "--component", "main/../x", "busybox"}, "--component"},
		{[]string{"--suite", "bookworm", "aa | bb"}, "want one package"},
		{[]string{"--suite", "bookworm", "--mirror", "ftp://m.invalid/", "busybox"}, "--mirror"},
		{[]string{"--suite", "bookworm", "--mirror", "http://m.invalid/", "--keyring", "/nonexistent", "busybox"}, "--keyring"},
	} {
		code, _, errOut := run(t, append([]string{"deb", "resolve"}, tc.args...)...)
		if code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", tc.args, code, errOut, exitUsage, tc.want)
		}
	}
}
