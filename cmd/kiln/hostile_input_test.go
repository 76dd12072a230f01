package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// TestBuildRefusesHostileInput (issue 10 items 3, 19): bad input that was
// accepted (exit 0 having built nothing, or exit 1 when a stage ran) is
// refused with exit 2 and the JSON path at fault, before anything runs.
func TestBuildRefusesHostileInput(t *testing.T) {
	lack := "sha256:" + strings.Repeat("b", 64)
	for _, tc := range []struct{ name, doc, want string }{
		{"empty object", `{}`, "$: nothing to build"},
		{"empty pipeline", `{"pipeline": {}}`, "$.pipeline: nothing to build"},
		{"duplicate key", `{"pipeline": {"stages": [{"name": "org.osbuild.hostname", "options": {"hostname": "a", "hostname": "b"}}]}}`,
			"$.pipeline.stages[0].options.hostname: duplicate key"},
		{"invalid UTF-8", "{\"pipeline\": {\"stages\": [{\"name\": \"org.osbuild.hostname\", \"options\": {\"hostname\": \"\xff\"}}]}}",
			"$.pipeline.stages[0].options.hostname: invalid UTF-8"},
		{"uid 2^32-1", `{"pipeline": {"stages": [{"name": "org.osbuild.users", "options": {"users": {"a": {"uid": 4294967295}}}}]}}`,
			"$.pipeline.stages[0].options.users.a.uid"},
		{"uid 1e3", `{"pipeline": {"stages": [{"name": "org.osbuild.users", "options": {"users": {"a": {"uid": 1e3}}}}]}}`,
			"$.pipeline.stages[0].options.users.a.uid"},
		{"missing source", `{"pipeline": {"stages": [{"name": "org.osbuild.noop"}, {"name": "kiln.copy", "options": {"files": [{"path": "/f", "source": "` + lack + `"}]}}]}}`,
			"stage 1 (kiln.copy)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := t.TempDir()
			r := kiln(t, "build", "--store", store, "--output-directory", t.TempDir(), writeManifest(t, tc.doc))
			if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, want 2 and %q in:\n%s", r.code, tc.want, r.stderr)
			}
		})
	}
	r := kiln(t, "build", "--store", t.TempDir(), t.TempDir())
	if r.code != 2 || !strings.Contains(r.stderr, "is a directory") {
		t.Errorf("a directory as the manifest: exit %d, want 2:\n%s", r.code, r.stderr)
	}
}

// TestBuildAllowFileSources (issue 10 item 3): --allow-file-sources
// confines file:// sources.
func TestBuildAllowFileSources(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.WriteFile(src, []byte("content"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte("content"))
	sum := "sha256:" + hex.EncodeToString(h[:])
	m := writeManifest(t, `{
	  "pipeline": {"stages": [{"name": "kiln.copy", "options": {"files": [{"source": "`+sum+`", "path": "/f"}]}}]},
	  "sources": {"org.osbuild.files": {"urls": {"`+sum+`": "file://`+src+`"}}}}`)
	r := kiln(t, "build", "--store", t.TempDir(), "--output-directory", t.TempDir(), "--allow-file-sources", t.TempDir(), m)
	if r.code == 0 || !strings.Contains(r.stderr, "outside the directories file:// sources may be read from") {
		t.Errorf("source outside --allow-file-sources: exit %d:\n%s", r.code, r.stderr)
	}
	r = kiln(t, "build", "--store", t.TempDir(), "--output-directory", t.TempDir(), "--allow-file-sources", dir, m)
	if r.code != 0 {
		t.Errorf("source inside --allow-file-sources: exit %d:\n%s", r.code, r.stderr)
	}
}

// withSchema returns wasm with a kiln.stages section describing stage
// name with schema (the format of stages-wasm/internal/wasmmeta).
func withSchema(t *testing.T, wasm []byte, name, schema string) []byte {
	t.Helper()
	payload, err := json.Marshal([]map[string]any{{"name": name, "summary": "hostile", "schema": json.RawMessage(schema)}})
	if err != nil {
		t.Fatal(err)
	}
	uleb := func(b []byte, v int) []byte {
		for {
			c := byte(v & 0x7f)
			v >>= 7
			if v != 0 {
				b = append(b, c|0x80)
				continue
			}
			return append(b, c)
		}
	}
	body := append(uleb(nil, len("kiln.stages")), "kiln.stages"...)
	body = append(body, payload...)
	out := append(append([]byte(nil), wasm...), 0)
	out = uleb(out, len(body))
	return append(out, body...)
}

// TestUserStageSchemaExternalRef (issue 10 item 4): a user stage's schema
// with a $ref to a FIFO hung planning (jsonschema's default loader opened
// it); to an http URL it would fetch it. Both are refused, naming the
// stage's module, and nothing is opened or fetched.
func TestUserStageSchemaExternalRef(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		requests.Add(1)
		w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	for _, ref := range []string{"file://" + fifo, srv.URL + "/schema.json"} {
		dir := t.TempDir()
		module := filepath.Join(dir, "test.evil.wasm")
		wasm := withSchema(t, spinWasm, "test.evil", `{"type": "object", "properties": {"x": {"$ref": "`+ref+`"}}}`)
		if err := os.WriteFile(module, wasm, 0o644); err != nil {
			t.Fatal(err)
		}
		r := kiln(t, "build", "--store", t.TempDir(), "--output-directory", t.TempDir(), "--stage-path", dir,
			writeManifest(t, `{"pipeline": {"stages": [{"name": "test.evil", "options": {"x": 1}}]}}`))
		for _, w := range []string{module, "external reference", ref} {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("$ref %s: exit %d, stderr lacks %q:\n%s", ref, r.code, w, r.stderr)
			}
		}
		if r.code != 2 {
			t.Errorf("$ref %s: exit %d, want 2", ref, r.code)
		}
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("%d HTTP requests for a schema", n)
	}
}
