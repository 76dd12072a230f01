package debfmt

import (
	"bytes"
	"io"
	"testing"
)

// TestArSpan: each member's Span is where its content lies in the archive,
// whether or not the previous member was read, odd sizes' padding included,
// since kiln.deb hands that range of the file to the host to decompress.
func TestArSpan(t *testing.T) {
	archive := arArchive("debian-binary", "2.0\n", "control.tar", "odd", "data.tar", "payload")
	for _, read := range []bool{false, true} {
		a, err := NewArReader(bytes.NewReader(archive))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"2.0\n", "odd", "payload"} {
			_, m, err := a.Next()
			if err != nil {
				t.Fatal(err)
			}
			if read {
				if _, err := io.ReadAll(m); err != nil {
					t.Fatal(err)
				}
			}
			off, size := a.Span()
			if got := string(archive[off : off+size]); got != want {
				t.Errorf("read=%v: Span gives %q, want %q", read, got, want)
			}
		}
	}
}
