package schema

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzCanonical: stage ids hash the canonical options, so the canonical
// form must be a fixed point (canonicalizing it again changes nothing),
// stable under reformatting (indented input gives the same bytes), and
// mean what the input meant.
func FuzzCanonical(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `{"b": 1, "a": [1.50, {"d": "x<y", "c": null}]}`, `{"z": true}`,
		`{"u": "\u00e9\ud83d\ude00", "e": "\u2028<>&", "n": -0, "x": 1e400}`,
		`{"a": 1, "a": 2}`, "{\"bad\": \"\xff\"}", `[1, "two", [3]]`, `"s"`, `{"k": {"k": {"k": []}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c1, err := Canonical(data)
		if err != nil {
			return
		}
		c2, err := Canonical(c1)
		if err != nil {
			t.Fatalf("canonical form %q refused: %v", c1, err)
		}
		if !bytes.Equal(c1, c2) {
			t.Fatalf("not a fixed point: %q -> %q -> %q", data, c1, c2)
		}
		if !json.Valid(c1) {
			t.Fatalf("canonical form %q is not JSON", c1)
		}
		var indented bytes.Buffer
		if json.Indent(&indented, data, "", "\t") == nil {
			c3, err := Canonical(indented.Bytes())
			if err != nil || !bytes.Equal(c1, c3) {
				t.Fatalf("reformatted %q gives %q (%v), want %q", indented.Bytes(), c3, err, c1)
			}
		}
		if len(bytes.TrimSpace(data)) == 0 {
			return
		}
		if !reflect.DeepEqual(decode(t, data), decode(t, c1)) {
			t.Fatalf("%q and its canonical form %q differ in meaning", data, c1)
		}
	})
}

func decode(t *testing.T, b []byte) any {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	return v
}
