package assembler

import (
	"archive/tar"
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"time"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// ociArchive writes the tree as a one-layer OCI image in an OCI image
// layout, packed in a tar archive (what `podman pull oci-archive:` and
// `skopeo copy oci-archive:` read).
type ociArchive struct{}

func (ociArchive) Name() string { return "org.osbuild.oci-archive" }
func (ociArchive) Summary() string {
	return "Write the tree as a one-layer OCI image archive (OCI image layout in a tar)"
}

// Version: bump on any change of output bytes. 3: no ref name unless
// tag is set.
func (ociArchive) Version() string { return "3" }

func (ociArchive) Schema() []byte {
	strings := `{"type": "array", "items": {"type": "string"}`
	return []byte(`{
  "type": "object",
  "additionalProperties": false,
  "required": ["architecture", "filename"],
  "properties": {
    "architecture": {"type": "string", "pattern": ` + schemaPattern(archPattern) + `,
      "description": "CPU architecture in the image config and the index's platform, in Go's names (amd64, arm64); x86_64 and aarch64 are translated"},
    "filename": {"type": "string", "pattern": ` + schemaPattern(filenamePattern) + `,
      "description": "name of the archive in the output directory"},
    "config": {
      "type": "object",
      "additionalProperties": false,
      "description": "how a container runs the image, as in the OCI image config; ExposedPorts and Volumes are lists here",
      "properties": {
        "Cmd": ` + strings + `, "default": ["sh"], "description": "default arguments of the entrypoint"},
        "Entrypoint": ` + strings + `, "description": "the command a container runs"},
        "Env": ` + strings + `, "default": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
          "description": "environment as NAME=value"},
        "ExposedPorts": ` + strings + `, "description": "ports, as 80/tcp or 53/udp"},
        "User": {"type": "string", "description": "user (name or uid, optionally :group) the container runs as"},
        "Labels": {"type": "object", "additionalProperties": {"type": "string"}, "description": "config labels"},
        "StopSignal": {"type": "string", "description": "signal that stops the container, e.g. SIGTERM"},
        "StopSiganl": {"type": "string", "description": "osbuild's spelling of StopSignal, accepted for compatibility"},
        "Volumes": ` + strings + `, "description": "directories a container keeps its data in"},
        "WorkingDir": {"type": "string", "description": "working directory of the entrypoint"}
      }
    },
    "annotations": {"type": "object", "additionalProperties": {"type": "string"},
      "description": "kiln: annotations on the image manifest"},
    "tag": {"type": "string", "pattern": ` + schemaPattern(tagPattern) + `, "maxLength": 255,
      "description": "kiln: the index's org.opencontainers.image.ref.name, so oci-archive:FILE:TAG and umoci's dir:TAG find the image; podman load takes it as the image's whole name (example.com/app:1). None by default, as osbuild writes: podman then loads the image by its id"}
  }
}`)
}

// tagPattern is the OCI image-spec's ref.name grammar.
const tagPattern = `^[A-Za-z0-9]+([._:/-][A-Za-z0-9]+)*$`

var tagRE = regexp.MustCompile(tagPattern)

type ociOptions struct {
	Architecture string `json:"architecture"`
	Filename     string `json:"filename"`
	Config       struct {
		Cmd          *[]string         `json:"Cmd"`
		Entrypoint   []string          `json:"Entrypoint"`
		Env          *[]string         `json:"Env"`
		ExposedPorts []string          `json:"ExposedPorts"`
		User         string            `json:"User"`
		Labels       map[string]string `json:"Labels"`
		StopSignal   string            `json:"StopSignal"`
		StopSiganl   string            `json:"StopSiganl"`
		Volumes      []string          `json:"Volumes"`
		WorkingDir   string            `json:"WorkingDir"`
	} `json:"config"`
	Annotations map[string]string `json:"annotations"`
	Tag         string            `json:"tag"`
}

// ociArch translates the uname names osbuild manifests often use to the
// GOARCH names the OCI spec asks for.
var ociArch = map[string]string{"x86_64": "amd64", "aarch64": "arm64", "i686": "386", "i386": "386"}

// imageConfig is the image config the options describe, with osbuild's
// defaults for Cmd and Env.
func (o *ociOptions) imageConfig(name string) (v1.ImageConfig, error) {
	c := o.Config
	cfg := v1.ImageConfig{
		Cmd: []string{"sh"}, Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		Entrypoint: c.Entrypoint, User: c.User, Labels: c.Labels, WorkingDir: c.WorkingDir, StopSignal: c.StopSignal,
	}
	if c.Cmd != nil {
		cfg.Cmd = *c.Cmd
	}
	if c.Env != nil {
		cfg.Env = *c.Env
	}
	if c.StopSiganl != "" {
		if c.StopSignal != "" && c.StopSignal != c.StopSiganl {
			return cfg, errOption(name, "config.StopSiganl", "%q contradicts StopSignal %q", c.StopSiganl, c.StopSignal)
		}
		cfg.StopSignal = c.StopSiganl
	}
	set := func(list []string) map[string]struct{} {
		if list == nil {
			return nil
		}
		m := map[string]struct{}{}
		for _, s := range list {
			m[s] = struct{}{}
		}
		return m
	}
	cfg.ExposedPorts, cfg.Volumes = set(c.ExposedPorts), set(c.Volumes)
	return cfg, nil
}

func (a ociArchive) Assemble(ctx context.Context, in Input) (err error) {
	discard, err := guardOutput(a.Name(), in.Output)
	if err != nil {
		return err
	}
	defer discard(&err)
	var opts ociOptions
	if err := decode(in, a.Name(), &opts); err != nil {
		return err
	}
	if err := checkPattern(a.Name(), "architecture", opts.Architecture, archRE, "an architecture name"); err != nil {
		return err
	}
	arch := opts.Architecture
	if goarch, ok := ociArch[arch]; ok {
		arch = goarch
	}
	// No default ref name: podman load reads it as the image's whole name,
	// so "latest" loaded as localhost/latest:latest, and a name taken from
	// the filename could be one podman refuses (it must be lowercase).
	if opts.Tag != "" && (len(opts.Tag) > 255 || !tagRE.MatchString(opts.Tag)) {
		return errOption(a.Name(), "tag", "%q is not an OCI reference name (%s, at most 255 characters)", opts.Tag, tagPattern)
	}
	cfg, err := opts.imageConfig(a.Name())
	if err != nil {
		return err
	}
	f, err := outputFile(a.Name(), in.Output, opts.Filename)
	if err != nil {
		return err
	}
	defer f.Close()
	scratch, cleanup, err := scratchDir(in.Output)
	if err != nil {
		return err
	}
	defer cleanup()

	layerPath := filepath.Join(scratch, "layer")
	layer, diffID, err := writeLayer(ctx, layerPath, in)
	if err != nil {
		return fmt.Errorf("%s: layer: %w", a.Name(), err)
	}
	created := time.Unix(in.Epoch, 0).UTC()
	config, err := json.Marshal(v1.Image{
		Created:  &created,
		Platform: v1.Platform{Architecture: arch, OS: "linux"},
		Config:   cfg,
		RootFS:   v1.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}},
		History:  []v1.History{{Created: &created, CreatedBy: "kiln " + a.Name()}},
	})
	if err != nil {
		return err
	}
	configDesc := v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: digest.FromBytes(config), Size: int64(len(config))}
	manifest, err := json.Marshal(v1.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageManifest,
		Config: configDesc, Layers: []v1.Descriptor{layer}, Annotations: opts.Annotations,
	})
	if err != nil {
		return err
	}
	desc := v1.Descriptor{
		MediaType: v1.MediaTypeImageManifest, Digest: digest.FromBytes(manifest), Size: int64(len(manifest)),
		Platform: &v1.Platform{Architecture: arch, OS: "linux"},
	}
	if opts.Tag != "" {
		desc.Annotations = map[string]string{v1.AnnotationRefName: opts.Tag}
	}
	index, err := json.Marshal(v1.Index{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageIndex,
		Manifests: []v1.Descriptor{desc},
	})
	if err != nil {
		return err
	}
	layout, err := json.Marshal(v1.ImageLayout{Version: v1.ImageLayoutVersion})
	if err != nil {
		return err
	}

	bw := bufio.NewWriterSize(f, 1<<20)
	w := &archiveWriter{ctx: ctx, tw: tar.NewWriter(bw), mtime: created}
	w.file(v1.ImageLayoutFile, layout)
	w.file(v1.ImageIndexFile, index)
	w.dir("blobs/")
	w.dir("blobs/sha256/")
	// Blobs in digest order: the archive's bytes depend only on its content.
	blobs := map[digest.Digest][]byte{configDesc.Digest: config, digest.FromBytes(manifest): manifest, layer.Digest: nil}
	for _, d := range slices.Sorted(maps.Keys(blobs)) {
		if d == layer.Digest {
			w.copy("blobs/sha256/"+d.Encoded(), layerPath, layer.Size)
		} else {
			w.file("blobs/sha256/"+d.Encoded(), blobs[d])
		}
	}
	if err := w.close(bw, f); err != nil {
		return fmt.Errorf("%s: writing %s: %w", a.Name(), opts.Filename, err)
	}
	return nil
}

// writeLayer writes the tree as a gzip-compressed reproducible tarball to
// path and returns its descriptor and its diff_id (the digest of the
// uncompressed tar), both computed while writing.
func writeLayer(ctx context.Context, path string, in Input) (v1.Descriptor, digest.Digest, error) {
	f, err := os.Create(path)
	if err != nil {
		return v1.Descriptor{}, "", err
	}
	defer f.Close()
	blob, diff := digest.SHA256.Digester(), digest.SHA256.Digester()
	bw := bufio.NewWriterSize(f, 1<<20)
	counted := &countWriter{w: io.MultiWriter(bw, blob.Hash())}
	gz, err := compressor(counted, "gzip")
	if err != nil {
		return v1.Descriptor{}, "", err
	}
	err = WriteTar(ctx, io.MultiWriter(gz, diff.Hash()), in.Tree, TarOptions{ACLs: true, SELinux: true, Xattrs: true, Epoch: in.Epoch})
	if cerr := gz.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		return v1.Descriptor{}, "", err
	}
	return v1.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Digest: blob.Digest(), Size: counted.n}, diff.Digest(), nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// archiveWriter writes the image layout's few entries with fixed owners,
// modes and mtimes, keeping the first error.
type archiveWriter struct {
	ctx   context.Context
	tw    *tar.Writer
	mtime time.Time
	err   error
}

func (w *archiveWriter) header(name string, typ byte, mode, size int64) {
	if w.err == nil {
		w.err = w.tw.WriteHeader(&tar.Header{Name: name, Typeflag: typ, Mode: mode, Size: size, ModTime: w.mtime, Format: tar.FormatUSTAR})
	}
}

func (w *archiveWriter) dir(name string) { w.header(name, tar.TypeDir, 0o755, 0) }

func (w *archiveWriter) file(name string, content []byte) {
	w.header(name, tar.TypeReg, 0o644, int64(len(content)))
	if w.err == nil {
		_, w.err = w.tw.Write(content)
	}
}

func (w *archiveWriter) copy(name, path string, size int64) {
	w.header(name, tar.TypeReg, 0o644, size)
	if w.err == nil {
		w.err = copyFile(w.ctx, w.tw, path, size, make([]byte, 1<<20))
	}
}

// close finishes the archive and flushes it through bw to f.
func (w *archiveWriter) close(bw *bufio.Writer, f *os.File) error {
	if w.err != nil {
		return w.err
	}
	if err := w.tw.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}
