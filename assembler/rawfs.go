package assembler

import (
	"context"
	"fmt"
	"path/filepath"
)

func init() { register(rawfs{}) }

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

func (a rawfs) Assemble(ctx context.Context, in Input) (err error) {
	discard, err := guardOutput(a.Name(), in.Output)
	if err != nil {
		return err
	}
	defer discard(&err)
	opts := struct {
		Filename   string `json:"filename"`
		RootFSUUID string `json:"root_fs_uuid"`
		Size       int64  `json:"size"`
		FSType     string `json:"fs_type"`
	}{FSType: "ext4"}
	if err := decode(in, a.Name(), &opts); err != nil {
		return err
	}
	if opts.FSType != "ext4" {
		return errOption(a.Name(), "fs_type", "%q is not supported: kiln makes ext4 filesystems only", opts.FSType)
	}
	if err := checkUUID(a.Name(), "root_fs_uuid", opts.RootFSUUID); err != nil {
		return err
	}
	if err := checkImageSize(a.Name(), opts.Size); err != nil {
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
