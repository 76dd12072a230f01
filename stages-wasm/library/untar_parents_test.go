package library

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kilnbuild/kiln/runtime/engine"
)

// TestUntarMakesParentsAsGNUTar (issue 11 item 14) unpacks the golden case
// no-dir-entries, an archive of files only as osbuild's own test tarball
// is, and checks what the tree description leaves out: the parents tar
// makes are stamped with the clock, which for a stage is SOURCE_DATE_EPOCH
// (GNU tar 1.34 leaves them at the time of extraction), while the files
// keep the archive's mtime.
func TestUntarMakesParentsAsGNUTar(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("the archive's files belong to uid 1000: run as root")
	}
	stages, _ := builtLibrary(t)
	st := stages["org.osbuild.untar"]
	dir := filepath.Join(testdata, "org.osbuild.untar", "no-dir-entries")
	opts, err := os.ReadFile(filepath.Join(dir, "options.json"))
	if err != nil {
		t.Fatal(err)
	}
	sources, err := filepath.Abs(filepath.Join(dir, "sources"))
	if err != nil {
		t.Fatal(err)
	}
	tree := t.TempDir()
	e := newEngine(t)
	res, err := e.Run(context.Background(), engine.Invocation{
		Name: st.Name, ID: strings.Repeat("ab", 32), Module: engine.NewModule(st.Module),
		Options: opts, Tree: tree, Sources: sources, Epoch: goldenEpoch,
	})
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, res.Log)
	}
	epoch := time.Unix(goldenEpoch, 0)
	archived := time.Unix(1628258783, 0) // the members' mtime in the archive
	for p, want := range map[string]time.Time{
		"greeting": epoch, "greeting/deep": epoch,
		"greeting/en.txt": archived, "greeting/deep/fr.txt": archived,
	} {
		fi, err := os.Lstat(filepath.Join(tree, p))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.ModTime().Equal(want) {
			t.Errorf("%s: mtime %v, want %v", p, fi.ModTime().UTC(), want.UTC())
		}
	}
}
