package manifest

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const noop = `{"name": "org.osbuild.noop"}`

// TestHostileManifests (issue 10 item 19): each was accepted, and built
// nothing (exit 0) or something other than what a reader of the manifest
// sees.
func TestHostileManifests(t *testing.T) {
	sum := "sha256:" + strings.Repeat("a", 64)
	for _, tc := range []struct{ name, doc, want string }{
		{"empty object", `{}`, "$: nothing to build"},
		{"empty pipeline", `{"pipeline": {}}`, "$.pipeline: nothing to build"},
		{"no stages", `{"pipeline": {"stages": []}}`, "$.pipeline: nothing to build"},
		{"only sources", `{"sources": {"org.osbuild.files": {"urls": {}}}}`, "$: nothing to build"},
		{"only a build pipeline", `{"pipeline": {"build": {"runner": "r", "pipeline": {"stages": [` + noop + `]}}}}`, "$.pipeline: nothing to build"},
		{"duplicate top-level key", `{"pipeline": {"stages": [` + noop + `]}, "pipeline": {"stages": [` + noop + `]}}`, "$.pipeline: duplicate key \"pipeline\""},
		{"duplicate option", `{"pipeline": {"stages": [` + noop + `, {"name": "org.osbuild.hostname", "options": {"hostname": "a", "hostname": "b"}}]}}`,
			"$.pipeline.stages[1].options.hostname: duplicate key"},
		{"duplicate stage name", `{"pipeline": {"stages": [{"name": "a", "name": "b"}]}}`, "$.pipeline.stages[0].name: duplicate key"},
		{"duplicate deep", `{"pipeline": {"stages": [{"name": "a", "options": {"x": [[{}, {"k": 1, "k": 2}]]}}]}}`, "$.pipeline.stages[0].options.x[0][1].k: duplicate key"},
		{"duplicate source", `{"pipeline": {"stages": [` + noop + `]}, "sources": {"org.osbuild.files": {"urls": {"` + sum + `": "file:///a", "` + sum + `": "file:///b"}}}}`,
			`$.sources["org.osbuild.files"].urls["` + sum + `"]: duplicate key`},
		{"invalid UTF-8", "{\"pipeline\": {\"stages\": [{\"name\": \"org.osbuild.hostname\", \"options\": {\"hostname\": \"a\xffb\"}}]}}",
			"$.pipeline.stages[0].options.hostname: invalid UTF-8"},
		{"invalid UTF-8 in a key", "{\"pipeline\": {\"stages\": [{\"name\": \"a\", \"options\": {\"k\xc3\": 1}}]}}",
			"$.pipeline.stages[0].options: key \"k\\xc3\": invalid UTF-8"},
		{"overlong UTF-8", "{\"pipeline\": {\"stages\": [{\"name\": \"\xc0\xaf\"}]}}", "$.pipeline.stages[0].name: invalid UTF-8"},
		{"lone high surrogate", `{"pipeline": {"stages": [{"name": "a", "options": {"s": "x\ud800y"}}]}}`, "$.pipeline.stages[0].options.s: a lone surrogate"},
		{"lone low surrogate", `{"pipeline": {"stages": [{"name": "a", "options": {"s": "\udc00"}}]}}`, "$.pipeline.stages[0].options.s: a lone surrogate"},
		{"high surrogate at the end", `{"pipeline": {"stages": [{"name": "a", "options": {"s": "\ud800"}}]}}`, "$.pipeline.stages[0].options.s: a lone surrogate"},
		{"two high surrogates", `{"pipeline": {"stages": [{"name": "a", "options": {"s": "\ud800\ud800"}}]}}`, "$.pipeline.stages[0].options.s: a lone surrogate"},
		{"undecodable number", `{"pipeline": {"stages": [{"name": "a", "options": {"size": 1e400}}]}}`, "$.pipeline.stages[0].options.size: 1e400 is out of the range"},
		{"trailing data", `{"pipeline": {"stages": [` + noop + `]}} {}`, "$: malformed JSON: data after"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("m.json", []byte(tc.doc))
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse = %v, want %v", err, ErrInvalid)
			}
			if !strings.Contains(err.Error(), "m.json: "+tc.want) {
				t.Errorf("error %q lacks %q", err, tc.want)
			}
		})
	}
	// What must stay accepted.
	for _, ok := range []string{
		`{"pipeline": {"stages": [{"name": "a", "options": {"s": "\ud83d\ude00 \u00e9 \\ud800 é 😀", "t": "\\\\u"}}]}}`,
		`{"pipeline": {"assembler": {"name": "org.osbuild.tar", "options": {"filename": "t"}}}}`,
		`{"pipeline": {"stages": [{"name": "a", "options": {"k": 1}}, {"name": "a", "options": {"k": 1}}]}}`,
		`{"pipeline": {"stages": [{"name": "a", "options": {"a": {"k": 1}, "b": {"k": 1}, "c": [{"k": 1}, {"k": 2}]}}]}}`,
		` {"pipeline": {"stages": [{"name": "a", "options": {"n": 1e308, "m": -1e-300, "i": 123456789012345678901234567890}}]}}` + "\n",
	} {
		if _, err := Parse("m.json", []byte(ok)); err != nil {
			t.Errorf("Parse(%s) = %v", ok, err)
		}
	}
}

// TestLoadDirectory (issue 10 item 19): a directory as the manifest was a
// read error (exit 1); it is a wrong argument.
func TestLoadDirectory(t *testing.T) {
	_, err := Load(t.TempDir())
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("Load(directory) = %v", err)
	}
}

// TestLoadBounded: a manifest path that never ends (/dev/zero) or a huge
// file is refused once it passes the bound, not read into memory.
func TestLoadBounded(t *testing.T) {
	defer func(n int64) { maxSize = n }(maxSize)
	maxSize = 1 << 20
	for _, path := range []string{"/dev/zero", writeBig(t, maxSize+1)} {
		_, err := Load(path)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "larger than 1 MiB") {
			t.Errorf("Load(%s) = %v", path, err)
		}
	}
}

func writeBig(t *testing.T, size int64) string {
	path := filepath.Join(t.TempDir(), "big.json")
	if err := os.WriteFile(path, bytes.Repeat([]byte(" "), int(size)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
