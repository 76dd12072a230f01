package parwalk_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/kilnbuild/kiln/store/internal/parwalk"
)

// tree makes a tree of dirs directories (some nested, some wide), each
// with a file, and a symlink to a directory, which is not a directory to
// walk.
func tree(t *testing.T, dirs int) (string, []string) {
	root := t.TempDir()
	want := []string{"."}
	for i := range dirs {
		rel := fmt.Sprintf("d%02d", i%7)
		if i >= 7 {
			rel = fmt.Sprintf("d%02d/s%03d", i%7, i)
		}
		if i >= 7 && i%3 == 0 {
			rel += "/deep/er"
		}
		for d := rel; d != "."; d = filepath.Dir(d) {
			want = append(want, d)
		}
		if err := os.MkdirAll(filepath.Join(root, rel), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, rel, "f"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("d00", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	return root, slices.Compact(want)
}

func TestWalkVisitsEveryDirectoryOnce(t *testing.T) {
	for _, workers := range []int{0, 1, 4, 16} {
		t.Run(fmt.Sprint(workers), func(t *testing.T) {
			root, want := tree(t, 200)
			var mu sync.Mutex
			var got []string
			err := parwalk.Walk(t.Context(), root, workers, func(_ context.Context, d *parwalk.Dir) ([]string, error) {
				if !slices.IsSorted(d.Names) {
					t.Errorf("%s: names not sorted: %v", d.Rel, d.Names)
				}
				mu.Lock()
				got = append(got, d.Rel)
				mu.Unlock()
				var sub []string
				for _, name := range d.Names {
					fi, err := os.Lstat(filepath.Join(root, d.Join(name)))
					if err != nil {
						return nil, err
					}
					if fi.IsDir() {
						sub = append(sub, name)
					}
				}
				return sub, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("visited %d directories, want %d:\n%v\n%v", len(got), len(want), got, want)
			}
		})
	}
}

// TestWalkStops: the first error ends the walk and is returned, and so is
// a cancelled context; Walk returns only after its goroutines end (the
// race detector would see a visit still running otherwise).
func TestWalkStops(t *testing.T) {
	root, _ := tree(t, 200)
	boom := errors.New("boom")
	var mu sync.Mutex
	visits := 0
	err := parwalk.Walk(t.Context(), root, 4, func(_ context.Context, d *parwalk.Dir) ([]string, error) {
		mu.Lock()
		defer mu.Unlock()
		visits++
		if visits == 3 {
			return nil, boom
		}
		return d.Names, nil // files too: opening one as a directory fails
	})
	if err == nil { // boom, or ENOTDIR from a file returned as a directory
		t.Errorf("walk with a failing visit: %v", err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err = parwalk.Walk(ctx, root, 4, func(context.Context, *parwalk.Dir) ([]string, error) {
		t.Error("visit after cancel")
		return nil, nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled walk: %v", err)
	}
}

func TestWalkRefusesSymlinkedDirectory(t *testing.T) {
	root, _ := tree(t, 10)
	err := parwalk.Walk(t.Context(), root, 2, func(_ context.Context, d *parwalk.Dir) ([]string, error) {
		if d.Rel == "." {
			return []string{"link"}, nil
		}
		t.Errorf("visited %s through a symlink", d.Rel)
		return nil, nil
	})
	if err == nil {
		t.Error("descending into a symlink succeeded")
	}
}
