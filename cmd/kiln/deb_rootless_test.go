package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestDebRootlessSameBytes builds a manifest whose kiln.deb stage installs
// two packages (files of root and of uid 1000, a setuid binary, a
// conffile) as root twice, each in a fresh store, and as the unprivileged
// kiln-unpriv: the three images must be the same bytes.
func TestDebRootlessSameBytes(t *testing.T) {
	uid, gid := unprivUser(t, "to build the packages' owners")
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("needs dpkg-deb (Debian package dpkg)")
	}
	dir, err := os.MkdirTemp("", "kiln-deb-rootless-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })

	sources := `{`
	var pkgs string
	for i, p := range []struct{ name, script string }{
		{"kiln-one", `mkdir -p etc usr/bin home/u && echo conf > etc/one.conf && echo /etc/one.conf > DEBIAN/conffiles &&
			printf '#!/bin/sh\n' > usr/bin/one && chmod 4755 usr/bin/one && echo u > home/u/f && chown -R 1000:1000 home/u`},
		{"kiln-two", `mkdir -p usr/bin && ln -s one usr/bin/two && printf '#!/bin/sh\nexit 0\n' > DEBIAN/postinst && chmod 755 DEBIAN/postinst`},
	} {
		root := filepath.Join(dir, p.name)
		if err := os.MkdirAll(filepath.Join(root, "DEBIAN"), 0o755); err != nil {
			t.Fatal(err)
		}
		control := fmt.Sprintf("Package: %s\nVersion: 1.0-%d\nArchitecture: all\nMaintainer: Kiln Tests <tests@kiln.invalid>\nDescription: rootless test\n", p.name, i)
		if err := os.WriteFile(filepath.Join(root, "DEBIAN", "control"), []byte(control), 0o644); err != nil {
			t.Fatal(err)
		}
		sh := exec.Command("sh", "-ec", p.script)
		sh.Dir = root
		if out, err := sh.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", p.script, err, out)
		}
		deb := root + ".deb"
		if out, err := exec.Command("dpkg-deb", "-Zxz", "--build", root, deb).CombinedOutput(); err != nil {
			t.Fatalf("dpkg-deb: %v\n%s", err, out)
		}
		data, err := os.ReadFile(deb)
		if err != nil {
			t.Fatal(err)
		}
		sum := fmt.Sprintf("sha256:%x", sha256.Sum256(data))
		if i > 0 {
			sources += ", "
			pkgs += ", "
		}
		sources += fmt.Sprintf("%q: %q", sum, "file://"+deb)
		pkgs += fmt.Sprintf(`{"name": %q, "version": "1.0-%d", "architecture": "all", "source": %q}`, p.name, i, sum)
	}
	manifest := filepath.Join(dir, "deb.json")
	m := `{"sources": {"org.osbuild.files": {"urls": ` + sources + `}}},
	  "pipeline": {"stages": [{"name": "kiln.deb", "options": {"packages": [` + pkgs + `]}}],
	    "assembler": {"name": "org.osbuild.tar", "options": {"filename": "root.tar.zst", "compression": "zstd"}}}}`
	if err := os.WriteFile(manifest, []byte(m), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "kiln")
	if out, err := exec.Command("cp", kilnBin, bin).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	if out, err := exec.Command("chown", "-R", fmt.Sprintf("%d:%d", uid, gid), dir).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v %s", err, out)
	}
	// The .debs are built: everything may now be kiln-unpriv's, which
	// must read the sources and write the output.
	for _, p := range []string{dir, bin} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := asUser(uid, gid, dir, bin, "build", "--json", "--progress", "plain", "--allow-file-sources", dir, "--output-directory", filepath.Join(dir, "out"), manifest)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rootless build: %v\n%s", err, out)
	}
	images := [][]byte{mustRead(t, filepath.Join(dir, "out", "root.tar.zst"))}
	for range 2 {
		out := t.TempDir()
		if _, r := build(t, t.TempDir(), out, manifest, "--allow-file-sources", dir); r.code != 0 {
			t.Fatalf("root build: %s", r.stderr)
		}
		images = append(images, mustRead(t, filepath.Join(out, "root.tar.zst")))
	}
	if !bytes.Equal(images[0], images[1]) {
		t.Error("the rootless build's image differs from the root build's")
	}
	if !bytes.Equal(images[1], images[2]) {
		t.Error("two root builds in fresh stores differ")
	}
	list, err := exec.Command("sh", "-c", "zstd -dc "+filepath.Join(dir, "out", "root.tar.zst")+" | tar -tvf -").CombinedOutput()
	if err != nil {
		t.Fatalf("listing the image: %v\n%s", err, list)
	}
	for _, want := range []string{"-rwsr-xr-x 0/0", "1000/1000", "var/lib/dpkg/info/kiln-two.postinst", "usr/bin/two -> one"} {
		if !bytes.Contains(list, []byte(want)) {
			t.Errorf("image lacks %q:\n%s", want, list)
		}
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
