package assembler

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
)

// rawfs writes the tree as a filesystem image: ext4, made by mkfs.ext4 -d
// and made reproducible (see makeExt4).
type rawfs struct{}

func (rawfs) Name() string    { return "org.osbuild.rawfs" }
func (rawfs) Summary() string { return "Write the tree as a reproducible ext4 filesystem image" }

// Version: bump on any change of output bytes.
func (rawfs) Version() string { return "3" }

func (rawfs) Schema() []byte {
	return []byte(`{
  "type": "object",
  "additionalProperties": false,
  "required": ["filename", "root_fs_uuid", "size"],
  "properties": {
    "filename": {"type": "string", "pattern": ` + schemaPattern(filenamePattern) + `,
      "description": "name of the image in the output directory"},
    "root_fs_uuid": {"type": "string", "pattern": ` + schemaPattern(uuidPattern) + `,
      "description": "the filesystem's UUID; kiln also uses it as the directory hash seed, so the image is reproducible"},
    "size": {"type": "integer", "minimum": 1, "maximum": ` + fmt.Sprint(maxImageSize) + `,
      "description": "size of the image in bytes (a sparse file), at most 64 TiB; the tree must fit"},
    "fs_type": {"type": "string", "enum": ["ext4", "xfs", "btrfs"], "default": "ext4",
      "description": "filesystem; kiln makes only ext4 and refuses xfs and btrfs"}
  }
}`)
}

type rawfsOptions struct {
	Filename   string `json:"filename"`
	RootFSUUID string `json:"root_fs_uuid"`
	Size       int64  `json:"size"`
	FSType     string `json:"fs_type"`
}

func (a rawfs) options(in Input) (rawfsOptions, error) {
	opts := rawfsOptions{FSType: "ext4"}
	if err := decode(in, a.Name(), &opts); err != nil {
		return opts, err
	}
	if opts.FSType != "ext4" {
		return opts, errOption(a.Name(), "fs_type", "%q is not supported: kiln makes ext4 filesystems only", opts.FSType)
	}
	if err := checkUUID(a.Name(), "root_fs_uuid", opts.RootFSUUID); err != nil {
		return opts, err
	}
	if err := checkImageSize(a.Name(), opts.Size); err != nil {
		return opts, err
	}
	if !filenameRE.MatchString(opts.Filename) {
		return opts, errOption(a.Name(), "filename", "%q must be a plain file name (%s)", opts.Filename, filenamePattern)
	}
	return opts, nil
}

// Validate implements Validator: the plan refuses what options would.
func (a rawfs) Validate(options json.RawMessage) error {
	_, err := a.options(Input{Options: options})
	return err
}

func (a rawfs) Assemble(ctx context.Context, in Input) (err error) {
	discard, err := guardOutput(a.Name(), in.Output)
	if err != nil {
		return err
	}
	defer discard(&err)
	opts, err := a.options(in)
	if err != nil {
		return err
	}
	f, err := outputFile(a.Name(), in.Output, opts.Filename)
	if err != nil {
		return err
	}
	f.Close()
	scratch, cleanup, err := scratchDir(in.Output)
	if err != nil {
		return err
	}
	defer cleanup()
	err = makeExt4(ctx, scratch, ext4Spec{
		Assembler: a.Name(), Dir: in.Tree, Path: filepath.Join(in.Output, opts.Filename),
		Size: opts.Size, UUID: opts.RootFSUUID, Epoch: in.Epoch,
	})
	if err != nil {
		return fmt.Errorf("%s: %w", opts.Filename, err)
	}
	return nil
}
