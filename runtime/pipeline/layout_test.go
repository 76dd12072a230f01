package pipeline

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kilnbuild/kiln/store"
)

// TestLayoutDirsAreKnownToTheStore: the directories the runtime keeps in
// a store root are ones the store knows (store.KnownDirs), so that Open
// makes them private and fsck does not report them as strays.
func TestLayoutDirsAreKnownToTheStore(t *testing.T) {
	root := t.TempDir()
	for _, dir := range []string{SourcesDir(root), ModuleCacheDir(root)} {
		rel, err := filepath.Rel(root, dir)
		if err != nil || strings.HasPrefix(rel, "..") {
			t.Fatalf("%s is not in the store root %s", dir, root)
		}
		top := strings.Split(rel, string(filepath.Separator))[0]
		if !slices.Contains(store.KnownDirs, top) {
			t.Errorf("%s: %s is not one of store.KnownDirs %v", dir, top, store.KnownDirs)
		}
	}
}
