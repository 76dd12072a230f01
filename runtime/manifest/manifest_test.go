package manifest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseValid(t *testing.T) {
	m, err := Parse("m.json", []byte(`{
	  "pipeline": {
	    "build": {"pipeline": {"stages": [{"name": "org.osbuild.noop"}]}, "runner": "org.osbuild.linux"},
	    "stages": [
	      {"name": "org.osbuild.hostname", "options": {"hostname": "kiln"}},
	      {"name": "org.osbuild.noop"}
	    ],
	    "assembler": {"name": "org.osbuild.tar", "options": {"filename": "root.tar"}}
	  },
	  "sources": {"org.osbuild.files": {"urls": {}}}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ got, want string }{
		{m.Pipeline.Build.Runner, "org.osbuild.linux"},
		{m.Pipeline.Build.Pipeline.Stages[0].Path, "$.pipeline.build.pipeline.stages[0]"},
		{m.Pipeline.Stages[1].Path, "$.pipeline.stages[1]"},
		{m.Pipeline.Assembler.Path, "$.pipeline.assembler"},
		{string(m.Pipeline.Stages[0].Options), `{"hostname": "kiln"}`},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestParseInvalid(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      []string // each must appear in the error
	}{
		{"not json", `{"pipeline": {`, []string{"m.json: line 1, column 15: malformed JSON"}},
		{"syntax on line 3", "{\n \"pipeline\": {},\n \"sources\": [,]\n}", []string{"line 3, column"}},
		{"array", `[]`, []string{"$: a manifest is a JSON object"}},
		{"unknown top-level", `{"pipeline": {}, "pipelines": []}`, []string{"$: ", "pipelines"}},
		{"stage without name", `{"pipeline": {"stages": [{"options": {}}]}}`, []string{"$.pipeline.stages[0]: ", "name"}},
		{"name not string", `{"pipeline": {"stages": [{"name": "a"}, {"name": 7}]}}`, []string{"$.pipeline.stages[1].name: ", "string"}},
		{"options not object", `{"pipeline": {"stages": [{"name": "a", "options": [1]}]}}`, []string{"$.pipeline.stages[0].options: ", "object"}},
		{"build without runner", `{"pipeline": {"build": {"pipeline": {}}}}`, []string{"$.pipeline.build: ", "runner"}},
		{"nested stage", `{"pipeline": {"build": {"runner": "x", "pipeline": {"stages": [{"name": ""}]}}}}`, []string{"$.pipeline.build.pipeline.stages[0].name: "}},
		{"assembler typo", `{"pipeline": {"assembler": {"nam": "org.osbuild.tar"}}}`, []string{"$.pipeline.assembler: "}},
		{"two problems", `{"pipeline": {"stages": [{"name": 1}, {"name": 2}]}}`, []string{"stages[0].name", "stages[1].name"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("m.json", []byte(tc.doc))
			if err == nil {
				t.Fatal("invalid manifest accepted")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestManifestVersionRefused (issue 11 item 10): an osbuild v2 manifest,
// or any manifest with a "version", is refused at $.version with what kiln
// reads and what to do, not with the v1 schema's "additional properties
// 'version', 'pipelines' not allowed".
func TestManifestVersionRefused(t *testing.T) {
	v2, err := os.ReadFile("testdata/osbuild-v2.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, doc string
		want      []string
	}{
		{"osbuild v2", string(v2), []string{"m.json: $.version: ", "osbuild v2 manifest",
			"kiln reads osbuild v1 manifests only", "not supported yet", `one "pipeline"`, "osbuild-mpp"}},
		{"v2 with a v1 pipeline", `{"version": "2", "pipeline": {"stages": [{"name": "org.osbuild.noop"}]}}`,
			[]string{"$.version: ", "osbuild v2 manifest"}},
		{"version 1", `{"version": "1", "pipeline": {"stages": [{"name": "org.osbuild.noop"}]}}`,
			[]string{"$.version: ", `v1 manifest has no "version" key`, "remove it"}},
		{"unknown version", `{"version": "3", "pipelines": []}`,
			[]string{"$.version: ", `manifest format version "3"`, "osbuild v1"}},
		{"version a number", `{"version": 2, "pipelines": []}`,
			[]string{"$.version: ", "manifest format version 2: "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("m.json", []byte(tc.doc))
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "additional properties") {
				t.Errorf("error %q is the schema's, not the version's", err)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.json")
	if err := os.WriteFile(path, []byte(`{"pipeline": {"stages": [{"name": "org.osbuild.noop"}]}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v", err)
	}
}

// FuzzParse: Parse reads untrusted input; it must never panic, and what it
// accepts must have a path for every stage.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.json")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"pipeline": {"stages": [{"name": "a", "options": {"x": 1}}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse("fuzz.json", data)
		if err != nil {
			return
		}
		var check func(p *Pipeline)
		check = func(p *Pipeline) {
			for _, s := range p.Stages {
				if s.Path == "" || s.Name == "" {
					t.Fatalf("accepted stage without name or path: %+v", s)
				}
			}
			if p.Build != nil {
				check(&p.Build.Pipeline)
			}
		}
		check(&m.Pipeline)
	})
}
