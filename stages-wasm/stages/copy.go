//go:build wasip1

package main

import (
	"fmt"
	"os"

	"github.com/kilnbuild/kiln/stages-wasm/sdk"
)

type copyOptions struct {
	Files []struct {
		fileSpec
		Source string `json:"source"`
	} `json:"files"`
}

// kiln.copy places files from the manifest's org.osbuild.files sources at
// paths in the tree, with a mode (default 0644) and owner (default root).
func init() {
	sdk.Register("kiln.copy", func(o copyOptions) error {
		var view *accountsView
		for i, f := range o.Files {
			opt := fmt.Sprintf("files[%d]", i)
			src, err := sourcePath(opt+".source", f.Source)
			if err != nil {
				return err
			}
			// Sources are files a build downloaded, read whole: stages
			// place configuration and small binaries, not disk images.
			data, err := os.ReadFile(src)
			if err != nil {
				return fmt.Errorf("option \"%s.source\": %w", opt, err)
			}
			if err := place(opt, f.fileSpec, data, &view); err != nil {
				return err
			}
		}
		return nil
	})
}
