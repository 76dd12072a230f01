package cowtree_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kilnbuild/kiln/store/cowtree"
)

// TestJournal: touches come back once per path, sorted, a subtree touch
// winning over an entry touch; a name with a newline is recorded as its
// directory's subtree, so it can neither be lost nor forge a line.
func TestJournal(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if err := cowtree.Create(dir, map[uint64]uint8{7: cowtree.Group}); err != nil {
		t.Fatal(err)
	}
	st, err := cowtree.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		p   string
		sub bool
	}{{"etc/hostname", false}, {"usr", true}, {"etc/hostname", true}, {"usr", false}, {"etc/evil\ns usr", false}, {"", false}} {
		if err := st.Touch(tc.p, tc.sub); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := cowtree.ReadJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []cowtree.Touched{{Path: "", Subtree: false}, {Path: "etc", Subtree: true}, {Path: "etc/hostname", Subtree: true}, {Path: "usr", Subtree: true}}
	if !slices.Equal(got, want) {
		t.Errorf("journal %+v, want %+v", got, want)
	}
	shared, err := cowtree.LoadShared(dir)
	if err != nil || len(shared) != 1 || shared[7] != cowtree.Group {
		t.Errorf("shared set %v (%v)", shared, err)
	}
	// A damaged journal is refused, not half read.
	if err := os.WriteFile(filepath.Join(dir, "journal"), []byte("e a\nx b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := cowtree.ReadJournal(dir); err == nil {
		t.Error("a journal with a bad line was accepted")
	}
}
