package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/kilnbuild/kiln/runtime/manifest"
	"github.com/kilnbuild/kiln/runtime/pipeline"
)

// TestProgressStripsControlSequences: a user stage's name comes from its
// file name and its log from the stage; neither may put an escape sequence
// on the terminal, in plain progress nor in --progress json's fields.
func TestProgressStripsControlSequences(t *testing.T) {
	res := &pipeline.StageResult{Name: "evil\x1b]0;title\x07stage", ID: "0123456789abcdef", Origin: "/p/\x1b[2Jevil.wasm"}
	var plain bytes.Buffer
	p := newProgress(&plain, "plain", 1)
	p.event(pipeline.Event{Kind: pipeline.StageStarted, Result: res})
	p.event(pipeline.Event{Kind: pipeline.StageFinished, Result: res})
	p.Close()
	if strings.ContainsAny(plain.String(), "\x1b\x07") || !strings.Contains(plain.String(), "evilstage") ||
		!strings.Contains(plain.String(), "/p/evil.wasm") {
		t.Errorf("plain progress = %q, want the name and origin without control characters", plain.String())
	}

	var js bytes.Buffer
	p = newProgress(&js, "json", 1)
	p.event(pipeline.Event{Kind: pipeline.StageLog, Result: res, Log: []byte("\x1b]52;c;Zm9v\x07line\n")})
	var ev map[string]any
	if err := json.Unmarshal(js.Bytes(), &ev); err != nil {
		t.Fatal(err)
	}
	if ev["log"] != "line\n" {
		t.Errorf("json stage-log = %q, want %q", ev["log"], "line\n")
	}
}

// TestBuildHeaderCountsStages (issue 11 item 9): the header and the [n/N]
// counters count stages, build pipelines' included, and not the assembler,
// which has a line of its own; a build of 8 stages and a tar assembler said
// "(9 stages)" and ended at [8/9].
func TestBuildHeaderCountsStages(t *testing.T) {
	tar := &pipeline.Assembler{Stage: manifest.Stage{Name: "org.osbuild.tar"}}
	for _, tc := range []struct {
		name   string
		plan   *pipeline.Plan
		header string
		last   string // the last stage's counter
	}{
		{"stages and an assembler", &pipeline.Plan{Stages: make([]pipeline.PlannedStage, 8), Assembler: tar},
			"(8 stages and the org.osbuild.tar assembler)", "[8/8]"},
		{"a build pipeline", &pipeline.Plan{Build: &pipeline.Plan{Stages: make([]pipeline.PlannedStage, 2)},
			Stages: make([]pipeline.PlannedStage, 1), Assembler: tar}, "(3 stages and the org.osbuild.tar assembler)", "[3/3]"},
		{"one stage", &pipeline.Plan{Stages: make([]pipeline.PlannedStage, 1)}, "(1 stage)", "[1/1]"},
		{"only an assembler", &pipeline.Plan{Assembler: tar}, "(0 stages and the org.osbuild.tar assembler)", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			p := newProgress(&out, "plain", stageCount(tc.plan))
			defer p.Close()
			p.header("m.json", tc.plan, "/store")
			n := stageCount(tc.plan)
			for i := range n {
				r := &pipeline.StageResult{Index: i, Name: "org.osbuild.noop", ID: strings.Repeat("a", 64)}
				p.event(pipeline.Event{Kind: pipeline.StageStarted, Result: r})
				p.event(pipeline.Event{Kind: pipeline.StageFinished, Result: r})
			}
			if tc.plan.Assembler != nil {
				r := &pipeline.StageResult{Index: -1, Name: "org.osbuild.tar", ID: strings.Repeat("b", 64)}
				p.event(pipeline.Event{Kind: pipeline.AssemblerStarted, Result: r})
				p.event(pipeline.Event{Kind: pipeline.AssemblerFinished, Result: r})
			}
			got := out.String()
			if want := "kiln: building m.json " + tc.header + " in /store\n"; !strings.HasPrefix(got, want) {
				t.Errorf("header:\n%s\nwant it to start with %q", got, want)
			}
			if tc.last != "" && !strings.Contains(got, tc.last) {
				t.Errorf("no %s in:\n%s", tc.last, got)
			}
			if tc.plan.Assembler != nil && !strings.Contains(got, "  assembler org.osbuild.tar") {
				t.Errorf("no assembler line in:\n%s", got)
			}
		})
	}
}
