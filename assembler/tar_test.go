package assembler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kilnbuild/kiln/store/storetest"
	"github.com/kilnbuild/kiln/store/treesum"
)

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the tree has foreign owners, devices and trusted xattrs, and GNU tar restores them only as root")
	}
}

func runTar(t *testing.T, tree, out string, opts string) string {
	t.Helper()
	a, _ := lookup("org.osbuild.tar")
	err := a.Assemble(t.Context(), Input{Tree: tree, Output: out, Options: json.RawMessage(opts), Epoch: 1700000000})
	if err != nil {
		t.Fatal(err)
	}
	var o struct{ Filename string }
	json.Unmarshal([]byte(opts), &o)
	return filepath.Join(out, o.Filename)
}

// TestTarRoundTrip extracts each tarball with GNU tar and checks that the
// extracted tree has the source's treesum: contents, modes, owners,
// xattrs, links and devices all survived.
func TestTarRoundTrip(t *testing.T) {
	requireRoot(t)
	tree := t.TempDir()
	storetest.RichTree(t, tree)
	want, err := treesum.Sum(t.Context(), tree)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ compression, tool string }{
		{"none", ""}, {"gzip", "gzip"}, {"zstd", "zstd"}, {"xz", "xz"}, {"bzip2", "bzip2"},
	} {
		t.Run(tc.compression, func(t *testing.T) {
			if tc.tool != "" {
				if _, err := exec.LookPath(tc.tool); err != nil {
					t.Skipf("needs %s (installed by .ci/run)", tc.tool)
				}
			}
			out := t.TempDir()
			file := runTar(t, tree, out, `{"filename": "root.tar", "compression": "`+tc.compression+`"}`)
			dst := t.TempDir()
			args := []string{"--xattrs", "--xattrs-include=*", "--acls", "--selinux", "--numeric-owner", "-p", "-C", dst, "-xf", file}
			if tc.tool != "" {
				args = append([]string{"-I", tc.tool}, args...)
			}
			if b, err := exec.Command("tar", args...).CombinedOutput(); err != nil {
				t.Fatalf("GNU tar: %v\n%s", err, b)
			}
			got, err := treesum.Sum(t.Context(), dst)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("extracted tree differs from the source:\nsource:\n%s\nextracted:\n%s",
					strings.Join(storetest.Describe(t, tree), "\n"), strings.Join(storetest.Describe(t, dst), "\n"))
			}
			// Hardlinks are stored as links.
			list, _ := exec.Command("tar", append([]string{"-tvf", file}, compressFlag(tc.tool)...)...).CombinedOutput()
			if !bytes.Contains(list, []byte("link to ./usr/bin/su")) {
				t.Errorf("no hardlink entry in:\n%s", list)
			}
		})
	}
}

func compressFlag(tool string) []string {
	if tool == "" {
		return nil
	}
	return []string{"-I", tool}
}

type failingWriter struct{ n int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.n -= len(p); f.n < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

// TestWriteTarErrors: a failing writer or a canceled context ends the walk
// too, and the error says why.
func TestWriteTarErrors(t *testing.T) {
	tree := t.TempDir()
	for i := range 200 {
		storetest.WriteFile(t, tree, fmt.Sprintf("d/f%03d", i), strings.Repeat("x", 4096))
	}
	err := WriteTar(t.Context(), &failingWriter{n: 64 << 10}, tree, TarOptions{})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("WriteTar to a failing writer = %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := WriteTar(ctx, io.Discard, tree, TarOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("WriteTar with a canceled context = %v", err)
	}
}
