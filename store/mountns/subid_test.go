package mountns

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSubIDs(t *testing.T) {
	file := filepath.Join(t.TempDir(), "subuid")
	content := "# comment\nalice:100000:65536\nbob:bad:1\n1001:300000:1000\ncarol:400000:0\n"
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		id   int
		want idRange
		ok   bool
	}{
		{"alice", 1000, idRange{100000, 65536}, true},
		{"dave", 1001, idRange{300000, 1000}, true}, // by numeric id
		{"bob", 1002, idRange{}, false},             // malformed line
		{"carol", 1003, idRange{}, false},           // empty range
		{"erin", 1004, idRange{}, false},
	} {
		got, ok := subIDs(file, tc.name, tc.id)
		if ok != tc.ok || got != tc.want {
			t.Errorf("subIDs(%s, %d) = %v, %v; want %v, %v", tc.name, tc.id, got, ok, tc.want, tc.ok)
		}
	}
	if _, ok := subIDs(filepath.Join(t.TempDir(), "missing"), "alice", 1000); ok {
		t.Error("a missing file gave a range")
	}
}
