package assembler

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kilnbuild/kiln/store/storetest"
)

const testEpoch = 1700000000

func runOCI(t *testing.T, tree, opts string) string {
	t.Helper()
	out := t.TempDir()
	a, _ := lookup("org.osbuild.oci-archive")
	if err := a.Assemble(t.Context(), Input{Tree: tree, Output: out, Options: json.RawMessage(opts), Epoch: testEpoch}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(out)
	if len(entries) != 1 {
		t.Fatalf("output holds %d entries, want only the archive (scratch left behind?)", len(entries))
	}
	return filepath.Join(out, entries[0].Name())
}

// ociImage is an archive read back and checked against its own digests.
type ociImage struct {
	index    v1.Index
	manifest v1.Manifest
	config   v1.Image
	layer    []byte // uncompressed
}

// readOCI reads an archive's layout, following the index to the config
// and layer, and fails the test on any digest or size that does not match
// the blob it names.
func readOCI(t *testing.T, path string) ociImage {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(time.Unix(testEpoch, 0)) || h.Uid != 0 {
			t.Errorf("%s: mtime %v uid %d", h.Name, h.ModTime, h.Uid)
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = b
	}
	if string(files["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout: %s", files["oci-layout"])
	}
	blob := func(d v1.Descriptor) []byte {
		b, ok := files["blobs/sha256/"+d.Digest.Encoded()]
		if !ok || digest.FromBytes(b) != d.Digest || int64(len(b)) != d.Size {
			t.Fatalf("blob %s (size %d) missing or wrong", d.Digest, d.Size)
		}
		return b
	}
	var img ociImage
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(json.Unmarshal(files["index.json"], &img.index))
	if len(img.index.Manifests) != 1 {
		t.Fatalf("index has %d manifests", len(img.index.Manifests))
	}
	must(json.Unmarshal(blob(img.index.Manifests[0]), &img.manifest))
	must(json.Unmarshal(blob(img.manifest.Config), &img.config))
	if len(img.manifest.Layers) != 1 || img.manifest.Layers[0].MediaType != v1.MediaTypeImageLayerGzip {
		t.Fatalf("layers: %+v", img.manifest.Layers)
	}
	gz, err := gzip.NewReader(bytes.NewReader(blob(img.manifest.Layers[0])))
	must(err)
	img.layer, err = io.ReadAll(gz)
	must(err)
	if d := digest.FromBytes(img.layer); len(img.config.RootFS.DiffIDs) != 1 || img.config.RootFS.DiffIDs[0] != d {
		t.Errorf("diff_ids %v, uncompressed layer is %s", img.config.RootFS.DiffIDs, d)
	}
	return img
}

// TestOCIArchive checks the archive's structure and then hands it to real
// clients: skopeo (inspect and copy, by path and by path:tag) and umoci
// (unpack to a runtime bundle, whose rootfs must hold the tree's files).
func TestOCIArchive(t *testing.T) {
	tree := richTree(t)
	file := runOCI(t, tree, `{"filename": "image.tar", "architecture": "x86_64", "tag": "latest", "config": {"Cmd": ["/bin/true"]}}`)
	img := readOCI(t, file)
	if img.config.Architecture != "amd64" || img.config.OS != "linux" || !img.config.Created.Equal(time.Unix(testEpoch, 0)) {
		t.Errorf("config: %+v", img.config)
	}
	if ref := img.index.Manifests[0].Annotations[v1.AnnotationRefName]; ref != "latest" {
		t.Errorf("ref name %q", ref)
	}
	// The layer is the tar assembler's stream: same writer, same bytes.
	var want bytes.Buffer
	if err := WriteTar(t.Context(), &want, tree, TarOptions{ACLs: true, SELinux: true, Xattrs: true, Epoch: testEpoch}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(img.layer, want.Bytes()) {
		t.Error("the layer is not WriteTar's stream of the tree")
	}
	manifestDigest := img.index.Manifests[0].Digest.String()

	t.Run("skopeo", func(t *testing.T) {
		if _, err := exec.LookPath("skopeo"); err != nil {
			t.Skip("needs skopeo (installed by .ci/run)")
		}
		for _, ref := range []string{"oci-archive:" + file, "oci-archive:" + file + ":latest"} {
			out, err := exec.Command("skopeo", "inspect", ref).CombinedOutput()
			if err != nil {
				t.Fatalf("skopeo inspect %s: %v\n%s", ref, err, out)
			}
			var got struct{ Digest, Architecture, Os string }
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			if got.Digest != manifestDigest || got.Architecture != "amd64" || got.Os != "linux" {
				t.Errorf("skopeo inspect %s: %+v, want digest %s", ref, got, manifestDigest)
			}
		}
		dst := t.TempDir()
		if out, err := exec.Command("skopeo", "copy", "oci-archive:"+file, "dir:"+dst).CombinedOutput(); err != nil {
			t.Fatalf("skopeo copy: %v\n%s", err, out)
		}
		// skopeo verifies every blob's digest on copy; the copy keeps them.
		if _, err := os.Stat(filepath.Join(dst, img.manifest.Layers[0].Digest.Encoded())); err != nil {
			t.Errorf("copied image lacks the layer: %v", err)
		}
	})

	t.Run("umoci", func(t *testing.T) {
		if _, err := exec.LookPath("umoci"); err != nil {
			t.Skip("needs umoci (installed by .ci/run)")
		}
		work := t.TempDir()
		layout, bundle := filepath.Join(work, "layout"), filepath.Join(work, "bundle")
		t.Cleanup(func() { makeWritable(bundle) })
		if err := os.Mkdir(layout, 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("tar", "-C", layout, "-xf", file).CombinedOutput(); err != nil {
			t.Fatalf("tar: %v\n%s", err, out)
		}
		args := []string{"unpack", "--image", layout + ":latest", bundle}
		if os.Geteuid() != 0 {
			args = append([]string{"unpack", "--rootless"}, args[1:]...)
		}
		if out, err := exec.Command("umoci", args...).CombinedOutput(); err != nil {
			t.Fatalf("umoci %v: %v\n%s", args, err, out)
		}
		rootfs := filepath.Join(bundle, "rootfs")
		for name, content := range map[string]string{"etc/hostname": "kiln\n", "ro/file": "read only\n"} {
			if got := storetest.ReadFile(t, rootfs, name); got != content {
				t.Errorf("rootfs %s: %q, want %q", name, got, content)
			}
		}
		if target, err := os.Readlink(filepath.Join(rootfs, "etc/localtime")); err != nil || target != "/usr/share/zoneinfo/UTC" {
			t.Errorf("rootfs etc/localtime: %q, %v", target, err)
		}
		if st, err := os.Stat(filepath.Join(rootfs, "usr/bin/su")); err != nil || st.Mode()&os.ModeSetuid == 0 {
			t.Errorf("rootfs usr/bin/su lost its setuid bit: %v %v", st, err)
		}
		var spec struct {
			Process struct{ Args []string }
		}
		b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
		if err == nil {
			err = json.Unmarshal(b, &spec)
		}
		if err != nil || !reflect.DeepEqual(spec.Process.Args, []string{"/bin/true"}) {
			t.Errorf("runtime config args %q, %v", spec.Process.Args, err)
		}
	})
}

// TestOCIConfig checks how options become the image config and the
// manifest: osbuild's defaults, its StopSiganl spelling, lists turned into
// sets, annotations and tags.
func TestOCIConfig(t *testing.T) {
	tree := t.TempDir()
	storetest.WriteFile(t, tree, "etc/hostname", "kiln\n")
	defaultPath := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	for _, tc := range []struct {
		name, opts  string
		want        v1.ImageConfig
		arch, tag   string
		annotations map[string]string
	}{
		{"defaults", `{}`, v1.ImageConfig{Cmd: []string{"sh"}, Env: defaultPath}, "amd64", "", nil},
		{"all", `{"architecture": "aarch64", "tag": "v1.2", "annotations": {"org.example": "x"}, "config": {
			"Cmd": [], "Entrypoint": ["/init"], "Env": ["A=1"], "ExposedPorts": ["80/tcp", "53/udp"],
			"User": "1000:1000", "Labels": {"l": "v"}, "StopSignal": "SIGINT", "Volumes": ["/data"], "WorkingDir": "/srv"}}`,
			// An empty Cmd overrides the default and, omitted as empty, leaves none.
			v1.ImageConfig{Cmd: nil, Entrypoint: []string{"/init"}, Env: []string{"A=1"},
				ExposedPorts: map[string]struct{}{"80/tcp": {}, "53/udp": {}}, User: "1000:1000",
				Labels: map[string]string{"l": "v"}, StopSignal: "SIGINT", Volumes: map[string]struct{}{"/data": {}}, WorkingDir: "/srv"},
			"arm64", "v1.2", map[string]string{"org.example": "x"}},
		{"osbuild spelling", `{"config": {"StopSiganl": "SIGKILL"}}`,
			v1.ImageConfig{Cmd: []string{"sh"}, Env: defaultPath, StopSignal: "SIGKILL"}, "amd64", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts map[string]any
			if err := json.Unmarshal([]byte(tc.opts), &opts); err != nil {
				t.Fatal(err)
			}
			opts["filename"] = "i.tar"
			if opts["architecture"] == nil {
				opts["architecture"] = "amd64"
			}
			b, _ := json.Marshal(opts)
			img := readOCI(t, runOCI(t, tree, string(b)))
			if !reflect.DeepEqual(img.config.Config, tc.want) {
				t.Errorf("config\n got %+v\nwant %+v", img.config.Config, tc.want)
			}
			desc := img.index.Manifests[0]
			if img.config.Architecture != tc.arch || desc.Platform == nil || desc.Platform.Architecture != tc.arch {
				t.Errorf("architecture %q, platform %+v, want %q", img.config.Architecture, desc.Platform, tc.arch)
			}
			if desc.Annotations[v1.AnnotationRefName] != tc.tag || !reflect.DeepEqual(img.manifest.Annotations, tc.annotations) {
				t.Errorf("ref %q, annotations %v", desc.Annotations[v1.AnnotationRefName], img.manifest.Annotations)
			}
		})
	}
}
