package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

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
