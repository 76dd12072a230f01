package schema

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestExternalRefRefused (issue 10 item 4): jsonschema's default loader
// opened files named by a $ref, so a user stage's schema could read a host
// file, or hang planning on a FIFO. Every reference outside the document
// is refused, and nothing is opened or fetched.
func TestExternalRefRefused(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "plain.json")
	if err := os.WriteFile(plain, []byte(`{"type": "string"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	in, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(in)
	for _, p := range []string{fifo, plain} {
		if _, err := unix.InotifyAddWatch(in, p, unix.IN_OPEN); err != nil {
			t.Fatal(err)
		}
	}
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		requests.Add(1)
		w.Write([]byte(`{"type": "string"}`))
	}))
	defer srv.Close()
	for _, tc := range []struct{ name, schema, url string }{
		{"file FIFO", `{"properties": {"a": {"$ref": "file://` + fifo + `"}}}`, fifo},
		{"file", `{"$ref": "file://` + plain + `"}`, plain},
		{"relative to a file $id", `{"$id": "file://` + dir + `/", "properties": {"a": {"$ref": "fifo"}}}`, fifo},
		{"http", `{"properties": {"a": {"$ref": "` + srv.URL + `/s.json"}}}`, srv.URL},
		{"http $schema", `{"$schema": "` + srv.URL + `/meta.json"}`, srv.URL},
		{"file $schema", `{"$schema": "file://` + fifo + `"}`, fifo},
		{"relative to an http $id", `{"$id": "` + srv.URL + `/dir/", "properties": {"a": {"$ref": "other.json"}}}`, srv.URL + "/dir/other.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile("kiln:stage/org.example.evil", []byte(tc.schema))
			if !errors.Is(err, ErrExternalRef) {
				t.Fatalf("Compile = %v, want %v", err, ErrExternalRef)
			}
			for _, w := range []string{"kiln:stage/org.example.evil", tc.url, "self-contained"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	buf := make([]byte, 4096)
	if n, _ := unix.Read(in, buf); n > 0 {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[0]))
		t.Errorf("a referenced file was opened (inotify mask %#x)", ev.Mask)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("%d HTTP requests for a schema", n)
	}
	// What stays allowed: references inside the document, and the drafts'
	// metaschemas, which jsonschema carries.
	for _, ok := range []string{
		`{"definitions": {"s": {"type": "string"}}, "properties": {"a": {"$ref": "#/definitions/s"}}}`,
		`{"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"}`,
		`{"$schema": "https://json-schema.org/draft/2020-12/schema", "$defs": {"s": {"type": "string"}}, "properties": {"a": {"$ref": "#/$defs/s"}}}`,
		`{"$id": "http://example.org/root", "definitions": {"s": {"$id": "http://example.org/s", "type": "string"}}, "properties": {"a": {"$ref": "http://example.org/s"}}}`,
	} {
		if _, err := Compile("kiln:stage/ok", []byte(ok)); err != nil {
			t.Errorf("Compile(%s) = %v", ok, err)
		}
	}
}

// TestUndecodableNumbers (issue 10 item 19): a schema accepted numbers a
// stage cannot decode: 1e400 (no float holds it), 1.0 and 1e3 for an
// integer (Go's and serde's integer decoding refuse them), integers beyond
// 64 bits.
func TestUndecodableNumbers(t *testing.T) {
	for _, draft := range []string{"", `"$schema": "https://json-schema.org/draft/2020-12/schema",`} {
		s, err := Compile("test://n", []byte(`{`+draft+`"properties": {
		  "i": {"type": "integer"},
		  "u": {"oneOf": [{"type": "string"}, {"type": "integer", "minimum": 0}]},
		  "n": {"type": "number"},
		  "ni": {"type": ["number", "integer"]},
		  "any": {}
		}}`))
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct{ doc, want string }{
			{`{"i": 1, "u": 0, "n": 1.5, "ni": 1.0, "any": -1e300}`, ""},
			{`{"i": -9223372036854775808}`, ""},
			{`{"i": 1.0}`, "$.i: 1.0: write an integer"},
			{`{"i": 1e3}`, "$.i: 1e3: write an integer"},
			{`{"u": 1E+0}`, "$.u: 1E+0: write an integer"},
			{`{"i": 9223372036854775808}`, "$.i: 9223372036854775808: out of the range of a 64-bit integer"},
			{`{"i": 1.5}`, "$.i: "},
			{`{"n": 1e400}`, "$.n: 1e400 is out of the range of a 64-bit float"},
			{`{"any": [-1e309]}`, "$.any[0]: -1e309 is out of the range"},
			{`{"any": 1e-99999999}`, "$.any: 1e-99999999 is out of the range"},
			{`{"any": 1` + strings.Repeat("0", 400) + `}`, "$.any: 1000"},
		} {
			vs, err := s.Validate([]byte(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == "" {
				if len(vs) != 0 {
					t.Errorf("%s: %v", tc.doc, vs)
				}
				continue
			}
			var got []string
			for _, v := range vs {
				got = append(got, v.PathString("$")+": "+v.Message)
			}
			if !strings.Contains(strings.Join(got, "\n"), tc.want) {
				t.Errorf("%s%s: violations %q, want %q", draft, tc.doc, got, tc.want)
			}
		}
	}
}

// TestCanonicalTrailingData: options are one JSON value.
func TestCanonicalTrailingData(t *testing.T) {
	if _, err := Canonical([]byte(`{"a": 1} {"b": 2}`)); err == nil {
		t.Error("Canonical accepted two values")
	}
}
