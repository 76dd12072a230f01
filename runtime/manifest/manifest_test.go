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
		{"unknown top-level", `{"pipeline": {}, "version": "2"}`, []string{"$: ", "version"}},
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
