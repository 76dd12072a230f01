package pipeline

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestExportKeepsDiskImagesSparse: a 128 MiB disk image holding a few
// hundred KiB of files is copied into the output directory with its holes
// (issue 11 item 17): its allocated blocks stay far below its size, and its
// bytes are the stored object's. A copy that writes holes out as zeros
// allocates all 128 MiB (the export did before treecopy learnt
// SEEK_DATA/SEEK_HOLE).
func TestExportKeepsDiskImagesSparse(t *testing.T) {
	for _, tool := range []string{"mkfs.ext4", "debugfs", "e2fsck"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (installed by .ci/run)", tool)
		}
	}
	const size = 128 << 20
	const uuid = "9c6ae55b-cf88-45b8-84e8-64990759f39d"
	// Not compressible by accident: each line differs.
	var content strings.Builder
	for i := 0; content.Len() < 256<<10; i++ {
		fmt.Fprintf(&content, "line %d of the test's data\n", i)
	}
	for _, tc := range []struct{ name, assembler string }{
		{"rawfs", fmt.Sprintf(`{"name": "org.osbuild.rawfs", "options": {"filename": "disk.img", "size": %d, "root_fs_uuid": %q}}`, size, uuid)},
		{"qemu raw", fmt.Sprintf(`{"name": "org.osbuild.qemu", "options": {"format": "raw", "filename": "disk.img", "size": %d,
		  "ptuuid": "0x0badcafe", "root_fs_uuid": %q}}`, size, uuid)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			p := e.plan(fmt.Sprintf(`{"pipeline": {"stages": [{"name": "test.write", "options": {"path": "/usr/share/data", "content": %q}}],
			  "assembler": %s}}`, content.String(), tc.assembler))
			res, err := e.run(p, nil)
			if err != nil {
				t.Fatal(err)
			}
			exported := filepath.Join(e.out, "disk.img")
			if len(res.Outputs) != 1 || res.Outputs[0] != exported {
				t.Fatalf("outputs %v, want %s", res.Outputs, exported)
			}
			var st unix.Stat_t
			if err := unix.Stat(exported, &st); err != nil {
				t.Fatal(err)
			}
			allocated := st.Blocks * 512
			t.Logf("%s: %d bytes, %d allocated", exported, st.Size, allocated)
			if st.Size != size {
				t.Errorf("size %d, want %d", st.Size, size)
			}
			// The filesystem's metadata and the file take a few MiB at
			// most; a dense copy takes all 128.
			if allocated > size/8 {
				t.Errorf("the exported image has %d bytes allocated of %d: its holes were written out", allocated, size)
			}
			obj, err := e.st.Get(t.Context(), res.AssemblerID)
			if err != nil {
				t.Fatal(err)
			}
			defer obj.Close()
			if got, want := fileSum(t, exported), fileSum(t, filepath.Join(obj.Path(), "disk.img")); got != want {
				t.Errorf("the exported image's sha256 is %s, the stored one's %s", got, want)
			}
		})
	}
}

func fileSum(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}
