package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/kilnbuild/kiln/store"
)

// exportFiles copies the entries of object id into dir, each replacing any
// entry of the same name by rename, so a reader of dir never sees a
// half-written output. It returns the paths written.
func exportFiles(ctx context.Context, st *store.Store, id, dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("output directory: %w", err)
	}
	staging, err := os.MkdirTemp(dir, ".kiln-export-")
	if err != nil {
		return nil, fmt.Errorf("output directory: %w", err)
	}
	defer os.RemoveAll(staging)
	tree := filepath.Join(staging, "tree")
	if err := st.Export(ctx, id, tree); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(tree)
	if err != nil {
		return nil, fmt.Errorf("output directory: %w", err)
	}
	var out []string
	for _, e := range entries {
		dst := filepath.Join(dir, e.Name())
		if e.IsDir() {
			// rename(2) replaces only empty directories.
			if err := os.RemoveAll(dst); err != nil {
				return nil, fmt.Errorf("output directory: %w", err)
			}
		}
		if err := os.Rename(filepath.Join(tree, e.Name()), dst); err != nil {
			return nil, fmt.Errorf("output directory: %w", err)
		}
		out = append(out, dst)
	}
	slices.Sort(out)
	return out, nil
}

// exportTree copies the tree of object id to dir/<id>.
func exportTree(ctx context.Context, st *store.Store, id, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("output directory: %w", err)
	}
	staging, err := os.MkdirTemp(dir, ".kiln-export-")
	if err != nil {
		return "", fmt.Errorf("output directory: %w", err)
	}
	defer os.RemoveAll(staging)
	tree := filepath.Join(staging, id)
	if err := st.Export(ctx, id, tree); err != nil {
		return "", err
	}
	dst := filepath.Join(dir, id)
	if err := os.RemoveAll(dst); err != nil {
		return "", fmt.Errorf("output directory: %w", err)
	}
	if err := os.Rename(tree, dst); err != nil {
		return "", fmt.Errorf("output directory: %w", err)
	}
	return dst, nil
}
