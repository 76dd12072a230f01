package pipeline

import (
	"errors"
	"strings"
	"testing"

	"github.com/kilnbuild/kiln/runtime/manifest"
	"github.com/kilnbuild/kiln/runtime/registry"
)

// TestPlanRefusesMissingSource (issue 10 item 19): a stage naming a source
// the manifest's sources lack failed only when it ran (exit 1, after the
// stages before it); it is refused when planning, naming the stage index,
// name, option and checksum.
func TestPlanRefusesMissingSource(t *testing.T) {
	stages := newTestRegistry(t)
	have := "sha256:" + strings.Repeat("a", 64)
	lack := "sha256:" + strings.Repeat("b", 64)
	lack512 := "sha512:" + strings.Repeat("c", 128)
	srcs := `"sources": {"org.osbuild.files": {"urls": {"` + have + `": "file:///x"}}}`
	for _, tc := range []struct {
		name, doc string
		want      []string // nil: valid
	}{
		{"named source present", `{"pipeline": {"stages": [{"name": "test.copy", "options": {"from": "/run/kiln/sources/org.osbuild.files/` + have + `", "to": "/x"}}]}, ` + srcs + `}`, nil},
		{"not a checksum", `{"pipeline": {"stages": [{"name": "test.copy", "options": {"from": "sha256:abc", "to": "sha256:` + strings.Repeat("a", 65) + `"}}]}}`, nil},
		{"path to a missing source", `{"pipeline": {"stages": [{"name": "test.write", "options": {"path": "/a"}}, {"name": "test.copy", "options": {"from": "/run/kiln/sources/org.osbuild.files/` + lack + `", "to": "/x"}}]}, ` + srcs + `}`,
			[]string{"m.json: $.pipeline.stages[1].options: stage 1 (test.copy)", "$.pipeline.stages[1].options.from names source " + lack}},
		{"no sources at all", `{"pipeline": {"stages": [{"name": "test.ls", "options": {"uses": ["` + have + `", "` + lack512 + `"]}}]}}`,
			[]string{"stage 0 (test.ls)", "$.pipeline.stages[0].options.uses[0] names source " + have, "$.pipeline.stages[0].options.uses[1] names source " + lack512}},
		{"as a key", `{"pipeline": {"stages": [{"name": "test.ls", "options": {"m": {"` + lack + `": 1}}}]}}`,
			[]string{`$.pipeline.stages[0].options.m["` + lack + `"] names source ` + lack}},
		{"in the build pipeline", `{"pipeline": {"build": {"runner": "r", "pipeline": {"stages": [{"name": "test.ls", "options": {"s": "` + lack + `"}}]}}, "stages": [{"name": "test.fail"}]}}`,
			[]string{"$.pipeline.build.pipeline.stages[0].options: stage 0 (test.ls)", lack}},
		{"bad sources section", `{"pipeline": {"stages": [{"name": "test.fail"}]}, "sources": {"org.osbuild.ostree": {}}}`,
			[]string{`m.json: $.sources["org.osbuild.ostree"]: unsupported source`}},
		{"bad source URL", `{"pipeline": {"stages": [{"name": "test.fail"}]}, "sources": {"org.osbuild.files": {"urls": {"` + have + `": "file://host/etc/shadow"}}}}`,
			[]string{`m.json: $.sources["org.osbuild.files"].urls["` + have + `"]: "file://host/etc/shadow": host part "host": did you mean file:host/etc/shadow (relative to the manifest) or file:///host/etc/shadow?`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := manifest.Parse("m.json", []byte(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			_, err = NewPlan("m.json", m, stages, PlanConfig{Epoch: testEpoch})
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, manifest.ErrInvalid) {
				t.Fatalf("NewPlan = %v, want %v", err, manifest.ErrInvalid)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestPlanRefusesUndecodableOptions (issue 10 item 19): an integer option
// written as 1e3 or 1.0 passed the schema and failed the stage's decoding.
func TestPlanRefusesUndecodableOptions(t *testing.T) {
	stages := newTestRegistry(t, registry.BuiltinStage{Name: "test.count",
		Schema: []byte(`{"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}}`)})
	for _, tc := range []struct{ n, want string }{
		{"3", ""},
		{"1e3", "$.pipeline.stages[0].options.n: 1e3: write an integer without fraction or exponent"},
		{"2.0", "$.pipeline.stages[0].options.n: 2.0: write an integer"},
		{"18446744073709551616", "out of the range of a 64-bit integer"},
	} {
		m, err := manifest.Parse("m.json", []byte(`{"pipeline": {"stages": [{"name": "test.count", "options": {"n": `+tc.n+`}}]}}`))
		if err != nil {
			t.Fatal(err)
		}
		_, err = NewPlan("m.json", m, stages, PlanConfig{Epoch: testEpoch})
		if tc.want == "" {
			if err != nil {
				t.Errorf("n=%s: %v", tc.n, err)
			}
			continue
		}
		if !errors.Is(err, manifest.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("n=%s: NewPlan = %v, want %q", tc.n, err, tc.want)
		}
	}
}
