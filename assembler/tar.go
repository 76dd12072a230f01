package assembler

import (
	"bufio"
	"context"
	"fmt"
	"io"

	"github.com/dsnet/compress/bzip2"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/ulikunitz/xz"
)

// tarAssembler writes the tree as one tarball, optionally compressed.
type tarAssembler struct{}

func (tarAssembler) Name() string    { return "org.osbuild.tar" }
func (tarAssembler) Summary() string { return "Write the tree as a reproducible tarball" }

// Version: bump on any change of output bytes.
func (tarAssembler) Version() string { return "2" }
func (tarAssembler) Schema() []byte {
	return []byte(`{
  "type": "object",
  "additionalProperties": false,
  "required": ["filename"],
  "properties": {
    "filename": {"type": "string", "pattern": ` + schemaPattern(filenamePattern) + `,
      "description": "name of the tarball in the output directory"},
    "compression": {"type": "string", "enum": ["none", "gzip", "xz", "zstd", "bzip2"],
      "description": "compressor; kiln adds zstd and none (the default); osbuild's lzip, lzma and lzop are not supported"},
    "acls": {"type": "boolean", "default": true, "description": "keep POSIX ACLs"},
    "selinux": {"type": "boolean", "default": true, "description": "keep SELinux labels"},
    "xattrs": {"type": "boolean", "default": true, "description": "keep other extended attributes"}
  }
}`)
}

// compressorConcurrency is fixed, not the number of CPUs: the compressed
// bytes must not depend on the machine that built them.
const compressorConcurrency = 4

func (a tarAssembler) Assemble(ctx context.Context, in Input) (err error) {
	discard, err := guardOutput(a.Name(), in.Output)
	if err != nil {
		return err
	}
	defer discard(&err)
	opts := struct {
		Filename    string `json:"filename"`
		Compression string `json:"compression"`
		ACLs        bool   `json:"acls"`
		SELinux     bool   `json:"selinux"`
		Xattrs      bool   `json:"xattrs"`
	}{ACLs: true, SELinux: true, Xattrs: true}
	if err := decode(in, a.Name(), &opts); err != nil {
		return err
	}
	f, err := outputFile(a.Name(), in.Output, opts.Filename)
	if err != nil {
		return err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	cw, err := compressor(bw, opts.Compression)
	if err != nil {
		return err
	}
	err = WriteTar(ctx, cw, in.Tree, TarOptions{ACLs: opts.ACLs, SELinux: opts.SELinux, Xattrs: opts.Xattrs, Epoch: in.Epoch})
	if cerr := cw.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		return fmt.Errorf("%s: writing %s: %w", a.Name(), opts.Filename, err)
	}
	return nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// compressor wraps w in the named compression, with settings fixed for
// reproducible output.
func compressor(w io.Writer, name string) (io.WriteCloser, error) {
	switch name {
	case "", "none":
		return nopCloser{w}, nil
	case "gzip":
		gz, err := pgzip.NewWriterLevel(w, pgzip.DefaultCompression)
		if err != nil {
			return nil, err
		}
		if err := gz.SetConcurrency(1<<20, compressorConcurrency); err != nil {
			return nil, err
		}
		return gz, nil
	case "zstd":
		return zstd.NewWriter(w, zstd.WithEncoderConcurrency(compressorConcurrency), zstd.WithEncoderLevel(zstd.SpeedDefault))
	case "xz":
		return xz.NewWriter(w)
	case "bzip2":
		return bzip2.NewWriter(w, &bzip2.WriterConfig{Level: bzip2.DefaultCompression})
	}
	return nil, errOption("org.osbuild.tar", "compression", "%q is not supported (none, gzip, xz, zstd, bzip2)", name)
}
