package assembler

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kilnbuild/kiln/store/storetest"
)

// TestOCIDefaultReference (issue 11 item 9): without a tag the index
// carries no ref name, as osbuild's oci-archive writes, so podman loads
// the image by its id; the old default ref name "latest" loaded as
// localhost/latest:latest, because podman reads the ref name as the whole
// image name. A tag is still written and is the name podman gives it.
func TestOCIDefaultReference(t *testing.T) {
	tree := t.TempDir()
	storetest.WriteFile(t, tree, "etc/hostname", "kiln\n")
	for _, tc := range []struct {
		name, opts string
		ref        string // the index's ref name; "" for none
		loaded     string // what podman load says it loaded; "" for the id
	}{
		{"default", `{"filename": "image.oci.tar", "architecture": "amd64"}`, "", ""},
		{"tag", `{"filename": "image.oci.tar", "architecture": "amd64", "tag": "example.com/hello:1"}`,
			"example.com/hello:1", "example.com/hello:1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := runOCI(t, tree, tc.opts)
			desc := readOCI(t, file).index.Manifests[0]
			if ref, ok := desc.Annotations[v1.AnnotationRefName]; ref != tc.ref || (tc.ref == "" && ok) {
				t.Errorf("index ref name %q (set: %v), want %q", ref, ok, tc.ref)
			}
			if tc.ref == "" && desc.Annotations != nil {
				t.Errorf("index descriptor annotations %v, want none", desc.Annotations)
			}
			t.Run("skopeo", func(t *testing.T) {
				if _, err := exec.LookPath("skopeo"); err != nil {
					t.Skip("needs skopeo (installed by .ci/run)")
				}
				// One manifest in the index: found without a reference.
				if out, err := exec.Command("skopeo", "inspect", "oci-archive:"+file).CombinedOutput(); err != nil {
					t.Errorf("skopeo inspect oci-archive:%s: %v\n%s", file, err, out)
				}
			})
			t.Run("podman", func(t *testing.T) {
				if _, err := exec.LookPath("podman"); err != nil {
					t.Skip("needs podman (apt-get install podman)")
				}
				if os.Geteuid() != 0 {
					t.Skip("podman load into a private storage root needs root")
				}
				// A storage of the test's own, so that the machine's
				// images are neither read nor changed.
				// podman wants the runroot shorter than 50 characters, which
				// t.TempDir's names are not.
				dir, err := os.MkdirTemp("", "kiln-podman-")
				if err != nil {
					t.Fatal(err)
				}
				podman := func(args ...string) (string, error) {
					args = append([]string{"--root", dir + "/root", "--runroot", dir + "/run", "--storage-driver", "vfs"}, args...)
					out, err := exec.Command("podman", args...).CombinedOutput()
					return string(out), err
				}
				t.Cleanup(func() {
					_, _ = podman("rmi", "--all", "--force")
					_ = os.RemoveAll(dir)
				})
				out, err := podman("load", "--input", file)
				if err != nil {
					t.Fatalf("podman load: %v\n%s", err, out)
				}
				want := "Loaded image: " + tc.loaded
				if tc.loaded == "" {
					want = "Loaded image: sha256:"
				}
				if !strings.Contains(out, want) || strings.Contains(out, "localhost/latest") {
					t.Errorf("podman load said:\n%s\nwant %q", out, want)
				}
			})
		})
	}
}
