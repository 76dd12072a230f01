//go:build wasip1

package main

import (
	"context"
	"fmt"
	"os"

	"github.com/kilnbuild/kiln/stages-wasm/sdk"
	"github.com/kilnbuild/kiln/stages-wasm/stages/internal/treeglob"
)

type removeOptions struct {
	Paths     []string `json:"paths"`
	MissingOK bool     `json:"missing_ok"`
}

// kiln.remove deletes what each glob of paths matches (internal/treeglob:
// path.Match per component, "**" for any depth), directories with their
// contents. osbuild has no such stage. Every pattern is expanded before
// anything is removed, so one that matches nothing fails the stage with
// the tree untouched (unless missing_ok). A symbolic link is removed
// itself, never followed, and no pattern can name "/" or climb with "..".
func init() {
	sdk.Register("kiln.remove", func(o removeOptions) error {
		ctx := context.Background()
		var all [][]string
		for i, p := range o.Paths {
			opt := fmt.Sprintf("paths[%d]", i)
			pat, err := treeglob.Parse(p)
			if err != nil {
				return fmt.Errorf("option %q: %w", opt, err)
			}
			ms, err := pat.Expand(ctx, treeglob.Dir("/"))
			if err != nil {
				return fmt.Errorf("option %q: %q: %w", opt, p, err)
			}
			if len(ms) == 0 && !o.MissingOK {
				return fmt.Errorf("option %q: %q matches nothing (set missing_ok to allow that)", opt, p)
			}
			all = append(all, ms)
		}
		for i, ms := range all {
			for _, m := range ms {
				// RemoveAll unlinks a symlink rather than following it, and
				// an earlier pattern may have removed m already, which it
				// does not count as an error.
				if err := os.RemoveAll(m); err != nil {
					return fmt.Errorf("option \"paths[%d]\": removing %s: %w", i, m, err)
				}
			}
			fmt.Printf("removed %d paths for %q\n", len(ms), o.Paths[i])
		}
		return nil
	})
}
